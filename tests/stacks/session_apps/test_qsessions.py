"""django-qsessions 2.1, `db` and `cached_db`, guarded: run with
`pytest tests/stacks/session_apps --ds tests.stacks.qsessions_settings`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.db.models import Model
from pytest_django.fixtures import Settings
from qsessions.models import Session

from release.clearing import keys as cache_keys
from tests.stacks.session_apps.lifecycle import (
    ColumnTests,
    LifecycleTests,
    ManageTests,
    Site,
    Visitor,
    make_people,
    row_exists,
)

DB = "qsessions.backends.db"
CACHED_DB = "qsessions.backends.cached_db"

needs_redis = pytest.mark.skipif(
    not getattr(django_settings, "REDIS_URL", None), reason="REDIS_URL is not set"
)

# (engine, SESSION_CACHE_ALIAS)
CACHED = [
    pytest.param((CACHED_DB, "default"), id="cached_db-locmem"),
    pytest.param((CACHED_DB, "redis"), id="cached_db-redis", marks=needs_redis),
]
ENGINES = [pytest.param((DB, "default"), id="db"), *CACHED]


def use_engine(settings: Settings, name: str, cache_alias: str) -> Iterator[str]:
    """The guarded qsessions engine `name`, on a cache whose KEY_PREFIX is this test's own."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings.RELEASE_SESSION_ENGINE = name
    settings.SESSION_CACHE_ALIAS = cache_alias
    settings.CACHES = {
        **settings.CACHES,
        cache_alias: {**settings.CACHES[cache_alias], "KEY_PREFIX": prefix},
    }
    yield name
    cache = caches[cache_alias]
    client = cache_keys.redis_client(cache)
    if client is None:
        cache.clear()
    else:  # Redis DB 15 is shared: only this test's keys go
        cache_keys.unlink_matching(client, f"{cache_keys.glob_escape(prefix)}:*")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, settings: Settings) -> Iterator[str]:
    yield from use_engine(settings, *request.param)


@pytest.fixture(params=CACHED)
def cached_engine(request: pytest.FixtureRequest, settings: Settings) -> Iterator[str]:
    yield from use_engine(settings, *request.param)


@pytest.fixture
def model() -> type[Model]:
    session: type[Model] = Session
    return session


class TestLifecycle(LifecycleTests):
    pass


class TestColumns(ColumnTests):
    def test_a_new_address_is_saved_by_the_web_that_sees_it(
        self, site: Site, people: dict[str, Visitor], engine: str
    ) -> None:
        """qsessions saves a session whose IP or User-Agent changed: an old web that sees a new
        address writes, so the session takes its stamp, and the new web refuses it."""
        alice = people["alice"]
        site.release_phase(1)
        site.release_phase(2)
        old = site.boot(2)
        site.release_phase(3)
        new = site.boot(3)
        alice.sign_in(new)
        made = alice.key

        alice.ip = "198.51.100.99"
        assert alice.who(old) == "alice"

        assert alice.key != made
        assert not row_exists(Session, made)
        row: Any = Session.objects.get(session_key=alice.key)
        assert row.ip == "198.51.100.99"
        assert alice.who(new) is None


@pytest.mark.django_db
def test_cached_db_keeps_no_copy_after_a_bump(cached_engine: str, settings: Settings) -> None:
    """cached_db reads the cache first: the release removes the copies with the rows."""
    store: Any = import_module(django_settings.SESSION_ENGINE).SessionStore
    site, alice = Site(settings), make_people()["alice"]
    site.release_phase(1)
    alice.sign_in(site.boot(1))
    cache = caches[django_settings.SESSION_CACHE_ALIAS]
    key = store.cache_key_prefix + (alice.key or "")
    assert cache.get(key) is not None

    site.release_phase(2)

    assert cache.get(key) is None
    assert alice.who(site.boot(2)) is None


class TestManage(ManageTests):
    pass
