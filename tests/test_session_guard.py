"""No session survives a logout, on every engine: the release-phase race, preboot, rollbacks.

A process is played by the markers in settings plus `forget_process_epoch()`: the old release
keeps the epoch it read, the new release reads its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.cache import caches
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings

from release.guard import STAMP, forget_process_epoch, process_epoch
from tests.conftest import CACHE, CACHED_DB, COOKIES, CUSTOM, DB, FILE, needs_redis, release

PASSWORD = "correct horse battery staple"

# (engine, SESSION_CACHE_ALIAS)
ENGINES = [
    pytest.param((DB, "default"), id="db"),
    pytest.param((CUSTOM, "default"), id="custom-db"),
    pytest.param((CACHED_DB, "locmem"), id="cached_db-locmem"),
    pytest.param((CACHED_DB, "redis"), id="cached_db-RedisCache", marks=needs_redis),
    pytest.param((CACHED_DB, "django_redis"), id="cached_db-django_redis", marks=needs_redis),
    pytest.param((CACHE, "locmem"), id="cache-locmem"),
    pytest.param((CACHE, "redis"), id="cache-RedisCache", marks=needs_redis),
    pytest.param((CACHE, "django_redis"), id="cache-django_redis", marks=needs_redis),
    pytest.param((FILE, "default"), id="file"),
    pytest.param((COOKIES, "default"), id="signed_cookies"),
]


@pytest.fixture(autouse=True)
def new_process() -> Iterator[None]:
    forget_process_epoch()
    yield
    forget_process_epoch()


@pytest.fixture
def engine(request: pytest.FixtureRequest, settings: Settings) -> Iterator[str]:
    """SESSION_ENGINE and SESSION_CACHE_ALIAS, with a KEY_PREFIX of this test's own."""
    name, cache_alias = request.param
    settings.SESSION_ENGINE = name
    settings.SESSION_CACHE_ALIAS = cache_alias
    caches_config = {**settings.CACHES}
    caches_config[cache_alias] = {
        **caches_config[cache_alias],
        "KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
    }
    settings.CACHES = caches_config
    yield name
    caches[cache_alias].clear() if cache_alias == "locmem" else None


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("ada", password=PASSWORD)


def sign_in(client: Client) -> None:
    response = client.post("/accounts/login/", {"username": "ada", "password": PASSWORD})
    assert response.status_code == 302, response.content


def signed_in(client: Client) -> bool:
    body = client.get("/").content.decode()
    assert ("Signed in as" in body) != ("You are not signed in." in body)
    return "Signed in as <strong>ada</strong>" in body


