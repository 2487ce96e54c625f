"""The test settings with django-qsessions installed as its documentation says, guarded.

Its README: in INSTALLED_APPS replace 'django.contrib.sessions' with 'qsessions'; in MIDDLEWARE
replace Django's SessionMiddleware with 'qsessions.middleware.SessionMiddleware'; set
SESSION_ENGINE to 'qsessions.backends.db' or 'qsessions.backends.cached_db' (here that engine
goes in RELEASE_SESSION_ENGINE, and SESSION_ENGINE is the guard). Its middleware subclasses
Django's, so the admin's check admin.E410 passes: nothing to silence.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, MIDDLEWARE
from tests.stacks.session_apps.swap import replaced, require

require("qsessions")

INSTALLED_APPS = replaced(INSTALLED_APPS, "django.contrib.sessions", "qsessions")
MIDDLEWARE = replaced(
    MIDDLEWARE,
    "django.contrib.sessions.middleware.SessionMiddleware",
    "qsessions.middleware.SessionMiddleware",
)

SESSION_ENGINE = "release.sessions"
# As the example project reads it (DJANGO_SESSION_ENGINE), so that a child process can be given
# another engine: "qsessions.backends.cached_db" keeps the same qsessions.models.Session.
RELEASE_SESSION_ENGINE = os.environ.get("DJANGO_SESSION_ENGINE") or "qsessions.backends.db"
