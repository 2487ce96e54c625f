"""Web processes, played in the test's own process: `start()` reads a stamp as a process starting
now would, and `running(process)` serves with it, as that process would long after it started."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import release.guard as guard
from release.guard import Stamp, forget_process_stamp, process_stamp


@dataclass(frozen=True)
class Process:
    """A web process: the stamp it read when it started."""

    stamp: Stamp


def start() -> Process:
    """A process that starts now, with the markers in settings and the environment."""
    forget_process_stamp()
    return Process(process_stamp())


@contextmanager
def running(process: Process) -> Iterator[None]:
    """Serve as `process` does, whatever has happened since it started."""
    saved = guard._stamp
    guard._stamp = process.stamp
    try:
        yield
    finally:
        guard._stamp = saved
