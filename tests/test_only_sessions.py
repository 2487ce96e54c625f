"""A logout removes exactly the sessions: every file or key a session engine makes for a session
key, and nothing else in the same directory or Redis database.

Each store is seeded with real sessions (Django's own 32-character keys, and the guard's
40-character ones) and with look-alikes: near-miss names, the file engine's in-progress
temporary files, other cookie names, other KEY_PREFIXes and VERSIONs, the other cache engine's
keys, keys that merely start like a session's, other apps' keys. The real `release` command runs,
and everything that is not a session must be exactly as it was, and the count exact.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.models import Session
from django.core.cache import BaseCache, caches
from django.utils.crypto import get_random_string
from pytest_django.fixtures import Settings

from release import guard
from release.clearing import clearer_for, redis_wire
from release.clearing import keys as cache_keys
from release.clearing.cache import CacheSessions
from release.clearing.file import FileSessions
from release.models import Logout
from release.sessions import guarded_store_class
from release.text import counted
from tests.conftest import CACHE, CACHED_DB, FILE, make_sessions, needs_redis, release

DJANGO_LENGTH = cache_keys.DJANGO_KEY_LENGTH
GUARD_LENGTH = guard.KEY_LENGTH


def random_key(length: int = DJANGO_LENGTH, chars: str = VALID_KEY_CHARS) -> str:
    return get_random_string(length, chars)


def saved_sessions(engine: str, count: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`count` sessions saved through `engine`'s own store (Django's 32-character keys), and
    `count` through the guard around it, by a process whose stamp is not blank (40-character
    keys); returns their keys."""
    keys = []
    store_class = import_module(engine).SessionStore
    with monkeypatch.context() as patch:
        patch.setattr(guard, "_stamp", guard.Stamp(3, 4))
        for store_type in (store_class, guarded_store_class(store_class)):
            for _ in range(count):
                store = store_type()
                store["n"] = 1
                store.save()
                keys.append(str(store.session_key))
    assert sorted(len(key) for key in keys) == [DJANGO_LENGTH] * count + [GUARD_LENGTH] * count
    return keys


def done_line(removed: int) -> str:
    return f"Done: removed {counted(removed, 'session')}, recorded in the history as epoch 1"


# The file engine


@pytest.fixture
def session_dir(settings: Settings, tmp_path: Path) -> Iterator[Path]:
    """SESSION_FILE_PATH a directory of this test's own (Django's file store caches the path on
    its class: reset it, and put back what was there)."""
    store_class = import_module(FILE).SessionStore
    cached = store_class.__dict__.get("_storage_path")
    directory = tmp_path / "sessions"
    directory.mkdir()
    settings.SESSION_FILE_PATH = str(directory)
    settings.RELEASE_SESSION_ENGINE = FILE
    if cached is not None:
        del store_class._storage_path
    yield directory
    if "_storage_path" in store_class.__dict__:
        del store_class._storage_path
    if cached is not None:
        store_class._storage_path = cached


def tree(directory: Path) -> dict[str, bytes | None]:
    """Every entry under `directory` (None for a directory) and its content."""
    return {
        str(path.relative_to(directory)): None if path.is_dir() else path.read_bytes()
        for path in sorted(directory.rglob("*"))
    }


def seed_file_look_alikes(directory: Path, cookie: str) -> None:
    key = random_key()
    names = [
        # From the issue: a directory that also holds an export, a lock file and a key file.
        f"{cookie}-export-2026.csv",
        f"{cookie}.lock",
        f"{cookie}_keys.json",
        cookie,
        # The cookie name, then a key of the wrong length or characters.
        cookie + random_key(DJANGO_LENGTH - 1),
        cookie + random_key(DJANGO_LENGTH + 1),
        cookie + random_key(GUARD_LENGTH - 1),
        cookie + random_key(GUARD_LENGTH + 1),
        cookie + random_key(DJANGO_LENGTH).upper(),
        cookie + random_key(DJANGO_LENGTH - 1) + "A",
        cookie + random_key(DJANGO_LENGTH - 1) + "-",
        cookie + random_key(DJANGO_LENGTH - 1) + ".",
        cookie + key + ".bak",
        cookie + key + "~",
        cookie + key + "\n",
        # The file engine's temporary files, as the issue names one.
        f"{cookie}_out_abc123",
        f"{cookie}{key}_out_abc123",
        # Other cookie names, and other things in a temporary directory.
        f"{cookie}2{random_key()}",
        f"x{cookie}{random_key()}",
        f"{cookie.upper()}{random_key()}",
        f"csrftoken{random_key()}",
        f"{cookie[:-1]}{random_key()}",
        "notes.txt",
        ".hidden",
        f"tmp{random_key(8)}",
    ]
    if "." in cookie:  # a name that matches only if "." matched any character
        names.append(cookie.replace(".", "x") + random_key())
    for name in names:
        (directory / name).write_text(f"not a session: {name!r}")
    # The engine's own in-progress temporary files, made as the engine makes them.
    for length in (DJANGO_LENGTH, GUARD_LENGTH):
        fd, _ = tempfile.mkstemp(dir=directory, prefix=cookie + random_key(length) + "_out_")
        os.write(fd, b"half-written")
        os.close(fd)
    # A directory named like a session, with something in it.
    named_like_one = directory / (cookie + random_key())
    named_like_one.mkdir()
    (named_like_one / "inside").write_text("stays")


