"""Settings of a run of Django's own `tests/runtests.py` (see `tests.django_suite`).

Django's example `test_sqlite` settings, plus the runner that records each test's outcome and,
in the guarded modes, the guard: SESSION_ENGINE = "release.sessions" around the engine that the
plain run uses (Django's default, the database engine).
"""

from __future__ import annotations

import os

from django.conf import global_settings

from tests.django_suite.modes import GUARDED_MODES, MARKER, MODE_VARIABLE, PLAIN

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3"},
    "other": {"ENGINE": "django.db.backends.sqlite3"},
}
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_TZ = False

TEST_RUNNER = "tests.django_suite.runner.SuiteRunner"

# The `release` app, which the runner installs, reads it.
FORCE_LOGOUT_VERSION = MARKER

MODE = os.environ.get(MODE_VARIABLE, PLAIN)
if MODE in GUARDED_MODES:
    SESSION_ENGINE = "release.sessions"
    RELEASE_SESSION_ENGINE = global_settings.SESSION_ENGINE
