"""Faults injected at every step of every store's clear: before the first step, between steps,
between the rows and the cached copies, and at the record. After each: the logout is recorded if
and only if the clear finished, the message counts exactly what is gone, and nothing that is not
a session was touched."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.core.management import CommandError
from django.db import DatabaseError
from pytest_django.fixtures import Settings

from release.clearing import keys as cache_keys
from release.clearing import redis_wire
from release.locking import has_session_lock
from release.models import AppliedMarker, Logout
from tests.conftest import (
    CACHE,
    CACHED_DB,
    FILE,
    make_sessions,
    needs_redis,
    release,
    save_sessions,
)

pytestmark = pytest.mark.django_db(transaction=True)


class Injected(Exception):
    """The fault: a store or the database stops answering."""


def failing_on(call: int, original: Callable[..., Any], fault: Exception) -> Callable[..., Any]:
    """`original`, except that its `call`th call raises `fault`."""
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            raise fault
        return original(*args, **kwargs)

    return wrapper


def removed_in(message: str) -> int:
    """How many sessions the failure message says were removed."""
    if "Nobody was logged out and nothing was recorded." in message:
        return 0
    said = re.search(
        r"([\d,]+) sessions? (?:was|were) removed before it stopped, and nothing was recorded",
        message,
    )
    assert said, message
    return int(said.group(1).replace(",", ""))


def logout_failed(settings: Settings, value: str) -> str:
    """A release with a new marker value that fails; its message."""
    records = Logout.objects.count()
    settings.FORCE_LOGOUT_VERSION = value
    with pytest.raises(CommandError) as failed:
        release()
    assert Logout.objects.count() == records, "a logout that failed is never recorded"
    assert not AppliedMarker.objects.filter(value=value).exists(), "nor is its marker"
    return str(failed.value)


def logout_finishes(settings: Settings, value: str) -> str:
    settings.FORCE_LOGOUT_VERSION = value
    output = release()
    assert AppliedMarker.objects.filter(value=value).exists()
    return output


@pytest.fixture
def files(settings: Settings, tmp_path: Path) -> Iterator[Path]:
    """The file engine in a directory of its own, with files that are not sessions beside."""
    settings.RELEASE_SESSION_ENGINE = FILE
    settings.SESSION_FILE_PATH = str(tmp_path)
    from django.contrib.sessions.backends.file import SessionStore

    SessionStore._storage_path = str(tmp_path)  # type: ignore[attr-defined]
    for name in ("sessionid.lock", "sessionid-export.csv", "notes.txt"):
        (tmp_path / name).write_text("not a session")
    yield tmp_path
    del SessionStore._storage_path  # type: ignore[attr-defined]


@pytest.mark.parametrize("fail_at", [1, 4, 7])
def test_file_engine(installed: None, settings: Settings, files: Path, fail_at: int) -> None:
    save_sessions(FILE, 7)
    others = {"sessionid.lock", "sessionid-export.csv", "notes.txt"}

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(os, "unlink", failing_on(fail_at, os.unlink, OSError(5, "I/O error")))
        message = logout_failed(settings, "2")

    left = [path for path in files.iterdir() if path.name not in others]
    assert removed_in(message) == 7 - len(left) == fail_at - 1
    assert "I/O error" in message
    assert {path.name for path in files.iterdir()} >= others
    logout_finishes(settings, "2")
    assert {path.name for path in files.iterdir()} == others


def seed_redis(alias: str, count: int) -> None:
    """`count` session keys, as the engine writes them, quickly."""
    client = cache_keys.redis_client(caches[alias])
    with client.pipeline(transaction=False) as pipe:
        for _ in range(count):
            key = caches[alias].make_key("django.contrib.sessions.cache" + secrets.token_hex(16))
            pipe.set(key, b"x", ex=600)
        pipe.execute()


@pytest.fixture
def redis_cache(settings: Settings) -> Iterator[str]:
    prefix = f"fault{secrets.token_hex(4)}"
    settings.CACHES = {
        **settings.CACHES,
        "redis": {**settings.CACHES["redis"], "KEY_PREFIX": prefix},
    }
    settings.SESSION_CACHE_ALIAS = "redis"
    client = cache_keys.redis_client(caches["redis"])
    client.set(f"{prefix}:other-app", b"keep me")
    yield prefix
    assert client.get(f"{prefix}:other-app") == b"keep me", "nothing but sessions is touched"
    cache_keys.unlink_matching(client, cache_keys.glob_escape(prefix) + "*")


def redis_sessions(prefix: str) -> int:
    client = cache_keys.redis_client(caches["redis"])
    return sum(1 for _ in client.scan_iter(match=f"{prefix}:*sessions.cache*", count=5000))


def client_path(patched: pytest.MonkeyPatch) -> None:
    """The clear through redis-py's client, as for a client without a pool of connections."""
    patched.setattr(redis_wire, "connection", lambda client: contextlib.nullcontext(None))