@pytest.mark.django_db
@pytest.mark.parametrize("cookie", ["sessionid", "app.sid"])
def test_file_engine_removes_only_session_files(
    session_dir: Path,
    settings: Settings,
    installed: None,
    monkeypatch: pytest.MonkeyPatch,
    cookie: str,
) -> None:
    settings.SESSION_COOKIE_NAME = cookie
    sessions = saved_sessions(FILE, 3, monkeypatch)
    seed_file_look_alikes(session_dir, cookie)
    everything = tree(session_dir)
    files = {cookie + key for key in sessions}
    others = {name: content for name, content in everything.items() if name not in files}
    assert len(everything) - len(others) == len(sessions) == 6
    settings.FORCE_LOGOUT_VERSION = 2

    assert "Dry run: would remove 6 sessions." in release("--dry-run")
    output = release()

    assert done_line(6) in output
    assert "Other hosts' session directories are not reached" in output
    assert tree(session_dir) == others
    assert Logout.objects.get(epoch=1).sessions_removed == 6


@pytest.mark.django_db
def test_file_engine_reports_progress_every_thousand_files(
    session_dir: Path, settings: Settings, installed: None
) -> None:
    settings.SESSION_COOKIE_NAME = "sessionid"
    for i in range(2_500):
        length = GUARD_LENGTH if i % 2 else DJANGO_LENGTH
        (session_dir / f"sessionid{random_key(length)}").write_text("{}")
    seed_file_look_alikes(session_dir, "sessionid")
    others = tree(session_dir)
    others = {name: content for name, content in others.items() if content != b"{}"}
    store = clearer_for()
    assert isinstance(store, FileSessions)
    assert store.count() == 2_500
    calls: list[tuple[int, int | None]] = []

    cleared = store.clear(lambda removed, total: calls.append((removed, total)))

    assert cleared.removed == 2_500
    assert calls == [(1_000, None), (2_000, None), (2_500, None)]
    assert tree(session_dir) == others


# Redis: the `cache` and `cached_db` engines, with Django's RedisCache and django-redis

REDIS_ALIASES = [
    pytest.param("redis", id="RedisCache", marks=needs_redis),
    pytest.param("django_redis", id="django_redis", marks=needs_redis),
]
PREFIXES = {
    CACHE: import_module(CACHE).SessionStore.cache_key_prefix,
    CACHED_DB: import_module(CACHED_DB).SessionStore.cache_key_prefix,
}
OTHER_ENGINE = {CACHE: CACHED_DB, CACHED_DB: CACHE}
VERSION = 3


class RawKeys:
    """Keys other apps write straight to the Redis database; each is deleted after the test."""

    def __init__(self, client: Any, tag: str) -> None:
        self.client = client
        self.tag = tag
        self.written: list[str] = []

    def set(self, key: str, value: bytes = b"another app's") -> None:
        self.written.append(key)
        self.client.set(key, value)

    def hset(self, key: str) -> None:
        self.written.append(key)
        self.client.hset(key, mapping={"a": "1"})

    def rpush(self, key: str) -> None:
        self.written.append(key)
        self.client.rpush(key, "a list")


@pytest.fixture
def redis_alias(request: pytest.FixtureRequest, settings: Settings) -> Iterator[str]:
    """A Redis cache alias with a KEY_PREFIX (with glob and regex characters, which must be
    matched literally, and a letter of two bytes) and VERSION of this test's own; every key it
    made is gone afterwards."""
    alias = request.param
    prefix = f"o{uuid.uuid4().hex[:8]}[*].+é"
    settings.CACHES = {
        **settings.CACHES,
        alias: {**settings.CACHES[alias], "KEY_PREFIX": prefix, "VERSION": VERSION},
    }
    settings.SESSION_CACHE_ALIAS = alias
    client = cache_keys.redis_client(caches[alias])
    yield alias
    cache_keys.unlink_matching(client, f"{cache_keys.glob_escape(prefix)}*")


