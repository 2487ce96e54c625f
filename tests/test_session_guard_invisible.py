"""The guard is invisible to what uses sessions: guarded stores pickle as the engines' own do,
the stamp never shows in a session's data, a signed cookie grows by a few bytes only, and test
cases that forbid database access (SimpleTestCase) keep working on the engines that need none.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.middleware import SessionMiddleware
from django.contrib.sessions.models import Session
from django.contrib.sessions.serializers import JSONSerializer
from django.core import signing
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, SimpleTestCase, override_settings
from pytest_django.fixtures import Settings

import release.guard as guard
from release.guard import (
    KEY_LENGTH,
    Stamp,
    forget_process_stamp,
    known_stamp,
    process_stamp,
    read_stamp,
    stamp_of_key,
)
from release.sessions import COOKIE_STAMP, GuardedStore
from tests.conftest import CACHE, CACHED_DB, COOKIES, DB, FILE, needs_redis, release

ENGINES = [
    pytest.param(DB, id="db"),
    pytest.param(CACHED_DB, id="cached_db"),
    pytest.param(CACHE, id="cache"),
    pytest.param(FILE, id="file"),
    pytest.param(COOKIES, id="signed_cookies"),
]
# Django's own stores of these engines pickle: the guarded ones must, whatever happens.
PICKLING_ENGINES = (DB, FILE, COOKIES)
COOKIE_SALT = "django.contrib.sessions.backends.signed_cookies"
DATA = {"_auth_user_id": "42", "cart": [1, 2, 3], "greeting": "héllo"}


@pytest.fixture(autouse=True)
def new_process() -> Iterator[None]:
    forget_process_stamp()
    yield
    forget_process_stamp()


@pytest.fixture
def after_logout(installed: None, settings: Settings) -> Stamp:
    """A process of the release that logged everyone out: its stamp is not blank."""
    settings.FORCE_LOGOUT_VERSION = 2
    release()
    forget_process_stamp()
    stamp = process_stamp()
    assert not stamp.is_blank
    assert stamp.released == stamp.newest > 0
    return stamp


def guarded_store(settings: Settings, engine: str) -> type[SessionBase]:
    settings.SESSION_ENGINE = "release.sessions"
    settings.RELEASE_SESSION_ENGINE = engine
    store: type[SessionBase] = import_module("release.sessions").SessionStore
    assert issubclass(store, GuardedStore)
    return store


def own_store(engine: str) -> type[SessionBase]:
    store: type[SessionBase] = import_module(engine).SessionStore
    return store


def cookie_payload(cookie: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = signing.loads(
        cookie or "", salt=COOKIE_SALT, serializer=JSONSerializer
    )
    return payload


def assert_carries(stamp: Stamp, engine: str, store: SessionBase) -> None:
    """The stamp is where the guard keeps it: in the key, or signed into the cookie."""
    if engine == COOKIES:
        assert cookie_payload(store.session_key)[COOKIE_STAMP] == stamp.as_text()
    else:
        assert len(store.session_key or "") == KEY_LENGTH
        assert stamp_of_key(store.session_key) == stamp


def assert_shows_only(data: dict[str, Any], store: SessionBase) -> None:
    assert dict(store.items()) == data
    assert sorted(store.keys()) == sorted(data)
    assert list(store.values()) == [value for _, value in store.items()]
    assert len(store.keys()) == len(store.items()) == len(store.values()) == len(data)
    assert COOKIE_STAMP not in store
    assert store.get(COOKIE_STAMP) is None
    assert store.is_empty() is (not data and store.session_key is None)
    assert dict(async_to_sync(store.aitems)()) == data
    assert sorted(async_to_sync(store.akeys)()) == sorted(data)


# Pickling


@pytest.mark.parametrize("engine", ENGINES)
def test_a_guarded_store_pickles_wherever_the_engines_own_store_does(
    engine: str, after_logout: Stamp, settings: Settings
) -> None:
    store_class = guarded_store(settings, engine)
    saved = store_class()
    saved.update(DATA)
    saved.save()
    loaded = store_class(saved.session_key)
    assert dict(loaded.items()) == DATA
    own = own_store(engine)(saved.session_key)
    own.load()

    try:
        pickle.dumps(own)
    except TypeError as error:  # Django's cache-backed stores hold the cache's locks
        assert engine not in PICKLING_ENGINES
        with pytest.raises(TypeError, match=str(error)):
            pickle.dumps(loaded)
        return
    assert engine in PICKLING_ENGINES

    pickled = pickle.dumps(loaded)
    # Unpickled where RELEASE_SESSION_ENGINE names another engine: still the store it was.
    settings.RELEASE_SESSION_ENGINE = FILE if engine != FILE else DB
    copy = pickle.loads(pickled)
    assert type(copy) is type(loaded)
    assert copy.session_key == loaded.session_key
    assert_shows_only(DATA, copy)
    # ... and one never loaded: it loads from the store.
    settings.RELEASE_SESSION_ENGINE = engine
    unread = pickle.loads(pickle.dumps(store_class(saved.session_key)))
    assert_shows_only(DATA, unread)
    unread["more"] = True
    unread.save()
    assert_carries(after_logout, engine, unread)
    assert_shows_only({**DATA, "more": True}, store_class(unread.session_key))


@pytest.mark.parametrize("engine", [CACHE, CACHED_DB])
@pytest.mark.parametrize(
    "backend", ["django.core.cache.backends.redis.RedisCache", "django_redis.cache.RedisCache"]
)
@needs_redis
def test_a_guarded_cache_store_pickles_while_its_cache_does(
    engine: str, backend: str, after_logout: Stamp, settings: Settings
) -> None:
    """Django's cache-backed stores hold their cache: they pickle while its Redis client has
    not connected yet (a cache alias of this test's own)."""
    alias = f"fresh-{uuid.uuid4().hex[:8]}"
    settings.CACHES = {
        **settings.CACHES,
        alias: {"BACKEND": backend, "LOCATION": settings.REDIS_URL, "KEY_PREFIX": alias},
    }
    settings.SESSION_CACHE_ALIAS = alias
    store_class = guarded_store(settings, engine)
    own = own_store(engine)()
    own.update(DATA)
    pickle.dumps(own)

    fresh = store_class()
    fresh.update(DATA)
    copy = pickle.loads(pickle.dumps(fresh))
    assert type(copy) is store_class
    assert_shows_only(DATA, copy)
    copy.save()
    assert_carries(after_logout, engine, copy)
    assert_shows_only(DATA, store_class(copy.session_key))
    copy.delete()


# The stamp is never part of the data


@pytest.mark.parametrize("engine", ENGINES)
def test_the_stamp_never_shows_in_the_data(
    engine: str, after_logout: Stamp, settings: Settings
) -> None:
    store_class = guarded_store(settings, engine)
    store = store_class()
    store.update(DATA)
    store.save()
    assert_carries(after_logout, engine, store)
    assert_shows_only(DATA, store)

    loaded = store_class(store.session_key)
    assert_shows_only(DATA, loaded)
    loaded["greeting"] = "bye"
    loaded.save()
    assert_shows_only({**DATA, "greeting": "bye"}, loaded)
    loaded.cycle_key()
    assert_carries(after_logout, engine, loaded)
    assert_shows_only({**DATA, "greeting": "bye"}, loaded)
    async_to_sync(loaded.acycle_key)()
    assert_shows_only({**DATA, "greeting": "bye"}, loaded)

    # A session never read, whose key cycles (as login() does): its data, and no stamp.
    unread = store_class(loaded.session_key)
    unread.cycle_key()
    assert_carries(after_logout, engine, unread)
    assert_shows_only({**DATA, "greeting": "bye"}, store_class(unread.session_key))

    if engine != COOKIES:
        # What the engine keeps is the data alone: its own store and the model read it.
        assert own_store(engine)(unread.session_key).load() == {**DATA, "greeting": "bye"}
    if engine in (DB, CACHED_DB):
        row = Session.objects.get(session_key=unread.session_key)
        assert row.get_decoded() == {**DATA, "greeting": "bye"}

    emptied = store_class(unread.session_key)
    emptied.clear()
    emptied.save()
    assert_shows_only({}, store_class(emptied.session_key))


# Class-level state


def test_a_guarded_file_store_shares_the_file_engines_storage_path(
    settings: Settings, tmp_path: Path
) -> None:
    """Django's file store caches SESSION_FILE_PATH on its class; code that resets the cache
    after changing the setting (`del SessionStore._storage_path`, as Django's own tests do)
    resets it for the guarded store too, on either class."""
    store_class = guarded_store(settings, FILE)
    file_store = own_store(FILE)
    before = file_store.__dict__.get("_storage_path")
    try:
        store_class()  # caches the path, once, on the file engine's class
        assert "_storage_path" in file_store.__dict__
        assert "_storage_path" not in store_class.__dict__
        for reset in (store_class, file_store):
            settings.SESSION_FILE_PATH = str(tmp_path / reset.__module__)
            Path(settings.SESSION_FILE_PATH).mkdir()
            del reset._storage_path  # type: ignore[attr-defined]
            assert not hasattr(store_class, "_storage_path")
            store = store_class()
            store["here"] = True
            store.save()
            assert file_store(store.session_key).load() == {"here": True}
            assert any(Path(settings.SESSION_FILE_PATH).iterdir())
    finally:
        if before is None:
            if "_storage_path" in file_store.__dict__:
                del file_store._storage_path  # type: ignore[attr-defined]
        else:
            file_store._storage_path = before  # type: ignore[attr-defined]


# A signed cookie's size


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="empty"),
        pytest.param({"_auth_user_id": "1"}, id="user-id"),
        pytest.param(
            {
                "_auth_user_id": "1234567",
                "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                "_auth_user_hash": "9f" * 32,
            },
            id="signed-in",
        ),
        pytest.param({"cart": list(range(400))}, id="compressible"),
        pytest.param({"token": "x7Qm2Lp9Zr4Tk8Wv" * 40}, id="long"),
    ],
)
def test_a_signed_cookie_grows_by_at_most_64_bytes(
    data: dict[str, Any], after_logout: Stamp, settings: Settings
) -> None:
    own = own_store(COOKIES)()
    own.update(data)
    own.save()
    guarded = guarded_store(settings, COOKIES)()
    guarded.update(data)
    guarded.save()
    assert own.session_key is not None
    assert guarded.session_key is not None
    assert_carries(after_logout, COOKIES, guarded)
    assert 0 < len(guarded.session_key) - len(own.session_key) <= 64


