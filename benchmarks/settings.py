"""Settings of the processes the suite runs beside the release command: the example project's,
with two switches the comparisons need.

- `BENCH_SESSION_MIDDLEWARE=django` puts Django's own SessionMiddleware in place of the guarded
  one (`release.middleware.SessionMiddleware`), for throughput without the tool.
- `BENCH_CACHE=django_redis` makes the default cache django-redis on `REDIS_URL`, for its
  `delete_pattern`.
"""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import MIDDLEWARE

GUARD_MIDDLEWARE = "release.middleware.SessionMiddleware"
DJANGO_SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"

if os.environ.get("BENCH_SESSION_MIDDLEWARE") == "django":
    MIDDLEWARE = [DJANGO_SESSION_MIDDLEWARE if m == GUARD_MIDDLEWARE else m for m in MIDDLEWARE]

if os.environ.get("BENCH_CACHE") == "django_redis":
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
        }
    }
