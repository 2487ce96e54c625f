"""No session from before a logout survives, on any engine, in any process: the cases that broke
the first design, each by name, then the deploy lifecycle, then random sequences of deploys,
rollbacks, restarts and forced logouts.

A process is played in this one: `start()` reads a stamp as a process starting now would, and
`running(process)` serves with it, as that process would long after it started.
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
from django.contrib.sessions.backends.base import SessionBase
from django.core import signing
from django.core.cache import caches
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils.module_loading import import_string
from pytest_django.fixtures import Settings

import release.guard as guard
from release.clearing import keys as cache_keys
from release.guard import Stamp, forget_process_stamp, process_stamp, stamp_of_key
from release.models import AppliedMarker, Logout, ReleaseEpoch
from tests.conftest import CACHE, CACHED_DB, COOKIES, CUSTOM, DB, FILE, needs_redis, release
from tests.processes import Process, running, start

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
    forget_process_stamp()
    yield
    forget_process_stamp()


@pytest.fixture
def engine(request: pytest.FixtureRequest, settings: Settings) -> Iterator[str]:
    """The guarded engine and SESSION_CACHE_ALIAS, with a KEY_PREFIX of this test's own."""
    name, cache_alias = request.param
    settings.RELEASE_SESSION_ENGINE = name
    settings.SESSION_CACHE_ALIAS = cache_alias
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    caches_config = {**settings.CACHES}
    caches_config[cache_alias] = {**caches_config[cache_alias], "KEY_PREFIX": prefix}
    settings.CACHES = caches_config
    yield name
    client = cache_keys.redis_client(caches[cache_alias])
    if client is None:
        caches[cache_alias].clear()
    else:  # the Redis database is shared: only this test's keys go
        cache_keys.unlink_matching(client, cache_keys.glob_escape(prefix) + "*")


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("ada", password=PASSWORD)


def store_class() -> type[SessionBase]:
    store: type[SessionBase] = import_module(django_settings.SESSION_ENGINE).SessionStore
    return store


def sign_in(client: Client) -> None:
    response = client.post("/accounts/login/", {"username": "ada", "password": PASSWORD})
    assert response.status_code == 302, response.content


def signed_in(client: Client) -> bool:
    body = client.get("/").content.decode()
    assert ("Signed in as" in body) != ("You are not signed in." in body)
    return "Signed in as <strong>ada</strong>" in body


def on(process: Process, client: Client, action: Any = signed_in) -> Any:
    with running(process):
        return action(client)


