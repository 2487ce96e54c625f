"""Django Channels under uvicorn and daphne, through a deploy: a websocket through
`AuthMiddlewareStack` is signed in exactly when the guard accepts its session, as over HTTP.

Channels' SessionMiddleware builds its store from SESSION_ENGINE (`release.sessions`), so the
guard refuses on the websocket what it refuses on HTTP: the race session the old release makes
during the release phase, and during preboot every session the old release makes or writes to.
Each release is a real release phase and a real ASGI server (see `conftest`, `harness`): the
project before the tool (R0), the install (R1), a config-var bump (R2) with the race and
preboot, a redeploy of R2 and a rollback to R1.
"""

from __future__ import annotations

import http.cookiejar
import urllib.request

import pytest

from tests.e2e.harness import HTTP_TIMEOUT, App, Heroku, Release, Visitor, Web
from tests.stacks.channels.conftest import ChannelsBuilder
from tests.stacks.channels.served_by import HEADER

pytestmark = pytest.mark.channels

SERVERS = ["uvicorn", "daphne"]
SETTINGS = "tests.stacks.channels.settings"
WEBSOCKET_PATH = "/ws/whoami/"  # tests.stacks.channels.asgi.WEBSOCKET_PATH

INSTALL = "record the markers"
LOGOUT = "log everyone out"
NOTHING = "nobody is logged out"


def released(release: Release, decision: str) -> None:
    assert release.succeeded, f"The release phase of {release} failed: {release.phase}"
    assert release.decision == decision, f"{release}: {release.phase}"


def probe(visitor: Visitor) -> Visitor:
    """The visitor with a copy of their cookies: what a web answers cannot change what the next
    one is sent (Django deletes the cookie of a session it refuses)."""
    jar = http.cookiejar.CookieJar()
    for cookie in visitor.cookies:
        jar.set_cookie(cookie)
    return Visitor(visitor.username, jar)


def cookie_header(visitor: Visitor, web: Web) -> dict[str, str]:
    """The Cookie header a browser sends with the websocket handshake to `web`."""
    request = urllib.request.Request(f"{web.url}{WEBSOCKET_PATH}")
    visitor.cookies.add_cookie_header(request)
    cookie = request.get_header("Cookie")
    return {"Cookie": cookie} if cookie else {}


def over_websocket(visitor: Visitor, web: Web, *, write: bool = False) -> str | None:
    """Who the consumer behind AuthMiddlewareStack says the visitor is; with `write`, the
    consumer then writes to the session and saves it."""
    return websocket_answer(visitor, web, write=write)[0]


def websocket_answer(
    visitor: Visitor, web: Web, *, write: bool = False
) -> tuple[str | None, str | None]:
    """`over_websocket`'s answer, and which process gave it (X-Served-By)."""
    from websockets.sync.client import (  # type: ignore[import-not-found, unused-ignore]
        connect,
    )
    from websockets.typing import Origin  # type: ignore[import-not-found, unused-ignore]

    with connect(
        f"ws://127.0.0.1:{web.port}{WEBSOCKET_PATH}",
        origin=Origin(web.url),
        additional_headers=cookie_header(visitor, web),
        open_timeout=HTTP_TIMEOUT,
        close_timeout=5,
    ) as socket:
        said = socket.recv(timeout=HTTP_TIMEOUT)
        assert isinstance(said, str), f"{web} sent {said!r}"
        if write:
            socket.send("write")
            assert socket.recv(timeout=HTTP_TIMEOUT) == "saved", f"{web} did not save"
        served_by = socket.response.headers.get(HEADER) if socket.response else None
    return username_in(said, web, "websocket"), served_by


