"""How long each step took: the release's steps (`release --json`'s `steps`) and the parts of a
clear that a store times (`clear_steps`)."""

from __future__ import annotations

import time


class Stopwatch:
    """How long each step took, from the end of the one before."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self.last = time.monotonic()

    def lap(self, step: str, at: float | None = None) -> None:
        """`step` ended now, or at `at` (a `time.monotonic()` reading)."""
        now = time.monotonic() if at is None else at
        self.steps[step] = now - self.last
        self.last = now

    def laps(self) -> tuple[tuple[str, float], ...]:
        return tuple(self.steps.items())
