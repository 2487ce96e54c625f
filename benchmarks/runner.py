"""The commands the release is compared with, each run as its own process like the release.

    python -m benchmarks.runner delete          # Session.objects.all().delete()
    python -m benchmarks.runner per-object N    # for s in Session.objects.all()[:N]: s.delete()
    python -m benchmarks.runner delete-pattern  # django-redis cache.delete_pattern(...)
    python -m benchmarks.runner noop            # start, connect, nothing else
    python -m benchmarks.runner make-user NAME PASSWORD
    python -m benchmarks.runner made-key        # a session's key as SESSION_ENGINE makes it

Each prints one JSON line: how long the operation itself took, and how many it removed.
Settings: benchmarks.settings, with DATABASE_URL (and REDIS_URL, BENCH_CACHE) from the suite.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def _delete() -> dict[str, Any]:
    from django.contrib.sessions.models import Session

    started = time.perf_counter()
    removed, _ = Session.objects.all().delete()
    return {"seconds": time.perf_counter() - started, "count": removed}


def _per_object(sample: int) -> dict[str, Any]:
    from django.contrib.sessions.models import Session

    count = 0
    started = time.perf_counter()
    for session in Session.objects.all()[:sample]:
        session.delete()
        count += 1
    return {"seconds": time.perf_counter() - started, "count": count}


def _delete_pattern() -> dict[str, Any]:
    from django.contrib.sessions.backends.cache import KEY_PREFIX
    from django.core.cache import cache

    started = time.perf_counter()
    removed = cache.delete_pattern(f"{KEY_PREFIX}*")  # type: ignore[attr-defined]
    return {"seconds": time.perf_counter() - started, "count": int(removed)}


def _noop() -> dict[str, Any]:
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection

    started = time.perf_counter()
    if os.environ.get("BENCH_CACHE") or "cache" in settings.SESSION_ENGINE.rsplit(".", 1)[-1]:
        cache.get("bench-noop")
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    return {"seconds": time.perf_counter() - started, "count": 0}


def _make_user(username: str, password: str) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model()._default_manager.get_or_create(username=username)
    user.set_password(password)
    user.save()
    return {"seconds": 0.0, "count": 1}


def _made_key() -> dict[str, Any]:
    """The key of a session this process makes (and removes again): with the guard after a
    logout, one that carries the process's stamp."""
    from importlib import import_module

    from django.conf import settings

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store["bench-probe"] = True
    store.create()
    key = str(store.session_key)
    store.delete()
    return {"seconds": 0.0, "count": 0, "key": key}


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    op, args = argv[0], argv[1:]
    if op == "delete":
        result = _delete()
    elif op == "per-object":
        result = _per_object(int(args[0]))
    elif op == "delete-pattern":
        result = _delete_pattern()
    elif op == "noop":
        result = _noop()
    elif op == "make-user":
        result = _make_user(args[0], args[1])
    elif op == "made-key":
        result = _made_key()
    else:
        print(f"unknown operation {op!r}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