@pytest.fixture
def raw_keys(redis_alias: str) -> Iterator[RawKeys]:
    cache = caches[redis_alias]
    raw = RawKeys(cache_keys.redis_client(cache), tag=str(cache.key_prefix)[1:9])
    yield raw
    if raw.written:
        raw.client.unlink(*raw.written)


def redis_snapshot(client: Any) -> dict[bytes, tuple[bytes | None, bool]]:
    """Every key in the Redis database: its serialized value, and whether it has a TTL."""
    keys = list(client.scan_iter(count=5000))
    pipeline = client.pipeline(transaction=False)
    for key in keys:
        pipeline.dump(key)
        pipeline.pttl(key)
    results = pipeline.execute()
    return {key: (results[2 * i], results[2 * i + 1] >= 0) for i, key in enumerate(keys)}


def made_key(cache: BaseCache, key: str, version: int | None = None) -> bytes:
    return str(cache.make_key(key, version=version)).encode()


def seed_redis_look_alikes(cache: BaseCache, engine: str, raw: RawKeys) -> None:
    """Keys no logout of `engine` may touch, under this test's KEY_PREFIX and VERSION and
    outside them."""
    prefix = PREFIXES[engine]
    other = PREFIXES[OTHER_ENGINE[engine]]
    through_cache = [
        # The other engine's keys, with both kinds of session key.
        other + random_key(DJANGO_LENGTH),
        other + random_key(GUARD_LENGTH),
        # Keys that start like a session's.
        prefix + "_stats",
        prefix,
        prefix + random_key(DJANGO_LENGTH - 1),
        prefix + random_key(DJANGO_LENGTH + 1),
        prefix + random_key(GUARD_LENGTH - 1),
        prefix + random_key(GUARD_LENGTH + 1),
        prefix + random_key(DJANGO_LENGTH).upper(),
        prefix + random_key(DJANGO_LENGTH - 1) + "_",
        prefix + random_key(DJANGO_LENGTH) + ":x",
        # The guard's length, but not all of it key characters.
        prefix + random_key(DJANGO_LENGTH) + "-" * (GUARD_LENGTH - DJANGO_LENGTH),
        prefix + random_key(GUARD_LENGTH - 1) + "A",
        prefix + "*" * DJANGO_LENGTH,
        prefix[:-1] + random_key(),
        "x" + prefix + random_key(),
        # The same app's other keys.
        f"app:{raw.tag}:user:1",
        "sessions",
    ]
    cache.set_many({key: {"not": "a session"} for key in through_cache})
    # The same session keys under other VERSIONs.
    for version in (1, 2, VERSION + 1):
        cache.set(prefix + random_key(), {"old": version}, version=version)
        cache.set(prefix + random_key(GUARD_LENGTH), {"old": version}, version=version)
    # Other apps in the same Redis database: other KEY_PREFIXes (Django's default, empty, at
    # version 1 and at ours; one that starts with ours), and keys of their own.
    own = str(cache.key_prefix)
    for key in (
        f":1:{prefix}{random_key()}",
        f":{VERSION}:{prefix}{random_key(GUARD_LENGTH)}",
        f"other-{raw.tag}:{VERSION}:{prefix}{random_key()}",
        f"{own}x:{VERSION}:{prefix}{random_key()}",
        f"{own}:{VERSION}:{prefix}{random_key()}x",
        f"{prefix}{random_key()}",
        f"app-{raw.tag}:cart:7",
    ):
        raw.set(key)
    raw.hset(f"app-{raw.tag}:hash")
    raw.rpush(f"app-{raw.tag}:{prefix}{random_key()}")


