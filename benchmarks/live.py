"""The live site beside a clear: a second process that reads and saves sessions, and times each.

Run as `python -m benchmarks.live N OUT READY MAX_SECONDS INTERVAL` (the suite does): it picks
random existing sessions among the N the suite made and, through Django's own SessionStore for
SESSION_ENGINE, reads one (60 %), reads and saves one (35 %), or creates one (5 %), sleeping
INTERVAL seconds between operations. It touches READY once warmed up, stops at SIGTERM or after
MAX_SECONDS whatever happens, and writes every operation's start and duration to OUT.

`LiveSite` is the suite's side: start it, run a method, stop it, and `stats()` gives the p99
and worst wait of the operations that overlapped the method.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from benchmarks.config import PYTHON, ROOT, SIGNED_IN, session_key
from benchmarks.proc import stop

READ, SAVE, CREATE = 0, 1, 2
OK, ERROR, INTERRUPTED = 0, 1, 2
KINDS = {READ: "read", SAVE: "save", CREATE: "create"}
WARMUP = 10  # operations not recorded, before READY


def serve(n: int, out: Path, ready: Path, max_seconds: float, interval: float) -> None:
    """The live process itself."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    from importlib import import_module

    from django.conf import settings
    from django.contrib.sessions.backends.base import UpdateError
    from django.db import connections

    stopping = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    store_class: Any = import_module(settings.SESSION_ENGINE).SessionStore
    rng = random.Random(os.getpid())
    ops: list[tuple[float, float, int, int]] = []
    errors: list[str] = []
    created = 0
    warmup = WARMUP
    deadline = time.monotonic() + max_seconds
    while not stopping and time.monotonic() < deadline:
        draw = rng.random()
        key = session_key(rng.randrange(n))
        kind = READ if draw < 0.60 else SAVE if draw < 0.95 else CREATE
        outcome = OK
        started = time.monotonic()
        try:
            if kind == READ:
                store_class(key).load()
            elif kind == SAVE:
                store = store_class(key)
                store["visits"] = rng.randrange(1000)
                store.save()
                created += store.session_key != key  # it was gone: saved as a new session
            else:
                store = store_class()
                store.update(SIGNED_IN)
                store.create()
                created += 1
        except UpdateError:
            outcome = INTERRUPTED  # deleted between its read and its save: SessionInterrupted
        except Exception as error:  # a live site logs it and goes on
            outcome = ERROR
            if len(errors) < 20:
                errors.append(f"{type(error).__name__}: {error}")
            for connection in connections.all(initialized_only=True):
                connection.close_if_unusable_or_obsolete()
        if warmup > 0:
            warmup -= 1  # connecting, first queries: not what a live site waits for
            if warmup == 0:
                ready.touch()
        else:
            ops.append((started, time.monotonic() - started, kind, outcome))
        time.sleep(interval)
    out.write_text(json.dumps({"ops": ops, "errors": errors, "created": created}))


@dataclass
class Window:
    """The live operations that overlapped [start, end] (`during`) and those before (`before`)."""

    ops: int
    p99_ms: float | None
    worst_ms: float | None
    errors: int
    interrupted: int
    before_p99_ms: float | None
    before_worst_ms: float | None
    created: int
    error_samples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class LiveError(RuntimeError):
    pass


class LiveSite:
    """`with LiveSite(...) as live:` runs the live process for the block; then `live.window()`."""

    def __init__(
        self, env: dict[str, str], n: int, workdir: Path, max_seconds: float, interval: float
    ) -> None:
        self.env = env
        self.n = n
        self.max_seconds = max_seconds
        self.interval = interval
        self.out = workdir / f"live-{os.getpid()}-{time.monotonic_ns()}.json"
        self.ready = self.out.with_suffix(".ready")
        self.log = self.out.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None
        self.data: dict[str, Any] = {}

    def _stderr(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def __enter__(self) -> LiveSite:
        with self.log.open("wb") as log:
            self.process = self._start(log)
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                stop(self.process)
                raise LiveError(f"the live process did not start: {self._stderr()}")
            time.sleep(0.02)
        return self

    def _start(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                PYTHON,
                "-m",
                "benchmarks.live",
                str(self.n),
                str(self.out),
                str(self.ready),
                str(self.max_seconds),
                str(self.interval),
            ],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self.process is not None
        stop(self.process, grace=60)
        stderr = self._stderr()
        self.ready.unlink(missing_ok=True)
        self.log.unlink(missing_ok=True)
        if not self.out.exists():
            if kind is None:
                raise LiveError(f"the live process wrote no results: {stderr}")
            return
        self.data = json.loads(self.out.read_text())
        self.out.unlink()

    def window(self, start: float, end: float) -> Window:
        ops: list[list[float]] = self.data.get("ops", [])
        during = [op for op in ops if op[0] < end and op[0] + op[1] > start]
        before = [op[1] * 1000 for op in ops if op[0] + op[1] <= start]
        waits = [op[1] * 1000 for op in during]
        return Window(
            ops=len(during),
            p99_ms=percentile(waits, 0.99),
            worst_ms=max(waits, default=None),
            errors=sum(1 for op in during if op[3] == ERROR),
            interrupted=sum(1 for op in during if op[3] == INTERRUPTED),
            before_p99_ms=percentile(before, 0.99),
            before_worst_ms=max(before, default=None),
            created=int(self.data.get("created", 0)),
            error_samples=list(self.data.get("errors", []))[:5],
        )


if __name__ == "__main__":
    count, out_path, ready_path, limit, pause = sys.argv[1:6]
    serve(int(count), Path(out_path), Path(ready_path), float(limit), float(pause))