def session_without_the_tool(user: User) -> Client:
    """A signed-in session saved by the plain engine, as an app without the tool made it."""
    store = import_module(django_settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    client = Client()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = store.session_key
    return client


def deploy(settings: Settings, version: int) -> str:
    """A release with FORCE_LOGOUT_VERSION = version; its processes start afterwards."""
    settings.FORCE_LOGOUT_VERSION = version
    return release()


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_no_session_from_before_a_logout_survives(
    engine: str, user: User, settings: Settings
) -> None:
    deploy(settings, 1)  # R1 installs the tool
    before_install = session_without_the_tool(user)
    assert signed_in(before_install), "installing the tool logs nobody out"
    before_logout = Client()
    sign_in(before_logout)
    assert process_epoch() == 0

    output = deploy(settings, 2)  # R2's release command; R1 keeps serving
    assert "Decision: log everyone out" in output
    race = Client()
    sign_in(race)  # on R1, after R2's release command finished
    assert signed_in(race), "the old release still serves the session it made"

    forget_process_epoch()  # R2's dynos boot
    assert process_epoch() == 1
    assert not signed_in(before_logout)
    assert not signed_in(race)
    assert not signed_in(before_install)
    after = Client()
    sign_in(after)
    assert signed_in(after)
    sign_in(race)  # signing in again works at once
    assert signed_in(race)

    deploy(settings, 1)  # R3: a rollback to R1's code
    forget_process_epoch()
    assert signed_in(after), "a rollback logs nobody out"
    assert signed_in(race)
    assert not signed_in(before_logout)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_preboot_old_and_new_release_side_by_side(
    engine: str, user: User, settings: Settings
) -> None:
    deploy(settings, 1)
    Client().get("/")
    old_epoch = process_epoch()
    deploy(settings, 2)
    forget_process_epoch()
    new_epoch = process_epoch()

    def on(epoch: int, client: Client, action: Any = signed_in) -> Any:
        import release.guard as guard

        guard._epoch = epoch
        return action(client)

    made_by_old, made_by_new = Client(), Client()
    on(old_epoch, made_by_old, sign_in)
    on(new_epoch, made_by_new, sign_in)

    assert on(old_epoch, made_by_old) is True
    assert on(new_epoch, made_by_old) is False
    assert on(new_epoch, made_by_new) is True
    assert on(old_epoch, made_by_new) is True, "the old release accepts newer sessions"


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_install_logs_nobody_out_and_sessions_are_stamped(
    engine: str, user: User, settings: Settings
) -> None:
    before = session_without_the_tool(user)

    deploy(settings, 1)
    forget_process_epoch()

    assert signed_in(before)
    client = Client()
    sign_in(client)
    store = import_module(django_settings.SESSION_ENGINE).SessionStore(
        client.cookies[django_settings.SESSION_COOKIE_NAME].value
    )
    assert store.load()[STAMP] == 0


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_async_stack(engine: str, user: User, settings: Settings) -> None:
    deploy(settings, 1)
    client = Client()
    sign_in(client)
    async_client = AsyncClient()
    async_client.cookies = client.cookies

    assert async_to_sync(async_client.get)("/whoami/").content == b"signed in as ada"

    deploy(settings, 2)
    forget_process_epoch()

    assert async_to_sync(async_client.get)("/whoami/").content == b"not signed in"
    assert async_to_sync(AsyncClient().get)("/whoami/").content == b"not signed in"


@pytest.mark.django_db
def test_unstamped_or_odd_stamps_are_refused_after_a_logout(user: User, settings: Settings) -> None:
    deploy(settings, 1)
    deploy(settings, 2)
    forget_process_epoch()
    for stamp in ("1", None, 1.5, [1]):
        client = session_without_the_tool(user)
        store = import_module(django_settings.SESSION_ENGINE).SessionStore(
            client.cookies[django_settings.SESSION_COOKIE_NAME].value
        )
        store[STAMP] = stamp
        store.save()

        assert not signed_in(client), stamp


@pytest.mark.django_db
def test_logout_keeps_password_reset_links_and_signed_values(
    user: User, settings: Settings
) -> None:
    deploy(settings, 1)
    token = default_token_generator.make_token(user)
    signed = signing.dumps({"order": 7})

    deploy(settings, 2)
    forget_process_epoch()

    assert default_token_generator.check_token(user, token)
    assert signing.loads(signed) == {"order": 7}


@pytest.mark.django_db
def test_the_epoch_is_read_once_per_process(user: User, settings: Settings) -> None:
    deploy(settings, 1)
    signed = Client()
    sign_in(signed)
    forget_process_epoch()

    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert signed_in(signed)
            assert not signed_in(Client())
        sign_in(Client())

    reads = [q["sql"] for q in queries.captured_queries if "release_" in q["sql"]]
    assert len(reads) == 1
    assert "release_releaseepoch" in reads[0]


@pytest.mark.django_db
def test_markers_never_released_enforce_the_newest_epoch(user: User, settings: Settings) -> None:
    """`runserver` with a marker no release command has seen yet."""
    deploy(settings, 1)
    deploy(settings, 2)
    settings.FORCE_LOGOUT_VERSION = 3
    forget_process_epoch()

    assert process_epoch() == 1


@pytest.mark.django_db
def test_no_release_ever_enforces_nothing() -> None:
    assert process_epoch() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_async_save_stamps_too(engine: str, settings: Settings) -> None:
    from release.guard import guarded_store_class

    deploy(settings, 1)
    deploy(settings, 2)
    forget_process_epoch()
    store = guarded_store_class(import_module(engine).SessionStore)()
    store["n"] = 1

    async_to_sync(store.asave)(must_create=True)

    loaded = import_module(engine).SessionStore(store.session_key).load()
    assert loaded[STAMP] == 1
