"""What a logout removes at release time, engine by engine, and what it leaves alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.core.management import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings

from release.checks import check_session_engine
from release.clearing import keys as cache_keys
from release.guard import forget_process_stamp
from release.models import Logout
from tests.conftest import (
    CACHE,
    CACHED_DB,
    COOKIES,
    FILE,
    make_sessions,
    needs_redis,
    release,
    save_sessions,
)

REDIS_ALIASES = [
    pytest.param("redis", id="RedisCache", marks=needs_redis),
    pytest.param("django_redis", id="django_redis", marks=needs_redis),
]


def with_cache_options(settings: Settings, alias: str, **options: Any) -> None:
    settings.CACHES = {**settings.CACHES, alias: {**settings.CACHES[alias], **options}}


@pytest.fixture
def redis_alias(request: pytest.FixtureRequest, settings: Settings) -> Iterator[str]:
    """A Redis cache alias with a KEY_PREFIX and VERSION of this test's own."""
    alias = request.param
    prefix = f"t{uuid.uuid4().hex[:8]}[*]"  # glob characters must be matched literally
    with_cache_options(settings, alias, KEY_PREFIX=prefix, VERSION=3)
    settings.SESSION_CACHE_ALIAS = alias
    yield alias
    client = cache_keys.redis_client(caches[alias])
    cache_keys.unlink_matching(client, f"{cache_keys.glob_escape(prefix)}*")
    cache_keys.unlink_matching(client, "other-app:*")


def redis_keys(alias: str) -> set[bytes]:
    client = cache_keys.redis_client(caches[alias])
    return set(client.scan_iter(match="*", count=5000))


@pytest.mark.django_db
@pytest.mark.parametrize("redis_alias", REDIS_ALIASES, indirect=True)
def test_cache_engine_on_redis_removes_exactly_the_session_keys(
    redis_alias: str, settings: Settings, installed: None
) -> None:
    settings.RELEASE_SESSION_ENGINE = CACHE
    cache = caches[redis_alias]
    store_class = import_module(CACHE).SessionStore
    prefix = store_class.cache_key_prefix
    cache.set_many({f"{prefix}{uuid.uuid4().hex}": {"a": 1} for _ in range(12_000)})
    cache.set("unrelated", "stays")
    cache.set(f"{prefix}old-version", "stays", version=2)
    other = cache_keys.redis_client(cache)
    other.set("other-app:1", "stays")
    before = redis_keys(redis_alias)
    settings.FORCE_LOGOUT_VERSION = 2

    output = release()

    assert "removed 12,000 sessions" in output
    assert f"cache {redis_alias!r}" in output
    after = redis_keys(redis_alias)
    assert len(before - after) == 12_000
    assert cache.get("unrelated") == "stays"
    assert cache.get(f"{prefix}old-version", version=2) == "stays"
    assert other.get("other-app:1") == b"stays"


@pytest.mark.django_db
@pytest.mark.parametrize("redis_alias", REDIS_ALIASES, indirect=True)
def test_cached_db_on_redis_removes_rows_then_copies(
    redis_alias: str, settings: Settings, installed: None
) -> None:
    settings.RELEASE_SESSION_ENGINE = CACHED_DB
    prefix = import_module(CACHED_DB).SessionStore.cache_key_prefix
    keys = [prefix + key for key in save_sessions(CACHED_DB, 30)]
    caches[redis_alias].set("unrelated", "stays")
    settings.FORCE_LOGOUT_VERSION = 2

    output = release()

    assert "removed 30 sessions" in output
    assert "Removed 30 cached copies." in output
    assert Session.objects.count() == 0
    assert caches[redis_alias].get_many(keys) == {}
    assert caches[redis_alias].get("unrelated") == "stays"


