"""The test settings with django-user-sessions installed as its documentation says, guarded.

Its installation guide: in INSTALLED_APPS replace 'django.contrib.sessions' with
'user_sessions'; in MIDDLEWARE replace Django's SessionMiddleware with
'user_sessions.middleware.SessionMiddleware'; SESSION_ENGINE = 'user_sessions.backends.db'
(here in RELEASE_SESSION_ENGINE, with SESSION_ENGINE the guard). Its middleware is not a
subclass of Django's, so the admin's admin.E410 fires, and its example project silences it.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, MIDDLEWARE
from tests.stacks.session_apps.swap import replaced, require

require("user_sessions")

INSTALLED_APPS = replaced(INSTALLED_APPS, "django.contrib.sessions", "user_sessions")
MIDDLEWARE = replaced(
    MIDDLEWARE,
    "django.contrib.sessions.middleware.SessionMiddleware",
    "user_sessions.middleware.SessionMiddleware",
)

SESSION_ENGINE = "release.sessions"
# As the example project reads it (DJANGO_SESSION_ENGINE), so that a child process can be given
# another engine.
RELEASE_SESSION_ENGINE = os.environ.get("DJANGO_SESSION_ENGINE") or "user_sessions.backends.db"

SILENCED_SYSTEM_CHECKS = ["admin.E410"]
