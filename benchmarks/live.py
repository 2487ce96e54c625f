"""The live site beside a clear: processes that read and save sessions as a busy site does, and
time each operation.

Run as `python -m benchmarks.live N KEYS OUT READY MAX_SECONDS RATE WORKERS ATOMIC` (the suite
does). It forks WORKERS processes, each with its own connection to the store, which together
start RATE operations a second on random sessions among the N the suite made (keys as
`config.Keys.from_arg(KEYS)` makes them), through Django's own SessionStore for SESSION_ENGINE:
read one (60 %), read and save one (35 %), or create one (5 %). With ATOMIC (1, for the
database engines) a fifth of the operations are instead a view under ATOMIC_REQUESTS: in
`transaction.atomic()`, read and save a session, then hold the transaction open 10 to 50 ms (at
random) before committing. Each worker keeps to its own schedule, one operation every
WORKERS / RATE seconds, and does not sleep while it is behind.

Processes, not threads: an operation is mostly Python (the ORM, signing, JSON), so threads would
take turns at the GIL, the rate would be one core's, and each operation's time would include
waiting for the other threads. Processes are also what serves a site (gunicorn's workers).

The parent touches READY once every worker is warmed up, stops them at SIGTERM or after
MAX_SECONDS whatever happens, and writes every operation (start, end, wait, kind, outcome,
queued) to OUT. An operation's wait is its time less the transaction's deliberate hold; `queued`
is how much of that wait its process spent ready to run but waiting for a CPU (Linux's
schedstat), so that a wait can be told apart into the machine's cores and the store itself.

`LiveSite` is the suite's side: start it, run a method, stop it, and `window()` gives the
achieved rate and the p50, p99 and worst wait of the operations that overlapped the method.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from benchmarks.config import (
    ATOMIC_HOLD_S,
    ATOMIC_SHARE,
    LIVE_MIN_RATE,
    PYTHON,
    ROOT,
    SIGNED_IN,
    Keys,
)
from benchmarks.proc import stop

READ, SAVE, CREATE, ATOMIC = 0, 1, 2, 3
OK, ERROR, INTERRUPTED = 0, 1, 2
KINDS = {READ: "read", SAVE: "save", CREATE: "create", ATOMIC: "save in transaction.atomic()"}
WARMUP = 10  # operations of each worker not recorded, before READY
BEHIND_LIMIT_S = 1.0  # a worker this far behind its schedule starts it afresh instead of rushing

# One operation: when it started and ended (time.monotonic(), the same clock in every process),
# its wait in seconds, its kind, its outcome, and the seconds of its wait spent waiting for a CPU
# (None where the kernel does not tell).
Op = tuple[float, float, float, int, int, float | None]

# The second field: nanoseconds this thread has spent runnable but not running, since it began.
SCHEDSTAT = "/proc/thread-self/schedstat"


class CpuQueue:
    """How long this thread has waited for a CPU in all, read from Linux's schedstat through
    one open file (a read costs microseconds); None where the kernel does not keep it."""

    def __init__(self) -> None:
        try:
            self.fd: int | None = os.open(SCHEDSTAT, os.O_RDONLY)
        except OSError:
            self.fd = None

    def seconds(self) -> float | None:
        if self.fd is None:
            return None
        try:
            return int(os.pread(self.fd, 128, 0).split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return None


def queued_between(before: float | None, after: float | None) -> float | None:
    """The CPU queue between two readings, where the kernel tells."""
    return None if before is None or after is None else after - before


def _worker(
    index: int,
    n: int,
    keys: Keys,
    out: Path,
    ready: Path,
    deadline: float,
    period: float,
    atomic: bool,
) -> None:
    """One worker: its own connection, its own schedule; its operations go to `out`."""
    stopping = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    from importlib import import_module

    from django.conf import settings
    from django.contrib.sessions.backends.base import UpdateError
    from django.db import connections, transaction

    store_class: Any = import_module(settings.SESSION_ENGINE).SessionStore
    rng = random.Random(f"{os.getpid()}-{index}")
    probe = keys.key(rng.randrange(n))
    if not store_class(probe).load():
        raise RuntimeError(
            f"The live site finds no session under {probe!r}: it would not read the sessions "
            "of the fill, only its own."
        )
    ops: list[Op] = []
    errors: list[str] = []
    created = 0
    cpu_queue = CpuQueue()
    warmup = WARMUP
    # The workers' schedules interleave: each starts at a random point of its period.
    next_at = time.monotonic() + rng.random() * period
    while not stopping and time.monotonic() < deadline:
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -BEHIND_LIMIT_S:
            next_at = time.monotonic()
        next_at += period
        key = keys.key(rng.randrange(n))
        draw = rng.random()
        if atomic and draw < ATOMIC_SHARE:
            kind = ATOMIC
        else:
            draw = rng.random()
            kind = READ if draw < 0.60 else SAVE if draw < 0.95 else CREATE
        outcome = OK
        held = 0.0
        held_queued: float | None = 0.0
        queued_before = cpu_queue.seconds()
        started = time.monotonic()
        try:
            if kind == READ:
                store_class(key).load()
            elif kind == CREATE:
                store = store_class()
                store.update(SIGNED_IN)
                store.create()
                created += 1
            elif kind == SAVE:
                store = store_class(key)
                store["visits"] = rng.randrange(1000)
                store.save()
                created += store.session_key != key  # it was gone: saved as a new session
            else:
                with transaction.atomic():
                    store = store_class(key)
                    store["visits"] = rng.randrange(1000)
                    store.save()
                    created += store.session_key != key
                    hold_from, hold_queued_from = time.monotonic(), cpu_queue.seconds()
                    time.sleep(rng.uniform(*ATOMIC_HOLD_S))
                    held = time.monotonic() - hold_from
                    held_queued = queued_between(hold_queued_from, cpu_queue.seconds())
        except UpdateError:
            outcome = INTERRUPTED  # deleted between its read and its save: SessionInterrupted
        except Exception as error:  # a live site logs it and goes on
            outcome = ERROR
            if len(errors) < 20:
                errors.append(f"{KINDS[kind]}: {type(error).__name__}: {error}")
            for connection in connections.all(initialized_only=True):
                connection.close_if_unusable_or_obsolete()
        ended = time.monotonic()
        queued = queued_between(queued_before, cpu_queue.seconds())
        if queued is not None:
            # The hold is not part of the wait, nor is its CPU queue.
            queued = None if held_queued is None else queued - held_queued
        if warmup > 0:
            warmup -= 1  # connecting, first queries: not what a live site waits for
            if warmup == 0:
                ready.touch()
        else:
            ops.append((started, ended, ended - started - held, kind, outcome, queued))
    out.write_text(json.dumps({"ops": ops, "errors": errors, "created": created}))


def _run_worker(*args: Any) -> None:
    try:
        _worker(*args)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        raise


def serve(
    n: int,
    keys: Keys,
    out: Path,
    ready: Path,
    max_seconds: float,
    rate: float,
    workers: int,
    atomic: bool,
) -> int:
    """The live process itself: fork the workers, then wait for them."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()  # once, before forking: the workers open their connections themselves
    from django.db import connections

    opened = [c.alias for c in connections.all(initialized_only=True) if c.connection is not None]
    assert not opened, f"no database connection may cross a fork: {opened}"
    deadline = time.monotonic() + max_seconds
    context = multiprocessing.get_context("fork")
    parts = [out.with_name(f"{out.name}.{k}") for k in range(workers)]
    readies = [ready.with_name(f"{ready.name}.{k}") for k in range(workers)]
    processes = [
        context.Process(
            target=_run_worker,
            args=(k, n, keys, parts[k], readies[k], deadline, workers / rate, atomic),
            daemon=False,
        )
        for k in range(workers)
    ]
    for process in processes:
        process.start()
    stopping = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    ready_at: float | None = None
    while not stopping and any(p.is_alive() for p in processes):
        if ready_at is None and all(path.exists() for path in readies):
            ready_at = time.monotonic()
            ready.touch()
        if any(p.exitcode not in (None, 0) for p in processes):
            break  # a worker failed: the load is not what it claims; the suite hears of it
        time.sleep(0.02)
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join()
    for path in readies:
        path.unlink(missing_ok=True)
    failed = [k for k, p in enumerate(processes) if p.exitcode != 0]
    if ready_at is None:
        why = f"workers {failed} failed" if failed else "it was stopped"
        print(f"The live site never was ready: {why}.", file=sys.stderr)
        return 1
    ops: list[list[Any]] = []
    errors = [f"Live worker {k} failed (exit code {processes[k].exitcode})." for k in failed]
    created = 0
    for path in parts:
        if path.exists():
            data = json.loads(path.read_text())
            ops.extend(data["ops"])
            errors.extend(data["errors"])
            created += data["created"]
            path.unlink()
    ops.sort()
    out.write_text(
        json.dumps(
            {
                "ops": ops,
                "errors": errors,
                "created": created,
                "ready_at": ready_at,
                "rate": rate,
                "workers": workers,
                "failed_workers": len(failed),
            }
        )
    )
    return 0