@pytest.mark.django_db
@pytest.mark.parametrize("engine", [CACHE, CACHED_DB])
@pytest.mark.parametrize("redis_alias", REDIS_ALIASES, indirect=True)
def test_redis_logout_removes_only_the_engines_session_keys(
    redis_alias: str,
    raw_keys: RawKeys,
    settings: Settings,
    installed: None,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
) -> None:
    settings.RELEASE_SESSION_ENGINE = engine
    cache = caches[redis_alias]
    client = cache_keys.redis_client(cache)
    sessions = saved_sessions(engine, 3, monkeypatch)
    # The other engine's sessions, saved as that engine saves them, in the same cache.
    saved_sessions(OTHER_ENGINE[engine], 2, monkeypatch)
    seed_redis_look_alikes(cache, engine, raw_keys)
    session_keys = {made_key(cache, PREFIXES[engine] + key) for key in sessions}
    rows_before = Session.objects.count()
    if engine == CACHED_DB:
        make_sessions(4)  # rows without a cached copy
        expected = len(sessions) + 4
        assert Session.objects.count() == expected  # the cache engine keeps no rows
    else:
        expected = len(sessions)
        assert rows_before == 4  # the cached_db engine's, which a `cache` logout leaves
    before = redis_snapshot(client)
    assert session_keys <= before.keys()
    settings.FORCE_LOGOUT_VERSION = 2

    assert f"Dry run: would remove {counted(expected, 'session')}." in release("--dry-run")
    output = release()

    assert done_line(expected) in output
    if engine == CACHED_DB:
        assert f"Removed {counted(len(sessions), 'cached copy', 'cached copies')}." in output
        assert Session.objects.count() == 0
    else:
        assert Session.objects.count() == rows_before
    after = redis_snapshot(client)
    assert before.keys() - after.keys() == session_keys
    untouched = {key: value for key, value in before.items() if key not in session_keys}
    assert {key: after[key] for key in untouched} == untouched
    assert Logout.objects.get(epoch=1).sessions_removed == expected


@pytest.mark.django_db
@pytest.mark.parametrize("redis_alias", REDIS_ALIASES, indirect=True)
def test_redis_progress_after_each_unlink(
    redis_alias: str, raw_keys: RawKeys, settings: Settings, installed: None
) -> None:
    settings.RELEASE_SESSION_ENGINE = CACHE
    cache = caches[redis_alias]
    prefix = PREFIXES[CACHE]
    count = 2 * cache_keys.BATCH + cache_keys.BATCH // 2
    cache.set_many(
        {prefix + random_key(GUARD_LENGTH if i % 2 else DJANGO_LENGTH): {} for i in range(count)}
    )
    seed_redis_look_alikes(cache, CACHE, raw_keys)
    cache.set_many({prefix + "_stats" + str(i): i for i in range(cache_keys.BATCH)})
    store = clearer_for()
    assert isinstance(store, CacheSessions)
    assert store.count() == count
    calls: list[tuple[int, int | None]] = []

    cleared = store.clear(lambda removed, total: calls.append((removed, total)))

    assert cleared.removed == count
    # Progress after each UNLINK, of at most UNLINK_NAMES of what a SCAN step found.
    removed = [removed for removed, _ in calls]
    steps = [after - before for before, after in zip([0, *removed], removed, strict=False)]
    assert removed[-1] == count
    assert len(removed) > 1
    assert all(0 < step <= cache_keys.UNLINK_NAMES for step in steps), steps
    assert {total for _, total in calls} == {None}
    assert store.count() == 0
    assert cache.get(prefix + "_stats0") == 0


def redis_sessions(settings: Settings, redis_alias: str, count: int) -> CacheSessions:
    """The cache engine's store on `redis_alias`, with `count` sessions in it."""
    settings.RELEASE_SESSION_ENGINE = CACHE
    caches[redis_alias].set_many({PREFIXES[CACHE] + random_key(): {} for _ in range(count)})
    store = clearer_for()
    assert isinstance(store, CacheSessions)
    return store


