"""Telling signed-out users why: the guard's `release_refused` and `session_refused`, and
LogoutMessageMiddleware's message, shown once, on the next page, through the example project.

Logouts happen as in test_session_guard: a release phase in this process, then `start()` for the
processes of the new release and `running(process)` to serve as one of them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.contrib.messages.middleware import MessageMiddleware
from django.core import checks
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils.translation import gettext_lazy
from pytest_django.fixtures import Settings

from release.checks import MESSAGE_MIDDLEWARE, check_logout_message
from release.guard import forget_process_stamp
from release.middleware import DOTTED_PATH, LogoutMessageMiddleware
from release.sessions import GuardedStore
from release.signals import session_refused
from tests.conftest import CACHED_DB, COOKIES, DB
from tests.processes import Process, running, start
from tests.test_session_guard import PASSWORD, deploy, sign_in, store_class

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase

TEXT = "You were signed out because the site was updated. Please sign in again."
MESSAGES = re.compile(r'<ul id="messages">(.*?)</ul>', re.DOTALL)
MESSAGE = re.compile(r"<li[^>]*>(.*?)</li>", re.DOTALL)

ENGINES = [
    pytest.param(DB, id="db"),
    pytest.param(CACHED_DB, id="cached_db"),
    pytest.param(COOKIES, id="signed_cookies"),
]


@pytest.fixture(autouse=True)
def new_process() -> Iterator[None]:
    forget_process_stamp()
    yield
    forget_process_stamp()


@pytest.fixture
def engine(request: pytest.FixtureRequest, settings: Settings) -> Iterator[str]:
    """The engine the guard wraps; cached_db caches in a memory cache of its own."""
    settings.RELEASE_SESSION_ENGINE = request.param
    settings.SESSION_CACHE_ALIAS = "locmem"
    yield request.param
    caches["locmem"].clear()


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("ada", password=PASSWORD)


@pytest.fixture
def refusals() -> Iterator[list[dict[str, Any]]]:
    """What `session_refused` was sent with, in order."""
    sent: list[dict[str, Any]] = []

    def receiver(signal: object, **arguments: Any) -> None:
        sent.append(arguments)

    session_refused.connect(receiver)
    yield sent
    session_refused.disconnect(receiver)


@dataclass(frozen=True)
class Logout:
    """A signed-in user, the release serving before the logout, and the one after it."""

    client: Client
    old: Process
    new: Process


def signed_in_then_logged_out(settings: Settings) -> Logout:
    deploy(settings, 1)
    old = start()
    client = Client()
    with running(old):
        sign_in(client)
        assert visit(client).signed_in
    deploy(settings, 2)  # logs everyone out
    return Logout(client, old, start())


@dataclass(frozen=True)
class Page:
    signed_in: bool
    messages: list[str]
    session: GuardedStore


def visit(client: Client, path: str = "/") -> Page:
    response = client.get(path)
    assert response.status_code == 200, response.content
    body = response.content.decode()
    shown = MESSAGES.search(body)
    messages = MESSAGE.findall(shown.group(1)) if shown else []
    return Page(
        signed_in="Signed in as" in body,
        messages=[" ".join(html.unescape(message).split()) for message in messages],
        session=guarded(response.wsgi_request.session),
    )


def guarded(session: SessionBase) -> GuardedStore:
    assert isinstance(session, GuardedStore)
    return session


def session_cookie(client: Client) -> str:
    cookie = client.cookies.get(django_settings.SESSION_COOKIE_NAME)
    return cookie.value if cookie is not None else ""


# The message


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_the_reason_shows_once_on_the_page_after_the_one_that_signed_the_user_out(
    engine: str, user: User, settings: Settings
) -> None:
    logout = signed_in_then_logged_out(settings)
    with running(logout.new):
        refused = visit(logout.client)
        assert not refused.signed_in
        assert refused.messages == [], "added after this page was made: it comes with the next"
        assert refused.session.release_refused is True
        assert session_cookie(logout.client) == "", "Django's middleware deleted the cookie"

        after = visit(logout.client)
        assert after.messages == [TEXT]
        assert after.session.release_refused is False, "no session left to refuse"
        assert visit(logout.client).messages == [], "once"

        sign_in(logout.client)
        again = visit(logout.client)
        assert (again.signed_in, again.messages) == (True, [])


@pytest.mark.django_db
def test_the_sign_in_page_after_the_refusal_shows_the_reason(
    user: User, settings: Settings
) -> None:
    logout = signed_in_then_logged_out(settings)
    with running(logout.new):
        visit(logout.client)
        assert visit(logout.client, "/accounts/login/").messages == [TEXT]
        assert visit(logout.client, "/accounts/login/").messages == []


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_nothing_is_shown_with_the_setting_off(
    engine: str, user: User, settings: Settings, refusals: list[dict[str, Any]]
) -> None:
    del settings.FORCE_LOGOUT_MESSAGE
    logout = signed_in_then_logged_out(settings)
    with running(logout.new):
        refused = visit(logout.client)
        assert [visit(logout.client).messages for _ in range(2)] == [[], []]

    # The guard still says so, for projects that tell users their own way.
    assert refused.session.release_refused is True
    assert len(refusals) == 1


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_nothing_is_shown_to_visitors_without_a_session(
    engine: str, user: User, settings: Settings, refusals: list[dict[str, Any]]
) -> None:
    logout = signed_in_then_logged_out(settings)
    with running(logout.new):
        anonymous = Client()
        pages = [visit(anonymous) for _ in range(2)]

    assert [page.messages for page in pages] == [[], []]
    assert [page.session.release_refused for page in pages] == [False, False]
    assert refusals == []


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_nothing_is_shown_for_a_cookie_the_engine_finds_nothing_under(
    engine: str, user: User, settings: Settings, refusals: list[dict[str, Any]]
) -> None:
    """A key of this release's stamp whose session is gone, or a signed cookie that does not
    verify: the engine treats them as missing, as without the guard."""
    logout = signed_in_then_logged_out(settings)
    with running(logout.new):
        if engine == COOKIES:
            unknown = "not-a-signed-cookie:at-all"
        else:
            store = store_class()()
            store.create()
            unknown = str(store.session_key)
            store.delete()
        client = Client()
        client.cookies[django_settings.SESSION_COOKIE_NAME] = unknown
        pages = [visit(client) for _ in range(2)]

    assert [page.messages for page in pages] == [[], []]
    assert refusals == []


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_nothing_is_shown_when_a_release_logs_nobody_out(
    engine: str, user: User, settings: Settings, refusals: list[dict[str, Any]]
) -> None:
    deploy(settings, 1)
    client = Client()
    with running(start()):
        sign_in(client)
    deploy(settings, 1)  # a redeploy
    with running(start()):
        pages = [visit(client) for _ in range(2)]

    assert [(page.signed_in, page.messages) for page in pages] == [(True, []), (True, [])]
    assert [page.session.release_refused for page in pages] == [False, False]
    assert refusals == []


@pytest.mark.django_db
def test_nothing_is_shown_to_someone_who_signs_in_with_the_refused_cookie(
    user: User, settings: Settings, refusals: list[dict[str, Any]]
) -> None:
    """The sign-in form sent with the old cookie: the guard refuses it on that very request."""
    logout = signed_in_then_logged_out(settings)
    with running(logout.new):
        sign_in(logout.client)
        pages = [visit(logout.client) for _ in range(2)]

    assert len(refusals) == 1
    assert [(page.signed_in, page.messages) for page in pages] == [(True, []), (True, [])]


@pytest.mark.django_db
def test_the_middleware_never_loads_a_session(user: User, settings: Settings) -> None:
    """A page that does not read the session leaves it unread: the reason waits for a page
    that does, and the refusal it makes."""
    logout = signed_in_then_logged_out(settings)
    with running(logout.new):
        response = logout.client.get("/no-such-page/")
        assert response.status_code == 404
        session = response.wsgi_request.session
        assert session.accessed is False
        assert "_session_cache" not in vars(session)
        assert "messages" not in response.cookies

        assert visit(logout.client).messages == []  # the refusal
        assert visit(logout.client).messages == [TEXT]


@pytest.mark.django_db
def test_release_refused_is_read_without_loading_the_session(
    user: User, settings: Settings
) -> None:
    logout = signed_in_then_logged_out(settings)
    key = session_cookie(logout.client)
    with running(logout.new):
        store = guarded(store_class()(key))
        with CaptureQueriesContext(connection) as queries:
            assert store.release_refused is False
        assert len(queries) == 0
        assert "_session_cache" not in vars(store)
        assert store.accessed is False

        assert store.load() == {}
        assert store.release_refused is True


@pytest.mark.django_db
def test_a_lazy_translation_is_shown_as_text(user: User, settings: Settings) -> None:
    settings.FORCE_LOGOUT_MESSAGE = gettext_lazy("Signed out after the update.")
    logout = signed_in_then_logged_out(settings)
    with running(logout.new):
        visit(logout.client)
        assert visit(logout.client).messages == ["Signed out after the update."]
    assert check_logout_message() == []


# The signal


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_the_signal_names_the_guarded_store_and_the_session(
    engine: str, user: User, settings: Settings, refusals: list[dict[str, Any]]
) -> None:
    logout = signed_in_then_logged_out(settings)
    assert refusals == []
    with running(logout.new):
        refused = visit(logout.client)
        assert refusals == [{"sender": type(refused.session), "session": refused.session}]
        assert refused.session.session_key is None
        visit(logout.client)
        refused.session.load()  # a second load refuses nothing more
    assert len(refusals) == 1
    assert type(refused.session) is store_class()


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_the_signal_on_the_async_path(
    engine: str, user: User, settings: Settings, refusals: list[dict[str, Any]]
) -> None:
    """`aload()`, with a sync and an async receiver, then the ASGI stack through the example's
    async view, where the middleware runs on the event loop."""
    awaited: list[SessionBase] = []

    async def async_receiver(signal: object, session: SessionBase, **arguments: Any) -> None:
        awaited.append(session)

    logout = signed_in_then_logged_out(settings)
    key = session_cookie(logout.client)
    session_refused.connect(async_receiver)
    try:
        with running(logout.new):
            store = guarded(store_class()(key))
            assert async_to_sync(store.aload)() == {}
            assert store.release_refused is True
            assert refusals == [{"sender": type(store), "session": store}]
            assert awaited == [store]

            client = AsyncClient()
            client.cookies = logout.client.cookies
            response = async_to_sync(client.get)("/whoami/")
            assert response.content == b"not signed in"
            session = guarded(response.asgi_request.session)
            assert session.release_refused is True
            assert refusals[1:] == [{"sender": type(session), "session": session}]
            assert awaited[1:] == [session]

            following = async_to_sync(client.get)("/")
            shown = MESSAGES.search(following.content.decode())
            assert shown is not None
            assert TEXT in shown.group(1)
    finally:
        session_refused.disconnect(async_receiver)


# What it costs


@pytest.mark.django_db
def test_the_middleware_costs_no_query_and_no_cache_call(
    user: User, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On cached_db, whose loads go to the cache and the database: an accepted session, a
    refused one, and the page after, with and without the middleware."""
    settings.RELEASE_SESSION_ENGINE = CACHED_DB
    settings.SESSION_CACHE_ALIAS = "locmem"
    calls: list[str] = []
    for name in ("get", "set", "add", "delete", "touch", "has_key", "incr", "get_many"):
        monkeypatch.setattr(LocMemCache, name, counted(calls, name, getattr(LocMemCache, name)))
    deploy(settings, 1)
    old = start()
    deploy(settings, 2)
    new = start()

    def costs() -> tuple[list[tuple[int, int]], list[list[str]]]:
        client = Client()
        with running(old):
            sign_in(client)
        measured, messages = [], []
        for process in (old, new, new):
            calls.clear()
            with running(process), CaptureQueriesContext(connection) as queries:
                page = visit(client)
            measured.append((len(queries), len(calls)))
            messages.append(page.messages)
        return measured, messages

    with_middleware, shown = costs()
    settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if path != DOTTED_PATH]
    without, not_shown = costs()

    assert with_middleware == without
    queries, cache_calls = without[0]
    assert queries > 0, "the accepted session's user was read"
    assert cache_calls > 0, "the accepted session was read from the cache"
    assert shown == [[], [], [TEXT]]
    assert not_shown == [[], [], []]
    caches["locmem"].clear()