def over_async_http(visitor: Visitor, web: Web) -> tuple[str | None, str | None]:
    """Who the async view `/whoami/` (request.auser(), the session's aload) says it is, and
    which process said so."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(visitor.cookies))
    with opener.open(f"{web.url}/whoami/", timeout=HTTP_TIMEOUT) as response:
        said = username_in(response.read().decode(), web, "/whoami/")
        return said, response.headers[HEADER]


def over_sync_http(visitor: Visitor, web: Web) -> tuple[str | None, str | None]:
    """Who the home page (a sync view) says the visitor is, and which process said so."""
    page = visitor.home_page(web)
    return Visitor.signed_in_as(page, web), page.served_by


def username_in(text: str, web: Web, where: str) -> str | None:
    if text == "not signed in":
        return None
    assert text.startswith("signed in as "), f"{where} on {web} said {text!r}"
    return text.removeprefix("signed in as ")


def seen(web: Web, expected: str | None, *visitors: Visitor) -> None:
    """Each visitor is `expected` (a username, or None: anonymous) on `web`'s websocket, home
    page (a sync view) and `/whoami/` (an async view)."""
    for visitor in visitors:
        answers = {
            "websocket": websocket_answer(probe(visitor), web),
            "home page": over_sync_http(probe(visitor), web),
            "/whoami/": over_async_http(probe(visitor), web),
        }
        said = {where: answer for where, (answer, _) in answers.items()}
        assert said == dict.fromkeys(answers, expected), (
            f"{visitor.username}'s session on {web}; answered by "
            + "; ".join(f"{where}: {by}" for where, (_, by) in answers.items())
            + f"; the session key {session_key(visitor)!r}; the end of its log:\n"
            + web.log_tail(20)
        )


def session_key(visitor: Visitor) -> str | None:
    return next((c.value for c in visitor.cookies if c.name == "sessionid"), None)


def signed_in(web: Web, *visitors: Visitor) -> None:
    for visitor in visitors:
        visitor.sign_in(web)
        seen(web, visitor.username, visitor)


@pytest.mark.parametrize("server", SERVERS, indirect=True)
def test_a_websocket_is_signed_in_exactly_when_the_release_accepts_its_session(
    channels_heroku: Heroku, channels_builder: ChannelsBuilder, server: str
) -> None:
    app: App = channels_heroku.create_app("chat", DJANGO_SETTINGS_MODULE=SETTINGS)
    alice, bob, carol, dave, erin, frank = (
        Visitor(name) for name in ("alice", "bob", "carol", "dave", "erin", "frank")
    )

    # R0, the project before the tool: alice signs in.
    before = app.deploy(channels_builder.build(server, installed=False))
    assert before.succeeded, f"{before.phase}"
    app.create_users(*(visitor.username for visitor in (alice, bob, carol, dave, erin, frank)))
    signed_in(app.web, alice)

    # R1 installs the tool: nobody is logged out; bob signs in, his consumer writes.
    slug = channels_builder.build(server)
    r1 = app.deploy(slug)
    released(r1, INSTALL)
    old = app.web
    seen(old, "alice", alice)
    signed_in(old, bob)
    assert over_websocket(bob, old, write=True) == "bob"
    seen(old, "bob", bob)
    assert app.stored_sessions() == 2

    # R2 sets the config marker; its release phase logs everyone out while R1 serves.
    app.config["FORCE_LOGOUT_ON_DEPLOY"] = "2"
    r2 = app.release_phase(slug, app.config, "Set FORCE_LOGOUT_ON_DEPLOY config vars")
    released(r2, LOGOUT)
    assert "removed 2 sessions" in r2.output
    seen(old, None, alice, bob)

    # The race: carol signs in on R1 after the release phase, before R2 serves.
    signed_in(old, carol)
    assert app.stored_sessions() == 1, "carol's session, saved after the release removed all"
    assert over_websocket(carol, old, write=True) == "carol"
    seen(old, "carol", carol)

    # Preboot: R2 serves beside R1.
    new = app.boot(r2, preboot=True)
    assert old.running, "preboot keeps R1 serving beside R2"
    seen(new, None, alice, bob, carol)
    seen(old, "carol", carol)
    # R2's own session: signed in on both, and its consumer's writes keep it.
    signed_in(new, dave)
    seen(old, "dave", dave)
    assert over_websocket(dave, new, write=True) == "dave"
    seen(new, "dave", dave)
    seen(old, "dave", dave)
    # Made by R2, then written to by R1's sign-in page (Django's login() keeps the key when the
    # same user signs in again): R1 gives it a key of its own, which R2 refuses.
    signed_in(new, erin)
    signed_in(old, erin)
    seen(new, None, erin)
    # Made by R2, then written to by R1's consumer: R1 cycled the key on the server, and the
    # websocket cannot send the new cookie, so the session the browser holds is gone.
    signed_in(new, frank)
    assert over_websocket(frank, old, write=True) == "frank"
    seen(new, None, frank)
    seen(old, None, frank)

    app.end_preboot()
    assert not old.running
    seen(new, "dave", dave)
    seen(new, None, alice, bob, carol, erin, frank)

    # A redeploy of R2: same values, new server; nobody is logged out.
    redeploy = app.deploy(slug)
    released(redeploy, NOTHING)
    assert not new.running
    seen(app.web, "dave", dave)
    assert over_websocket(dave, app.web, write=True) == "dave"
    seen(app.web, None, alice, bob, carol, erin, frank)

    # A rollback to R1's values: nobody is logged out, and R1's new processes accept R2's
    # sessions but not the race session R1's old processes made.
    rollback = app.rollback(r1)
    released(rollback, NOTHING)
    assert "FORCE_LOGOUT_ON_DEPLOY" not in app.config
    seen(app.web, "dave", dave)
    assert over_websocket(dave, app.web, write=True) == "dave"
    seen(app.web, "dave", dave)
    seen(app.web, None, alice, bob, carol, erin, frank)
    assert app.logouts() == [r2.name]
