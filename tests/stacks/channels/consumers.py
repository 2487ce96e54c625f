"""A websocket consumer that says who the user of its connection is, as `/whoami/` does."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
    AsyncWebsocketConsumer,
)

from tests.stacks.channels.served_by import header

WRITE = "write"
SAVED = "saved"


def who(user: Any) -> str:
    """The text of `example_project.views.whoami`."""
    return f"signed in as {user.get_username()}" if user.is_authenticated else "not signed in"


class WhoAmI(AsyncWebsocketConsumer):  # type: ignore[misc]
    """On connect: who `AuthMiddlewareStack` says the user is. On the message "write": the
    consumer writes to the session and saves it, as Channels asks consumers to, then "saved"."""

    async def connect(self) -> None:
        await self.accept(headers=[header(self.scope)])
        await self.send(text_data=who(self.scope["user"]))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data != WRITE:
            await self.close(code=4000)
            return
        session = self.scope["session"]
        session["websocket_writes"] = session.get("websocket_writes", 0) + 1
        await session.asave()
        await self.send(text_data=SAVED)