@pytest.mark.django_db
def test_cached_db_on_a_cache_that_cannot_be_listed(settings: Settings, installed: None) -> None:
    settings.RELEASE_SESSION_ENGINE = CACHED_DB
    settings.SESSION_CACHE_ALIAS = "locmem"
    prefix = import_module(CACHED_DB).SessionStore.cache_key_prefix
    keys = [prefix + key for key in save_sessions(CACHED_DB, 7)]
    caches["locmem"].set("unrelated", "stays")
    settings.FORCE_LOGOUT_VERSION = 2

    output = release()

    assert "Asked the cache to delete 7 cached copies." in output
    assert caches["locmem"].get_many(keys) == {}
    assert caches["locmem"].get("unrelated") == "stays"
    assert Session.objects.count() == 0


@pytest.mark.django_db
def test_cache_that_cannot_be_listed_is_left_to_the_guard(
    settings: Settings, installed: None
) -> None:
    settings.RELEASE_SESSION_ENGINE = CACHE
    settings.SESSION_CACHE_ALIAS = "locmem"
    settings.FORCE_LOGOUT_VERSION = 2

    output = release()

    assert "cache 'locmem' (LocMemCache), which cannot be listed" in output
    assert "Sessions in LocMemCache cannot be listed, so none were deleted" in output
    assert "the session guard refuses them at their next request" in output
    assert Logout.objects.get(epoch=1).sessions_removed is None


@pytest.mark.django_db
def test_key_function_that_hides_the_key(settings: Settings, installed: None) -> None:
    settings.RELEASE_SESSION_ENGINE = CACHE
    settings.SESSION_CACHE_ALIAS = "locmem"
    with_cache_options(settings, "locmem", KEY_FUNCTION="tests.test_stores.hashed_key")

    assert cache_keys.session_keys(caches["locmem"], "prefix") is None


def hashed_key(key: str, key_prefix: str, version: int) -> str:
    import hashlib

    return hashlib.sha256(f"{key_prefix}:{version}:{key}".encode()).hexdigest()


@pytest.mark.django_db
def test_file_engine_removes_session_files_only(settings: Settings, installed: None) -> None:
    directory = Path(django_settings.SESSION_FILE_PATH)
    settings.RELEASE_SESSION_ENGINE = FILE
    save_sessions(FILE, 5)
    unrelated = directory / "notes.txt"
    unrelated.write_text("stays")
    sessions = [p for p in directory.iterdir() if p.name.startswith("sessionid")]
    assert len(sessions) >= 5
    settings.FORCE_LOGOUT_VERSION = 2

    output = release()

    assert f"removed {len(sessions)} sessions" in output
    assert "Other hosts' session directories are not reached" in output
    assert not [p for p in directory.iterdir() if p.name.startswith("sessionid")]
    assert unrelated.read_text() == "stays"
    unrelated.unlink()


@pytest.mark.django_db
def test_signed_cookies_need_the_guard(settings: Settings, installed: None) -> None:
    settings.RELEASE_SESSION_ENGINE = COOKIES
    settings.FORCE_LOGOUT_VERSION = 2

    output = release()

    assert "Signed-cookie sessions cannot be deleted server-side" in output
    assert "Done: recorded in the history as epoch 1" in output


def unguarded(settings: Settings) -> None:
    """SESSION_ENGINE the engine that keeps the sessions, without the guard."""
    settings.SESSION_ENGINE = settings.RELEASE_SESSION_ENGINE
    del settings.RELEASE_SESSION_ENGINE


@pytest.mark.django_db
@pytest.mark.parametrize("engine", [COOKIES, FILE, CACHE])
def test_release_refuses_an_engine_it_cannot_clear_without_the_guard(
    settings: Settings, installed: None, engine: str
) -> None:
    settings.RELEASE_SESSION_ENGINE = engine
    settings.SESSION_CACHE_ALIAS = "locmem"
    unguarded(settings)
    settings.FORCE_LOGOUT_VERSION = 2

    with pytest.raises(CommandError) as excinfo:
        release()

    message = str(excinfo.value)
    assert f"SESSION_ENGINE {engine!r} keeps sessions that a release cannot all remove" in message
    assert "Set SESSION_ENGINE to 'release.sessions'" in message
    assert Logout.objects.count() == 1
    assert [error.id for error in check_session_engine()] == ["release.E002"]