def counted(calls: list[str], name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return method(*args, **kwargs)

    return call


# The checks


def test_the_example_project_passes_the_checks() -> None:
    assert check_logout_message() == []


@pytest.mark.parametrize("value", ["", "   ", 1, True, b"bytes", ["a list"]])
def test_a_message_that_is_not_text(settings: Settings, value: object) -> None:
    settings.FORCE_LOGOUT_MESSAGE = value

    problems = check_logout_message()

    assert [problem.id for problem in problems] == ["release.E007"]
    assert f"not {value!r}" in problems[0].msg


def test_no_message_needs_nothing(settings: Settings) -> None:
    settings.MIDDLEWARE = []
    settings.FORCE_LOGOUT_MESSAGE = None
    assert check_logout_message() == []
    del settings.FORCE_LOGOUT_MESSAGE
    assert check_logout_message() == []


def test_a_message_without_the_middleware(settings: Settings) -> None:
    settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if path != DOTTED_PATH]

    problems = check_logout_message()

    assert [problem.id for problem in problems] == ["release.W004"]
    assert DOTTED_PATH in (problems[0].hint or "")
    assert "release.W004" in {problem.id for problem in checks.run_checks(tags=["release"])}


def test_a_message_without_the_message_middleware(settings: Settings) -> None:
    settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if path != MESSAGE_MIDDLEWARE]

    problems = check_logout_message()

    assert [problem.id for problem in problems] == ["release.W005"]
    assert MESSAGE_MIDDLEWARE in (problems[0].hint or "")


