"""Test settings: the example project's, with a database chosen by DATABASE_URL.

Unset, the suite runs on SQLite; `DATABASE_URL=postgres://...` or `mysql://...` runs the same
tests on PostgreSQL or MariaDB. A second alias, `pipeline`, stands for another app's database
(staging beside production) on the same server.
"""

from __future__ import annotations

import copy
import os
import tempfile

from example_project.settings import *  # noqa: F403
from example_project.settings import BASE_DIR, DATABASES, INSTALLED_APPS

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [*INSTALLED_APPS, "tests.custom_sessions", "tests.login_records"]

DATABASES["default"]["CONN_MAX_AGE"] = 0
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # On disk, so that the release command run as a child process sees the test database.
    # Named by process, so that two test runs at once do not share one.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".test-default-{os.getpid()}.sqlite3")}
    DATABASES["pipeline"] = {
        **copy.deepcopy(DATABASES["default"]),
        "TEST": {"NAME": str(BASE_DIR / f".test-pipeline-{os.getpid()}.sqlite3")},
    }
else:
    DATABASES["pipeline"] = {
        **copy.deepcopy(DATABASES["default"]),
        "TEST": {"NAME": f"test_{DATABASES['default']['NAME']}_pipeline"},
    }

# REDIS_URL (as on Heroku) makes the example's default cache Redis; the Redis tests then run
# against it with both client libraries. Unset, they are skipped.
REDIS_URL = os.environ.get("REDIS_URL")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "l"},
}
if REDIS_URL:
    CACHES["redis"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    }
    CACHES["django_redis"] = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL}

# One directory for the whole run: the file engine remembers the first path it sees.
SESSION_FILE_PATH = tempfile.mkdtemp(prefix="release-test-sessions-")

DATABASE_ROUTERS = ["tests.routers.TestRouter"]

# Names the alias that TestRouter sends everything to; None leaves Django's default.
TEST_ROUTE_TO: str | None = None