def test_the_largest_stamp_grows_a_cookie_by_at_most_64_bytes(
    installed: None, settings: Settings
) -> None:
    """Epochs as large as a session key can hold (7 base-36 digits: the year 4439)."""
    largest = 36**7 - 1
    guard._stamp = Stamp(largest, largest)
    own = own_store(COOKIES)()
    own["_auth_user_id"] = "1"
    own.save()
    guarded = guarded_store(settings, COOKIES)()
    guarded["_auth_user_id"] = "1"
    guarded.save()
    assert cookie_payload(guarded.session_key)[COOKIE_STAMP] == f"{largest}.{largest}"
    assert 0 < len(guarded.session_key or "") - len(own.session_key or "") <= 64


# Test cases that forbid database access

NO_DATABASE_ENGINES = (CACHE, FILE, COOKIES)
LATER = Stamp(2_000_000_000, 2_000_000_000)  # a process that read its stamp before the tests


def middleware_round_trip() -> tuple[str, dict[str, Any]]:
    """A request that writes to its session, then one that reads it back: the cookie's value
    and what the second request saw."""
    factory = RequestFactory()

    def write(request: HttpRequest) -> HttpResponse:
        request.session["hello"] = "world"
        return HttpResponse()

    response: Any = SessionMiddleware(write)(factory.get("/"))
    cookie = response.cookies[django_settings.SESSION_COOKIE_NAME].value
    seen: dict[str, Any] = {}

    def read(request: HttpRequest) -> HttpResponse:
        seen.update(request.session.items())
        return HttpResponse()

    request = factory.get("/")
    request.COOKIES[django_settings.SESSION_COOKIE_NAME] = cookie
    SessionMiddleware(read)(request)
    return cookie, seen