def session_without_the_tool(user: User) -> Client:
    """A signed-in session saved by the engine itself, as a project without the tool made it."""
    store = import_module(django_settings.RELEASE_SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return with_session(store.session_key)


def with_session(session_key: str | None) -> Client:
    assert session_key is not None
    client = Client()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = session_key
    return client


def deploy(settings: Settings, version: int | str) -> str:
    """The release phase of a release with FORCE_LOGOUT_VERSION = version."""
    settings.FORCE_LOGOUT_VERSION = version
    return release()


def force_logout(reason: str = "test") -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("force_logout", "--reason", reason, "--no-input", stdout=out)
    return out.getvalue()


# The cases that broke the first design, each named after its number in the issue that
# reported it.


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_case_1_a_forced_logout_from_other_markers_is_enforced_after_a_restart(
    engine: str, user: User, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(settings, 1)
    web = start()
    stolen = Client()
    on(web, stolen, sign_in)

    # From a laptop with DATABASE_URL set and other marker values.
    with monkeypatch.context() as laptop:
        laptop.setenv("FORCE_LOGOUT_ON_DEPLOY", "laptop")
        settings.FORCE_LOGOUT_VERSION = 99
        force_logout("leaked cookie")
    settings.FORCE_LOGOUT_VERSION = 1

    restarted = start()  # heroku ps:restart
    assert not on(restarted, stolen)
    fresh = Client()
    on(restarted, fresh, sign_in)
    assert on(restarted, fresh)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_case_1_a_process_of_marker_values_released_before_a_logout_refuses_what_came_before(
    engine: str, user: User, settings: Settings
) -> None:
    """A restart without a release step: `fly secrets unset`, a second app on the database,
    daily cycling of an old release's dyno during preboot."""
    deploy(settings, 1)
    stolen = Client()
    on(start(), stolen, sign_in)
    deploy(settings, 2)  # logs everyone out

    settings.FORCE_LOGOUT_VERSION = 1  # restarts with the old values, no release step
    old_values = start()

    assert not on(old_values, stolen)
    own = Client()
    on(old_values, own, sign_in)
    assert on(old_values, own), "no process refuses a session it has just made"
    settings.FORCE_LOGOUT_VERSION = 2
    assert not on(start(), own), "the new release refuses what the old values' code made"


@pytest.mark.django_db
def test_case_2_a_restored_database_never_reuses_an_epoch(
    user: User, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.RELEASE_SESSION_ENGINE = COOKIES  # a stolen cookie needs nothing on the server
    monkeypatch.setattr("release.decision.plan.clock", lambda: 1_700_000_000)
    deploy(settings, 1)
    backup = snapshot()
    force_logout("first")
    stolen = Client()
    on(start(), stolen, sign_in)
    assert on(start(), stolen)

    restore(backup)
    monkeypatch.setattr("release.decision.plan.clock", lambda: 1_700_000_600)  # ten minutes later
    force_logout("after the restore")

    assert not on(start(), stolen)
    assert sorted(Logout.objects.values_list("epoch", flat=True)) == [0, 1_700_000_600]


RELEASE_MODELS: tuple[Any, ...] = (Logout, AppliedMarker, ReleaseEpoch)


def snapshot() -> dict[Any, list[dict[str, Any]]]:
    """The app's tables, as a backup holds them."""
    return {model: list(model.objects.values()) for model in RELEASE_MODELS}


def restore(backup: dict[Any, list[dict[str, Any]]]) -> None:
    for model in reversed(RELEASE_MODELS):
        model.objects.all().delete()
    for model in RELEASE_MODELS:
        model.objects.bulk_create(model(**row) for row in backup[model])


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_case_3_signing_in_on_the_old_release_with_a_session_of_the_new_one(
    engine: str, user: User, settings: Settings
) -> None:
    """A cart, a `?next=` or an OAuth state made by the new release, then a sign-in on the old
    one during preboot: `login()` keeps the data through `cycle_key()`."""
    deploy(settings, 1)
    old = start()
    deploy(settings, 2)
    new = start()
    visitor = Client()
    on(new, visitor, lambda client: client.post("/cart/add/"))
    assert stamp_of_cookie(visitor) == new.stamp or engine == COOKIES

    on(old, visitor, sign_in)

    assert on(old, visitor)
    assert not on(new, visitor)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_case_3_a_session_the_old_release_merely_writes_to_is_refused_by_the_new(
    engine: str, user: User, settings: Settings
) -> None:
    deploy(settings, 1)
    old = start()
    deploy(settings, 2)
    new = start()
    visitor = Client()
    on(new, visitor, sign_in)
    assert on(old, visitor), "the old release accepts newer sessions"

    on(old, visitor, lambda client: client.post("/cart/add/"))

    assert on(old, visitor), "and keeps the one it wrote to"
    assert not on(new, visitor)


def stamp_of_cookie(client: Client) -> Stamp:
    return stamp_of_key(client.cookies[django_settings.SESSION_COOKIE_NAME].value)


@pytest.mark.django_db(databases=["default", "pipeline"])
def test_case_4_the_guard_reads_where_the_commands_write(user: User, settings: Settings) -> None:
    """Django's primary/replica router sends reads elsewhere: the guard reads the primary.
    (tests/stacks/replica does this against a real streaming replica that lags.)"""
    deploy(settings, 1)
    deploy(settings, 2)
    settings.DATABASE_ROUTERS = ["tests.routers.ReadsElsewhereRouter"]

    with CaptureQueriesContext(connection) as on_primary:
        stamp = start().stamp

    assert stamp.newest == 1
    assert stamp.released == 1
    assert any("release_logout" in query["sql"] for query in on_primary.captured_queries)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_case_5_sessions_made_outside_the_middleware_are_stamped_and_kept(
    engine: str, user: User, settings: Settings
) -> None:
    """The test client's login() and force_login(), and scripts, build their stores from
    SESSION_ENGINE: their sessions carry the stamp, and deploys that log nobody out keep them."""
    deploy(settings, 1)
    deploy(settings, 2)
    web = start()
    with running(web):
        logged_in, forced = Client(), Client()
        assert logged_in.login(username="ada", password=PASSWORD)
        forced.force_login(user)
        script = store_class()()
        script[SESSION_KEY] = str(user.pk)
        script[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        script[HASH_SESSION_KEY] = user.get_session_auth_hash()
        script.save()
    from_script = with_session(script.session_key)

    deploy(settings, 2)  # a redeploy: nobody is logged out
    redeployed = start()

    for client in (logged_in, forced, from_script):
        assert on(redeployed, client)
        assert on(web, client)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_case_8_aload_does_not_leave_the_event_loop_once_the_stamp_is_known(
    engine: str, user: User, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(settings, 1)
    deploy(settings, 2)
    web = start()
    client = Client()
    on(web, client, sign_in)
    key = client.cookies[django_settings.SESSION_COOKIE_NAME].value

    def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("sync_to_async was called with the stamp known")

    monkeypatch.setattr("release.sessions.sync_to_async", no_thread)
    with running(web):
        loaded = async_to_sync(store_class()(key).aload)()
    assert loaded[SESSION_KEY] == str(user.pk)


def test_case_9_inside_an_event_loop_the_stamp_is_read_at_the_first_session(
    user: User, settings: Settings
) -> None:
    """As under uvicorn, which builds the application inside its event loop: no query runs on
    the loop, and the first session read there enforces the logout before it."""
    deploy(settings, 1)
    r1 = start()
    deploy(settings, 2)
    race = Client()
    on(r1, race, sign_in)  # kept by the logout, made by the old release
    assert on(r1, race)
    key = race.cookies[django_settings.SESSION_COOKIE_NAME].value
    forget_process_stamp()  # R2's worker, started inside its event loop

    async def serve() -> tuple[Stamp | None, dict[str, Any], Stamp | None]:
        store = import_module("release.sessions").SessionStore  # as the middleware is built
        at_build = guard.known_stamp()
        loaded = await store(key).aload()
        return at_build, loaded, guard.known_stamp()

    at_build, loaded, at_first_session = async_to_sync(serve)()
    assert at_build is None
    assert loaded == {}
    assert at_first_session is not None
    assert at_first_session.newest == Logout.objects.latest("epoch").epoch > 0


# The deploy lifecycle on every engine.


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_no_session_from_before_a_logout_survives(
    engine: str, user: User, settings: Settings
) -> None:
    deploy(settings, 1)  # R1 installs the tool
    before_install = session_without_the_tool(user)
    r1 = start()
    assert on(r1, before_install), "installing the tool logs nobody out"
    before_logout = Client()
    on(r1, before_logout, sign_in)

    output = deploy(settings, 2)  # R2's release command; R1 keeps serving
    assert "Decision: log everyone out" in output
    race = Client()
    on(r1, race, sign_in)
    assert on(r1, race), "the old release still serves the session it made"

    r2 = start()  # R2's dynos boot
    assert not on(r2, before_logout)
    assert not on(r2, race)
    assert not on(r2, before_install)
    after = Client()
    on(r2, after, sign_in)
    assert on(r2, after)
    on(r2, race, sign_in)  # signing in again works at once
    assert on(r2, race)

    deploy(settings, 1)  # R3: a rollback to R1's code
    r3 = start()
    assert on(r3, after), "a rollback logs nobody out"
    assert on(r3, race)
    assert not on(r3, before_logout)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_preboot_old_and_new_release_side_by_side(
    engine: str, user: User, settings: Settings
) -> None:
    deploy(settings, 1)
    old = start()
    deploy(settings, 2)
    new = start()
    made_by_old, made_by_new = Client(), Client()
    on(old, made_by_old, sign_in)
    on(new, made_by_new, sign_in)

    assert on(old, made_by_old) is True
    assert on(new, made_by_old) is False
    assert on(new, made_by_new) is True
    assert on(old, made_by_new) is True, "the old release accepts newer sessions"
    assert on(new, made_by_new) is True, "reading it on the old release changes nothing"


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_async_stack(engine: str, user: User, settings: Settings) -> None:
    deploy(settings, 1)
    client = Client()
    on(start(), client, sign_in)
    async_client = AsyncClient()
    async_client.cookies = client.cookies

    assert async_to_sync(async_client.get)("/whoami/").content == b"signed in as ada"

    deploy(settings, 2)
    forget_process_stamp()

    assert async_to_sync(async_client.get)("/whoami/").content == b"not signed in"
    assert async_to_sync(AsyncClient().get)("/whoami/").content == b"not signed in"


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_async_save_stamps_too(engine: str, settings: Settings, db: None) -> None:
    deploy(settings, 1)
    deploy(settings, 2)
    web = start()
    with running(web):
        store = store_class()()
        store["n"] = 1
        async_to_sync(store.asave)(must_create=True)
        loaded = store_class()(store.session_key)
        assert loaded["n"] == 1
    if engine != COOKIES:
        assert stamp_of_key(store.session_key) == web.stamp


@pytest.mark.django_db
def test_keys_made_before_any_logout_are_django_s_own(settings: Settings) -> None:
    """A blank stamp is written nowhere: until the first logout, sessions are as Django makes
    them."""
    deploy(settings, 1)
    with running(start()):
        store = store_class()()
        store["n"] = 1
        store.save()
    assert store.session_key is not None
    assert len(store.session_key) == 32


@pytest.mark.django_db
def test_odd_keys_are_unstamped(user: User, settings: Settings) -> None:
    assert stamp_of_key(None) == guard.BLANK
    assert stamp_of_key("x" * 32) == guard.BLANK
    assert stamp_of_key("-" * 40) == guard.BLANK
    assert stamp_of_key("0000001" + "0000002" + "a" * 26) == Stamp(1, 2)
    with pytest.raises(ValueError, match="does not fit"):
        Stamp(36**7, 0).key_prefix()


@pytest.mark.django_db
def test_a_forged_cookie_stamp_is_refused(user: User, settings: Settings) -> None:
    """The stamp in a signed cookie is signed with the data: changing it breaks the signature,
    and a stamp that is not one counts as none."""
    settings.RELEASE_SESSION_ENGINE = COOKIES
    deploy(settings, 1)
    deploy(settings, 2)
    web = start()
    for written in ("1.x", None, 7, "99999999999.99999999999x"):
        value = signing.dumps(
            {SESSION_KEY: str(user.pk), "_release_stamp": written},
            compress=True,
            salt="django.contrib.sessions.backends.signed_cookies",
            serializer=import_string(django_settings.SESSION_SERIALIZER),
        )
        assert not on(web, with_session(value)), written


@pytest.mark.django_db
def test_logout_keeps_password_reset_links_and_signed_values(
    user: User, settings: Settings
) -> None:
    deploy(settings, 1)
    token = default_token_generator.make_token(user)
    signed = signing.dumps({"order": 7})

    deploy(settings, 2)
    forget_process_stamp()

    assert default_token_generator.check_token(user, token)
    assert signing.loads(signed) == {"order": 7}


@pytest.mark.django_db
def test_the_stamp_is_read_once_per_process(user: User, settings: Settings) -> None:
    deploy(settings, 1)
    deploy(settings, 2)
    signed = Client()
    on(start(), signed, sign_in)
    forget_process_stamp()

    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert signed_in(signed)
            assert not signed_in(Client())
        sign_in(Client())

    reads = [q["sql"] for q in queries.captured_queries if "release_" in q["sql"]]
    # Beside the guard's one read, the home page lists the history on each of its 6 requests.
    stamp_reads = [sql for sql in reads if "release_releaseepoch" in sql]
    assert len(stamp_reads) == 1
    assert "release_logout" in stamp_reads[0]
    assert len(reads) == 1 + 6


@pytest.mark.django_db
def test_markers_never_released_refuse_what_came_before_the_newest_logout(
    settings: Settings,
) -> None:
    """`runserver` with a marker no release command has seen yet."""
    deploy(settings, 1)
    deploy(settings, 2)
    settings.FORCE_LOGOUT_VERSION = 3

    assert start().stamp == Stamp(released=0, newest=1)


@pytest.mark.django_db
def test_no_release_ever_enforces_nothing() -> None:
    assert start().stamp == guard.BLANK


@pytest.mark.django_db(transaction=True)
def test_before_migrate_the_guard_enforces_nothing_and_reads_again() -> None:
    from django.core.management import call_command

    call_command("migrate", "release", "zero", verbosity=0)
    try:
        assert process_stamp() == guard.BLANK
        assert guard.known_stamp() is None, "read again once the tables exist"
    finally:
        call_command("migrate", "release", verbosity=0)
