"""SIGTERM, which Heroku sends to a dyno it stops (SIGKILL follows 30 s later)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from release.exceptions import Terminated


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated("Stopped by SIGTERM before the logout was recorded.")


@contextmanager
def stopping_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into an exception, so that transactions roll back and the exit is clean."""
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
