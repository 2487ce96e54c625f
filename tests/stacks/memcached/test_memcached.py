"""The `cache` and `cached_db` engines on a real memcached (Django's PyMemcacheCache).

memcached cannot be listed, so a release removes nothing from it for `cache`: the guard refuses
every session from before the logout, whose items stay in memcached until they expire. For
`cached_db`, the release deletes the rows and the cached copies of the rows' keys, which
`load()` would otherwise read first.

A process is played in this one: `start()` reads a stamp as a process starting now would, and
`running(process)` serves with it, as that process would long after it started.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings

from release.clearing import clearer_for
from release.guard import forget_process_stamp
from tests.conftest import CACHE, CACHED_DB, release
from tests.processes import Process, running, start
from tests.stacks.memcached.conftest import Memcached

PASSWORD = "correct horse battery staple"

LOGOUT = "Decision: log everyone out"
NOTHING = "Decision: nobody is logged out"


@pytest.fixture(autouse=True)
def new_process() -> Iterator[None]:
    forget_process_stamp()
    yield
    forget_process_stamp()


@pytest.fixture(params=[CACHE, CACHED_DB], ids=["cache", "cached_db"])
def engine(request: pytest.FixtureRequest, settings: Settings, memcached: Memcached) -> str:
    settings.SESSION_ENGINE = "release.sessions"
    settings.RELEASE_SESSION_ENGINE = request.param
    return str(request.param)


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("ada", password=PASSWORD)


def sign_in(client: Client) -> None:
    response = client.post("/accounts/login/", {"username": "ada", "password": PASSWORD})
    assert response.status_code == 302, response.content


def add_to_cart(client: Client) -> None:
    """A request that writes to the session without signing in."""
    response = client.post("/cart/add/")
    assert response.status_code == 302, response.content


def signed_in(client: Client) -> bool:
    body = client.get("/").content.decode()
    assert ("Signed in as" in body) != ("You are not signed in." in body)
    return "Signed in as <strong>ada</strong>" in body


def on(process: Process, client: Client, action: Any = signed_in) -> Any:
    with running(process):
        return action(client)


def deploy(settings: Settings, version: int) -> str:
    """The release phase of a release with FORCE_LOGOUT_VERSION = version."""
    settings.FORCE_LOGOUT_VERSION = version
    return release()


def store_class(engine: str) -> type[SessionBase]:
    store: type[SessionBase] = import_module(engine).SessionStore
    return store


def session_key(client: Client) -> str:
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


def cache_key(engine: str, client: Client) -> str:
    """The cache key (before KEY_PREFIX and VERSION) the engine keeps the session under."""
    return str(store_class(engine)(session_key(client)).cache_key)  # type: ignore[attr-defined]


def session_without_the_tool(engine: str, user: User) -> Client:
    """A signed-in session saved by the engine itself, as a project without the tool made it."""
    store = store_class(engine)()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    client = Client()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = str(store.session_key)
    return client


def test_the_deploy_lifecycle_on_memcached(
    engine: str, memcached: Memcached, user: User, settings: Settings
) -> None:
    before_install = session_without_the_tool(engine, user)
    assert memcached.has(cache_key(engine, before_install))

    assert "Decision: record the markers" in deploy(settings, 1)  # R1 installs the tool
    r1 = start()
    assert on(r1, before_install), "installing the tool logs nobody out"
    before_logout = Client()
    on(r1, before_logout, sign_in)
    assert on(r1, before_logout)
    made_before = [before_install, before_logout]
    assert all(memcached.has(cache_key(engine, client)) for client in made_before)
    rows = Session.objects.count()

    output = deploy(settings, 2)  # R2's release phase; R1 keeps serving

    assert LOGOUT in output
    if engine == CACHE:
        assert "cannot be listed, so none were deleted" in output
        assert all(memcached.has(cache_key(engine, client)) for client in made_before), (
            "memcached cannot be listed: the release removes nothing from it"
        )
    else:
        assert rows == 2
        assert f"Asked the cache to delete {rows} cached copies." in output
        assert not any(memcached.has(cache_key(engine, client)) for client in made_before)
        assert Session.objects.count() == 0
    race = Client()
    on(r1, race, sign_in)  # on R1, after R2's release phase, before R2 serves
    assert on(r1, race), "the old release still serves the session it made"
    race_key = cache_key(engine, race)
    assert memcached.has(race_key)

    r2 = start()  # R2's processes
    assert r2.stamp.newest > r1.stamp.newest
    assert not on(r2, before_install)
    assert not on(r2, before_logout)
    assert not on(r2, race)
    if engine == CACHE:
        assert memcached.has(race_key), "refused, not removed: refusing deletes the cookie only"

    # Preboot: R1 and R2 serve side by side.
    by_r1 = Client()
    on(r1, by_r1, sign_in)
    assert on(r1, by_r1)
    assert not on(r2, by_r1), "a session R1 makes is refused by R2"
    by_r2 = Client()
    on(r2, by_r2, sign_in)
    assert on(r2, by_r2)
    assert on(r1, by_r2), "R2's sessions are accepted by R1"
    written_by_r1 = Client()
    on(r2, written_by_r1, sign_in)
    on(r1, written_by_r1, add_to_cart)
    assert on(r1, written_by_r1)
    assert not on(r2, written_by_r1), "a session R1 writes to is refused by R2"
    on(r2, by_r2, add_to_cart)
    assert on(r1, by_r2)
    assert on(r2, by_r2)

    assert NOTHING in deploy(settings, 2)  # a redeploy of R2
    redeployed = start()
    assert redeployed.stamp == r2.stamp
    assert on(redeployed, by_r2)
    assert not on(redeployed, race)
    assert not on(redeployed, before_install)

    assert NOTHING in deploy(settings, 1)  # a rollback to R1's code
    rolled_back = start()
    assert on(rolled_back, by_r2), "a rollback logs nobody out"
    on(rolled_back, by_r2, add_to_cart)
    assert on(redeployed, by_r2), "R2 accepts what the rollback's processes write"
    assert not on(rolled_back, before_logout)
    assert not on(rolled_back, race)
    assert not on(rolled_back, by_r1), "nor what R1 made before the rollback"


def test_cached_db_deletes_the_copies_of_every_row_in_batches(
    memcached: Memcached, settings: Settings, db: None
) -> None:
    settings.SESSION_ENGINE = "release.sessions"
    settings.RELEASE_SESSION_ENGINE = CACHED_DB
    deploy(settings, 1)
    store = store_class(CACHED_DB)
    prefix = str(store.cache_key_prefix)  # type: ignore[attr-defined]
    data = store().encode({"n": 1})
    count = 5_001  # more than one batch of release.clearing.keys.BATCH
    keys = [secrets.token_hex(16) for _ in range(count)]
    Session.objects.bulk_create(
        Session(session_key=key, session_data=data, expire_date=timezone.now() + timedelta(1))
        for key in keys
    )
    memcached.cache.set_many({prefix + key: {"n": 1} for key in keys})
    elsewhere = "not-a-session"
    memcached.cache.set(elsewhere, "kept")
    assert clearer_for().describe().endswith("which cannot be listed")

    output = deploy(settings, 2)

    assert f"Asked the cache to delete {count:,} cached copies." in output
    raw = [memcached.cache.make_key(prefix + key) for key in keys]
    left = sum(len(memcached.client.get_many(raw[i : i + 500])) for i in range(0, count, 500))
    assert left == 0
    assert Session.objects.count() == 0
    assert memcached.cache.get(elsewhere) == "kept"
