"""The `signed_cookies` engine: sessions live in browsers; nothing to remove here."""

from __future__ import annotations

from release.clearing.base import GUARD_NOTE, Cleared, Progress


class CookieSessions:
    complete = False
    database_alias = None

    def __init__(self, engine: str) -> None:
        self.engine = engine

    def describe(self) -> str:
        return "signed cookies in the browsers"

    def count(self) -> None:
        return None

    def finish(self, *, guarded: bool) -> Cleared:
        return Cleared(None)

    def clear(self, progress: Progress) -> Cleared:
        return Cleared(
            None, (f"Signed-cookie sessions cannot be deleted server-side: {GUARD_NOTE}.",)
        )
