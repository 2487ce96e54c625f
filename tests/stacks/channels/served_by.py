"""Which process answered, and the stamp it held: sent with every answer of the Channels stack
(`X-Served-By`), so that a test that fails says which of a web's workers gave which answer."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.apps import apps

HEADER = "X-Served-By"

ASGIApp = Callable[..., Awaitable[None]]
Message = Mapping[str, Any]


def served_by(scope: Mapping[str, Any]) -> str:
    """The release, the port the request came to, the process and its stamp."""
    release = os.environ.get("HEROKU_RELEASE_VERSION", "?")
    port = (scope.get("server") or (None, None))[1]
    where = f"{release} on port {port}, pid {os.getpid()}"
    if not apps.is_installed("release"):
        return f"{where}, before the install"
    from release.guard import known_stamp

    return f"{where}, stamp {known_stamp()}"


def header(scope: Mapping[str, Any]) -> tuple[bytes, bytes]:
    return HEADER.lower().encode(), served_by(scope).encode()


def serving_by(app: ASGIApp) -> ASGIApp:
    """`app`, with the header in the start of each HTTP response."""

    async def application(scope: Any, receive: Any, send: Any) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header(scope)]}
            await send(message)

        await app(scope, receive, sending)

    return application