@dataclass
class Window:
    """The live operations that overlapped [start, end]: their number, their waits, and the rate
    of operations started, a second; the rate before; and the waits of the same load at rest
    (`rest_*`: the operations within a period just before, with nothing else running)."""

    ops: int
    p50_ms: float | None
    p99_ms: float | None
    worst_ms: float | None
    errors: int
    interrupted: int
    atomic: int  # of `ops`, those in transaction.atomic() holding it 10-50 ms
    ops_per_second: float | None  # started during the method
    before_ops_per_second: float | None  # started between READY and the method
    target_ops_per_second: float
    offered_ops_per_second: float
    workers: int
    failed_workers: int
    rest_seconds: float
    rest_ops: int
    rest_p50_ms: float | None
    rest_p99_ms: float | None
    rest_worst_ms: float | None
    created: int
    # Of the worst wait, the part its process spent waiting for a CPU; and the longest wait of
    # any operation less that part, its wait for the store. None where the kernel does not tell.
    worst_queued_ms: float | None = None
    worst_unqueued_ms: float | None = None
    error_samples: list[str] = field(default_factory=list)
    # Each operation's wait (ms) and its CPU queue, during; its wait at rest: for merging the
    # windows of several runs.
    waits_ms: list[float] = field(default_factory=list, repr=False)
    queued_ms: list[float | None] = field(default_factory=list, repr=False)
    rest_waits_ms: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        hidden = {"waits_ms", "queued_ms", "rest_waits_ms"}
        return {k: v for k, v in self.__dict__.items() if k not in hidden}

    @classmethod
    def merged(cls, windows: list[Window]) -> Window:
        """The windows of several runs of one method as one: the percentiles and the worst wait
        over all their operations, and the lowest rate of any (each run must be a busy site)."""
        first = windows[0]
        waits = [w for window in windows for w in window.waits_ms]
        queued = [q for window in windows for q in window.queued_ms]
        worst_queued, worst_unqueued = cpu_queue_of(waits, queued)
        rest = [w for window in windows for w in window.rest_waits_ms]

        def lowest(rates: list[float | None]) -> float | None:
            return None if None in rates else min(r for r in rates if r is not None)

        return cls(
            ops=sum(w.ops for w in windows),
            p50_ms=percentile(waits, 0.50),
            p99_ms=percentile(waits, 0.99),
            worst_ms=max(waits, default=None),
            errors=sum(w.errors for w in windows),
            interrupted=sum(w.interrupted for w in windows),
            atomic=sum(w.atomic for w in windows),
            ops_per_second=lowest([w.ops_per_second for w in windows]),
            before_ops_per_second=lowest([w.before_ops_per_second for w in windows]),
            target_ops_per_second=first.target_ops_per_second,
            offered_ops_per_second=first.offered_ops_per_second,
            workers=first.workers,
            failed_workers=sum(w.failed_workers for w in windows),
            rest_seconds=sum(w.rest_seconds for w in windows),
            rest_ops=len(rest),
            rest_p50_ms=percentile(rest, 0.50),
            rest_p99_ms=percentile(rest, 0.99),
            rest_worst_ms=max(rest, default=None),
            created=sum(w.created for w in windows),
            worst_queued_ms=worst_queued,
            worst_unqueued_ms=worst_unqueued,
            error_samples=[e for w in windows for e in w.error_samples][:5],
            waits_ms=waits,
            queued_ms=queued,
            rest_waits_ms=rest,
        )