@needs_redis
@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5, 6])
def test_cache_engine_on_redis(
    installed: None, settings: Settings, redis_cache: str, fail_at: int
) -> None:
    """The connection fails at one of its first six writes: SCAN, SCAN, UNLINK, SCAN (with the
    first UNLINK under way, whose names are then counted), UNLINK, SCAN."""
    settings.RELEASE_SESSION_ENGINE = CACHE
    total = 2 * cache_keys.BATCH + cache_keys.BATCH // 2
    seed_redis("redis", total)
    fault = redis.ConnectionError("Redis went away")

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(redis_wire.Wire, "send", failing_on(fail_at, redis_wire.Wire.send, fault))
        message = logout_failed(settings, "2")

    gone = total - redis_sessions(redis_cache)
    assert removed_in(message) == gone
    assert (gone > 0) == (fail_at >= 4)
    assert "Redis went away" in message
    logout_finishes(settings, "2")
    assert redis_sessions(redis_cache) == 0


@needs_redis
@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_cache_engine_on_redis_through_the_client(
    installed: None, settings: Settings, redis_cache: str, fail_at: int
) -> None:
    """Keys for two and a half UNLINKs go in three; the fault comes at the first, second or
    third."""
    settings.RELEASE_SESSION_ENGINE = CACHE
    total = 2 * cache_keys.UNLINK_NAMES + cache_keys.UNLINK_NAMES // 2
    seed_redis("redis", total)
    fault = redis.ConnectionError("Redis went away")

    with pytest.MonkeyPatch.context() as patched:
        client_path(patched)
        patched.setattr(redis.Redis, "unlink", failing_on(fail_at, redis.Redis.unlink, fault))
        message = logout_failed(settings, "2")

    gone = total - redis_sessions(redis_cache)
    assert removed_in(message) == gone == (fail_at - 1) * cache_keys.UNLINK_NAMES
    assert "Redis went away" in message
    logout_finishes(settings, "2")
    assert redis_sessions(redis_cache) == 0


@needs_redis
def test_cached_db_fails_between_the_rows_and_the_cached_copies(
    installed: None, settings: Settings, redis_cache: str
) -> None:
    settings.RELEASE_SESSION_ENGINE = CACHED_DB
    make_sessions(5)

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(
            redis_wire.Wire,
            "send",
            failing_on(1, redis_wire.Wire.send, redis.ConnectionError("down")),
        )
        message = logout_failed(settings, "2")

    # On PostgreSQL and MariaDB the rows went in steps of their own before the copies; on
    # SQLite they go in the transaction that failed, and come back.
    assert removed_in(message) == 5 - Session.objects.count()
    assert Session.objects.count() == (0 if has_session_lock("default") else 5)
    logout_finishes(settings, "2")
    assert Session.objects.count() == 0


def test_the_record_fails_after_the_clear(installed: None, settings: Settings) -> None:
    make_sessions(9)

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(
            "release.apply._record",
            failing_on(1, lambda *args: None, DatabaseError("disk full")),
        )
        message = logout_failed(settings, "2")

    assert "The database failed: disk full." in message
    assert removed_in(message) == 9 - Session.objects.count()
    assert Session.objects.count() == (0 if has_session_lock("default") else 9)
    assert "removed" in logout_finishes(settings, "2")


def test_nothing_is_removed_when_the_first_step_fails(installed: None, settings: Settings) -> None:
    make_sessions(4)

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(
            "release.clearing.db.DatabaseSessions.clear",
            failing_on(1, lambda *args: None, Injected("refused at once")),
        )
        message = logout_failed(settings, "2")

    assert removed_in(message) == 0
    assert "refused at once" in message
    assert Session.objects.count() == 4
