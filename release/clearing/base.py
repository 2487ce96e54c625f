"""What every clearer shares: its result, its progress reports, and the interface the apply step
uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from release.stopwatch import Stopwatch

# Called with the number of sessions removed so far and, where known, how many there were.
Progress = Callable[[int, int | None], None]

GUARD_NOTE = "the session guard refuses them at their next request"


def no_progress(removed: int, total: int | None) -> None:
    """A Progress for callers that do not report it."""


@dataclass(frozen=True)
class Cleared:
    """What a clear removed; `removed` is None where the store cannot count. `parts`: how long
    each part of it took, in seconds, where the store times them (`release --json`'s
    `clear_steps`)."""

    removed: int | None
    notes: tuple[str, ...] = ()
    parts: tuple[tuple[str, float], ...] = ()

    def __add__(self, other: Cleared) -> Cleared:
        """Both steps of a clear; what one step cannot count, the sum cannot either."""
        removed = (
            None
            if self.removed is None or other.removed is None
            else (self.removed + other.removed)
        )
        return Cleared(removed, self.notes + other.notes, self.parts + other.parts)

    def noted(self, *notes: str, first: bool = False) -> Cleared:
        notes = (*notes, *self.notes) if first else (*self.notes, *notes)
        return replace(self, notes=notes)

    def timed(self, watch: Stopwatch) -> Cleared:
        return replace(self, parts=watch.laps())


NOTHING = Cleared(0)


class Clearer(Protocol):
    """Removes every session of one engine's store."""

    engine: str

    @property
    def complete(self) -> bool:
        """Whether clear() removes every session made so far, wherever it is kept."""

    @property
    def database_alias(self) -> str | None:
        """The database whose transaction the clear runs in, if any."""

    def describe(self) -> str: ...

    def count(self) -> int | None: ...

    def clear(self, progress: Progress) -> Cleared:
        """Remove the sessions, in as many steps and transactions as the store needs."""

    def finish(self, *, guarded: bool) -> Cleared:
        """Inside the transaction that records the logout: what was saved since clear()."""