@pytest.mark.django_db
def test_db_engine_without_the_guard_works_with_a_warning(
    settings: Settings, installed: None
) -> None:
    unguarded(settings)
    make_sessions(2)
    settings.FORCE_LOGOUT_VERSION = 2

    assert "removed 2 sessions" in release()
    warnings = check_session_engine()
    assert [warning.id for warning in warnings] == ["release.W002"]
    assert "sessions that the old release makes while the release phase runs" in warnings[0].msg


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("release.sessions", "the guard itself"),
        ("no.such.engine", "cannot be imported"),
        ("", "must be a dotted path"),
        (42, "must be a dotted path"),
    ],
)
def test_a_guarded_engine_that_is_not_an_engine(
    settings: Settings, value: object, problem: str
) -> None:
    settings.RELEASE_SESSION_ENGINE = value

    errors = check_session_engine()

    assert [error.id for error in errors] == ["release.E003"]
    assert problem in errors[0].msg


def test_the_guarded_engine_setting_without_the_guard(settings: Settings) -> None:
    settings.SESSION_ENGINE = CACHED_DB

    warnings = check_session_engine()

    assert [warning.id for warning in warnings] == ["release.W003"]
    assert "no session is guarded" in warnings[0].msg


@pytest.mark.django_db
def test_unknown_engine(settings: Settings, installed: None) -> None:
    settings.RELEASE_SESSION_ENGINE = "tests.unknown_engine"
    settings.FORCE_LOGOUT_VERSION = 2

    with pytest.raises(CommandError, match="is not one of Django's engines"):
        release()
    assert [warning.id for warning in check_session_engine()] == ["release.W001"]


def requests_and_queries(client: Client) -> list[int]:
    """The number of queries of an anonymous page, a sign-in POST and a signed-in page."""
    counts = []
    for method, path, data in [
        ("get", "/", None),
        ("post", "/accounts/login/", {"username": "ada", "password": "pw-12345-long"}),
        ("get", "/", None),
    ]:
        with CaptureQueriesContext(connection) as queries:
            response = getattr(client, method)(path, data)
        assert response.status_code in {200, 302}
        counts.append(len(queries))
    return counts


@pytest.mark.django_db
def test_the_guard_costs_no_query(settings: Settings, installed: None) -> None:
    from django.contrib.auth.models import User

    User.objects.create_user("ada", password="pw-12345-long")
    forget_process_stamp()
    Client().get("/", HTTP_COOKIE=f"sessionid={'w' * 32}")  # the one read per process

    with_guard = requests_and_queries(Client())
    unguarded(settings)
    without = requests_and_queries(Client())

    assert with_guard == without
    assert without[1] > 0


@pytest.mark.django_db
@pytest.mark.parametrize("redis_alias", REDIS_ALIASES, indirect=True)
def test_the_guard_costs_no_cache_round_trip(
    redis_alias: str, settings: Settings, installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts what this process sends to Redis (one packet a round trip, a pipeline too), so
    that other clients of the same server do not count."""
    from django.contrib.auth.models import User
    from redis.connection import AbstractConnection

    settings.RELEASE_SESSION_ENGINE = CACHED_DB
    User.objects.create_user("ada", password="pw-12345-long")
    forget_process_stamp()
    Client().get("/", HTTP_COOKIE=f"sessionid={'w' * 32}")
    sent: list[object] = []
    send = AbstractConnection.send_packed_command

    def counted(self: AbstractConnection, command: object, check_health: bool = True) -> None:
        sent.append(command)
        send(self, command, check_health)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)

    def commands(test_client: Client) -> int:
        sent.clear()
        requests_and_queries(test_client)
        return len(sent)

    with_guard = commands(Client())
    unguarded(settings)
    without = commands(Client())

    assert with_guard == without
    assert without > 0