def test_a_message_without_the_messages_app(settings: Settings) -> None:
    settings.INSTALLED_APPS = [
        app for app in settings.INSTALLED_APPS if app != "django.contrib.messages"
    ]

    problems = check_logout_message()

    assert [problem.id for problem in problems] == ["release.W005"]
    assert "'django.contrib.messages' to INSTALLED_APPS" in (problems[0].hint or "")


def test_a_message_with_the_middleware_before_the_message_middleware(
    settings: Settings,
) -> None:
    others = [path for path in settings.MIDDLEWARE if path != DOTTED_PATH]
    settings.MIDDLEWARE = [DOTTED_PATH, *others]

    problems = check_logout_message()

    assert [problem.id for problem in problems] == ["release.W006"]


def test_a_subclass_of_either_middleware_counts(settings: Settings) -> None:
    settings.MIDDLEWARE = [
        "tests.test_logout_message.OwnMessageMiddleware"
        if path == MESSAGE_MIDDLEWARE
        else "tests.test_logout_message.OwnLogoutMessageMiddleware"
        if path == DOTTED_PATH
        else path
        for path in settings.MIDDLEWARE
    ]
    assert check_logout_message() == []


class OwnMessageMiddleware(MessageMiddleware):
    pass


class OwnLogoutMessageMiddleware(LogoutMessageMiddleware):
    pass