class GuardedSessionsWithoutDatabase(SimpleTestCase):
    """A team's SimpleTestCase tests that touch sessions, on an engine that needs no database,
    through `release.sessions`: they pass, and nothing reaches the database."""

    def setUp(self) -> None:
        forget_process_stamp()
        self.addCleanup(forget_process_stamp)
        caches["default"].clear()

    def store_class(self) -> type[SessionBase]:
        store: type[SessionBase] = import_module("release.sessions").SessionStore
        return store

    def check_round_trips(self) -> tuple[str, SessionBase]:
        store = self.store_class()()
        store.update(DATA)
        store.save()
        loaded = self.store_class()(store.session_key)
        assert dict(loaded.items()) == DATA
        loaded["greeting"] = "bye"
        loaded.save()
        loaded.cycle_key()
        assert dict(self.store_class()(loaded.session_key).items()) == dict(loaded.items())
        async_to_sync(loaded.asave)()
        cookie, seen = middleware_round_trip()
        assert seen == {"hello": "world"}
        loaded.flush()
        assert loaded.session_key is None
        return cookie, store

    def test_the_stamp_cannot_be_read_and_nothing_is_enforced(self) -> None:
        assert read_stamp() is None  # the database is out of reach
        for engine in NO_DATABASE_ENGINES:
            with self.subTest(engine=engine), override_settings(RELEASE_SESSION_ENGINE=engine):
                cookie, store = self.check_round_trips()
                assert known_stamp() is None  # nothing cached: read when it can be
                if engine != COOKIES:
                    assert len(cookie) == 32  # Django's own keys
                    assert len(store.session_key or "") == 32
                else:
                    assert COOKIE_STAMP not in cookie_payload(cookie)
                # A session that Django's own store made is accepted.
                own = own_store(engine)()
                own["mine"] = 1
                own.save()
                assert dict(self.store_class()(own.session_key).items()) == {"mine": 1}

    def test_a_stamp_read_before_is_enforced_without_the_database(self) -> None:
        guard._stamp = LATER
        for engine in NO_DATABASE_ENGINES:
            with self.subTest(engine=engine), override_settings(RELEASE_SESSION_ENGINE=engine):
                cookie, store = self.check_round_trips()
                assert known_stamp() is LATER
                if engine != COOKIES:
                    assert stamp_of_key(cookie) == LATER
                    assert stamp_of_key(store.session_key) == LATER
                else:
                    assert cookie_payload(cookie)[COOKIE_STAMP] == LATER.as_text()
                # A session from before the stamp (Django's own store made it) is refused.
                own = own_store(engine)()
                own["mine"] = 1
                own.save()
                refused = self.store_class()(own.session_key)
                assert dict(refused.items()) == {}
                assert refused.session_key is None
