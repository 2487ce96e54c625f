"""Settings of the processes the suite runs beside the release command: the example project's,
with two switches the comparisons need.

- `BENCH_SESSION_ENGINE=django` makes SESSION_ENGINE the engine the guard wraps
  (`RELEASE_SESSION_ENGINE`) instead of the guard (`release.sessions`), for throughput without
  the tool.
- `BENCH_CACHE=django_redis` makes the default cache django-redis on `REDIS_URL`, for its
  `delete_pattern`.
- `BENCH_LOGIN_RECORDS=1` installs `benchmarks.login_records`: login records with foreign keys
  to the session table (CASCADE and SET_NULL).
"""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import INSTALLED_APPS, RELEASE_SESSION_ENGINE

if os.environ.get("BENCH_SESSION_ENGINE") == "django":
    SESSION_ENGINE = RELEASE_SESSION_ENGINE

if os.environ.get("BENCH_CACHE") == "django_redis":
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
        }
    }

if os.environ.get("BENCH_LOGIN_RECORDS"):
    INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks.login_records"]