@pytest.mark.django_db
@pytest.mark.parametrize("redis_alias", REDIS_ALIASES, indirect=True)
def test_redis_connection_lost_between_unlinks(
    redis_alias: str, settings: Settings, installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis drops the clear's connection after its first UNLINK's reply (a CLIENT KILL from
    another connection, as a failover or a server's restart would): the error is raised, and
    what was counted is exactly what is gone."""
    import redis

    count = 5 * cache_keys.BATCH
    store = redis_sessions(settings, redis_alias, count)
    wires: list[redis_wire.Wire] = []
    made = redis_wire.Wire.__init__

    def kept(wire: redis_wire.Wire, sock: Any) -> None:
        made(wire, sock)
        wires.append(wire)

    monkeypatch.setattr(redis_wire.Wire, "__init__", kept)
    killer = redis.Redis.from_url(settings.REDIS_URL)
    calls: list[int] = []

    def progress(removed: int, total: int | None) -> None:
        calls.append(removed)
        if len(calls) == 1:
            host, port = wires[0].sock.getsockname()[:2]
            killer.client_kill(f"{host}:{port}")

    with pytest.raises(redis.ConnectionError):
        store.clear(progress)

    monkeypatch.undo()
    killer.close()
    # The replies read before the error, an UNLINK of at most UNLINK_NAMES each; then the
    # UNLINKs that went out before the kill, counted by what is gone of their names.
    steps = [after - before for before, after in zip([0, *calls], calls, strict=False)]
    assert 0 < calls[0] <= calls[-1] < count
    assert all(0 < step <= cache_keys.UNLINK_NAMES for step in steps[:-1]), steps
    assert store.count() == count - calls[-1]


def suffixed_key(key: str, key_prefix: str, version: int) -> str:
    """A KEY_FUNCTION that puts text after the key as well as before it."""
    return f"{key_prefix}|v{version}|{key}|énd"


def mangled_key(key: str, key_prefix: str, version: int) -> str:
    """A KEY_FUNCTION that keeps the key in view but not as it is."""
    return f"{key_prefix}:{version}:{key.upper()}"


@pytest.mark.django_db
@pytest.mark.parametrize("redis_alias", REDIS_ALIASES, indirect=True)
def test_redis_key_function_with_text_after_the_key(
    redis_alias: str,
    raw_keys: RawKeys,
    settings: Settings,
    installed: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.CACHES = {
        **settings.CACHES,
        redis_alias: {
            **settings.CACHES[redis_alias],
            "KEY_FUNCTION": "tests.test_only_sessions.suffixed_key",
        },
    }
    settings.RELEASE_SESSION_ENGINE = CACHE
    cache = caches[redis_alias]
    client = cache_keys.redis_client(cache)
    sessions = saved_sessions(CACHE, 2, monkeypatch)
    session_keys = {made_key(cache, PREFIXES[CACHE] + key) for key in sessions}
    assert all(key.endswith("|énd".encode()) for key in session_keys)
    seed_redis_look_alikes(cache, CACHE, raw_keys)
    for key in session_keys:
        raw_keys.set(key.decode() + "x")
        raw_keys.set(key.decode().removesuffix("|énd"))
    before = redis_snapshot(client)
    settings.FORCE_LOGOUT_VERSION = 2

    output = release()

    assert done_line(4) in output
    assert "<session key>|énd'" in output
    after = redis_snapshot(client)
    assert before.keys() - after.keys() == session_keys
    untouched = {key: value for key, value in before.items() if key not in session_keys}
    assert {key: after[key] for key in untouched} == untouched


@pytest.mark.django_db
@pytest.mark.parametrize("redis_alias", REDIS_ALIASES, indirect=True)
def test_redis_key_function_that_changes_the_key_cannot_be_listed(
    redis_alias: str, settings: Settings, installed: None
) -> None:
    settings.CACHES = {
        **settings.CACHES,
        redis_alias: {
            **settings.CACHES[redis_alias],
            "KEY_FUNCTION": "tests.test_only_sessions.mangled_key",
        },
    }
    settings.RELEASE_SESSION_ENGINE = CACHE
    cache = caches[redis_alias]
    cache.set(PREFIXES[CACHE] + random_key(), {"n": 1})
    settings.FORCE_LOGOUT_VERSION = 2

    output = release()

    assert "which cannot be listed" in output
    assert cache_keys.session_keys(cache, PREFIXES[CACHE]) is None


@pytest.mark.parametrize(
    ("name", "is_session"),
    [
        ("sessionid" + "a" * DJANGO_LENGTH, True),
        ("sessionid" + "0" * GUARD_LENGTH, True),
        ("sessionid" + "a" * (DJANGO_LENGTH - 1), False),
        ("sessionid" + "a" * (DJANGO_LENGTH + 1), False),
        ("sessionid" + "a" * (GUARD_LENGTH + 1), False),
        ("sessionid" + "A" * DJANGO_LENGTH, False),
        ("sessionid" + "a" * DJANGO_LENGTH + "\n", False),
        ("sessionid" + "a" * DJANGO_LENGTH + "_out_abc123", False),
        ("Sessionid" + "a" * DJANGO_LENGTH, False),
    ],
)
def test_session_key_grammar(name: str, is_session: bool) -> None:
    names = cache_keys.SessionKeys("sessionid")
    assert names.matches(name) is is_session
    assert names.matches(name.encode()) is is_session
    # The same, for a whole SCAN reply of text or of bytes.
    other = "sessionid" + "b" * DJANGO_LENGTH
    assert names.select([other, name, other]) == [other, *([name] if is_session else []), other]
    assert names.select([name.encode()]) == ([name.encode()] if is_session else [])
    assert names.select([]) == []