def shortfall(live: dict[str, Any], *, during: bool) -> str | None:
    """Why a window's live load was not the busy site it claims (a `Window.as_dict()`), or None:
    fewer operations a second than LIVE_MIN_RATE before the method, or (with `during`) while it
    ran, or a worker that failed."""
    target = live.get("target_ops_per_second") or LIVE_MIN_RATE
    problems = []
    if live.get("failed_workers"):
        problems.append(f"{live['failed_workers']} of {live.get('workers')} live workers failed.")
    for name, words in (("before_ops_per_second", "before"), ("ops_per_second", "during")):
        if name == "ops_per_second" and not during:
            continue
        rate = live.get(name)
        if rate is None:
            problems.append(f"No live operation was measured {words} the command.")
        elif rate < target:
            problems.append(
                f"The live load {words} the command was {rate:.0f} ops/s, below {target:g}."
            )
    return " ".join(problems) or None


def cpu_queue_of(
    waits: list[float], queued: list[float | None]
) -> tuple[float | None, float | None]:
    """`worst_queued_ms` and `worst_unqueued_ms` of operations with these waits and CPU queues
    (ms, in the same order); None where any queue is unknown."""
    known = [q for q in queued if q is not None]
    if not waits or len(known) != len(waits):
        return None, None
    worst = max(range(len(waits)), key=waits.__getitem__)
    return known[worst], max(wait - q for wait, q in zip(waits, known, strict=True))


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
        self,
        env: dict[str, str],
        n: int,
        workdir: Path,
        max_seconds: float,
        rate: float,
        workers: int,
        keys: Keys,
        *,
        atomic: bool,
    ) -> None:
        self.env = env
        self.n = n
        self.keys = keys
        self.max_seconds = max_seconds
        self.rate = rate
        self.workers = workers
        self.atomic = atomic
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
                self.keys.as_arg(),
                str(self.out),
                str(self.ready),
                str(self.max_seconds),
                str(self.rate),
                str(self.workers),
                "1" if self.atomic else "0",
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

    def window(self, start: float, end: float, rest: tuple[float, float] | None = None) -> Window:
        """The operations that overlapped [start, end]; `rest`: a period before it of the live
        load alone."""
        ops: list[list[Any]] = self.data.get("ops", [])
        during = [op for op in ops if op[0] < end and op[1] > start]
        waits = [op[2] * 1000 for op in during]
        queued = [None if op[5] is None else op[5] * 1000 for op in during]
        worst_queued, worst_unqueued = cpu_queue_of(waits, queued)
        at_rest = [op[2] * 1000 for op in ops if rest and rest[0] <= op[0] and op[1] <= rest[1]]
        ready_at = self.data.get("ready_at")
        started_before = sum(1 for op in ops if ready_at is not None and ready_at <= op[0] < start)
        started_during = sum(1 for op in ops if start <= op[0] < end)
        return Window(
            ops=len(during),
            p50_ms=percentile(waits, 0.50),
            p99_ms=percentile(waits, 0.99),
            worst_ms=max(waits, default=None),
            errors=sum(1 for op in during if op[4] == ERROR),
            interrupted=sum(1 for op in during if op[4] == INTERRUPTED),
            atomic=sum(1 for op in during if op[3] == ATOMIC),
            ops_per_second=started_during / (end - start) if end > start else None,
            before_ops_per_second=(
                started_before / (start - ready_at)
                if ready_at is not None and start > ready_at
                else None
            ),
            target_ops_per_second=LIVE_MIN_RATE,
            offered_ops_per_second=self.rate,
            workers=self.workers,
            failed_workers=int(self.data.get("failed_workers", 0)),
            rest_seconds=rest[1] - rest[0] if rest else 0.0,
            rest_ops=len(at_rest),
            rest_p50_ms=percentile(at_rest, 0.50),
            rest_p99_ms=percentile(at_rest, 0.99),
            rest_worst_ms=max(at_rest, default=None),
            created=int(self.data.get("created", 0)),
            worst_queued_ms=worst_queued,
            worst_unqueued_ms=worst_unqueued,
            error_samples=list(self.data.get("errors", []))[:5],
            waits_ms=waits,
            queued_ms=queued,
            rest_waits_ms=at_rest,
        )


if __name__ == "__main__":
    count, key_arg, out_path, ready_path, limit, per_second, processes, in_atomic = sys.argv[1:9]
    raise SystemExit(
        serve(
            int(count),
            Keys.from_arg(key_arg),
            Path(out_path),
            Path(ready_path),
            float(limit),
            float(per_second),
            int(processes),
            in_atomic == "1",
        )
    )
