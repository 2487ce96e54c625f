"""The ways of removing every session that are compared, and one measurement of one of them.

- `ours`: `python manage.py release --skip-migrate` with a new FORCE_LOGOUT_ON_DEPLOY value, on
  a database where the release app is installed: the release phase as Heroku runs it.
- `delete`: `Session.objects.all().delete()`, what people type in a shell.
- `per_object`: `for s in Session.objects.all(): s.delete()`, timed on a sample and extrapolated.
- `delete_pattern`: django-redis `cache.delete_pattern("django.contrib.sessions.cache*")`.
- `ours_logins`, `delete_logins` (PostgreSQL): the release and `Session.objects.all().delete()`
  with login records: one row per 10 sessions in each of two tables with a foreign key to
  `django_session`, one CASCADE, one SET_NULL (`benchmarks.login_records`). Their tables are
  made by `migrate` before the fill and dropped after, so the other methods see none.

Each runs as its own process beside the live process (`live.py`). Its clear time is the
command's own account, which leaves out starting Python and Django (on a busy machine that
varies by tenths of a second): the release's history row (`duration_seconds`, from before it
takes the release lock to the end of the clear), the timer around the ORM or django-redis call,
and for the per-object loop its time per row on the sample times N. The end-to-end time, wall
time less the median wall time of the same command with nothing to do, run just before it beside
the same live load, is reported beside it.

Each method but the per-object loop and those with login records runs `--repeats` times (3) at
each size, on a store filled afresh each time: one start of Python and Django beside the live
load varies by a tenth of a second, and how long the release waits for a moment when the busy
site leaves the table free varies as much. The report gives the run with the median end-to-end
time, and the live waits of every run.
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks import databases, fill, proc
from benchmarks.config import (
    ALL_METHODS_UP_TO,
    DB_BACKENDS,
    PYTHON,
    REDIS_URL,
    RELEASE_TIMEOUT,
    SESSION_CACHE_ENGINE,
    Keys,
    Options,
    child_env,
)
from benchmarks.live import LiveSite, Window


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    extrapolated: bool = False
    login_records: bool = False  # with benchmarks.login_records installed and filled
    above_all_methods: bool = True  # measured above ALL_METHODS_UP_TO sessions too


OURS = Method("ours", "release (ours)")
DELETE = Method("delete", "Session.objects.all().delete()")
PER_OBJECT = Method(
    "per_object", "per-object loop (extrapolated)", extrapolated=True, above_all_methods=False
)
# django-redis sends one DEL a key in a single MULTI/EXEC: at ten million keys Redis held every
# other client for 10 s while it ran them, and the client gave up waiting after 326 s, at 4 GB.
DELETE_PATTERN = Method("delete_pattern", "django-redis delete_pattern", above_all_methods=False)
OURS_LOGINS = Method(
    "ours_logins",
    "release (ours), with login records",
    login_records=True,
    above_all_methods=False,
)
DELETE_LOGINS = Method(
    "delete_logins",
    "Session.objects.all().delete(), with login records",
    login_records=True,
    above_all_methods=False,
)

METHODS = {
    "postgresql": [OURS, DELETE, PER_OBJECT, OURS_LOGINS, DELETE_LOGINS],
    "mariadb": [OURS, DELETE, PER_OBJECT],
    "redis": [OURS, DELETE_PATTERN],
}
METHOD_NAMES = sorted({m.name for methods in METHODS.values() for m in methods})
# The methods whose live waits are held to the targets: the live load must keep its rate while
# they run (the others may stall it: that is what they are compared for).
WAITS_JUDGED = frozenset({OURS.name, OURS_LOGINS.name})
# What `ours` is held against, per backend.
REFERENCE = {"postgresql": DELETE, "mariadb": DELETE, "redis": DELETE_PATTERN}
# Login records, in each of their two tables: one row per this many sessions.
SESSIONS_PER_LOGIN_RECORD = 10


def reference_of(backend: str, method: str) -> Method:
    """What a method's clear time is compared with: the same data without the tool."""
    if method in {OURS_LOGINS.name, DELETE_LOGINS.name}:
        return DELETE_LOGINS
    return REFERENCE[backend]


def methods_of(backend: str, options: Options, n: int) -> list[Method]:
    """The backend's methods at `n` sessions, those named by --methods where it names any; above
    ALL_METHODS_UP_TO, only the release and `delete()`."""
    return [
        m
        for m in METHODS[backend]
        if (not options.methods or m.name in options.methods)
        and (n <= ALL_METHODS_UP_TO or m.above_all_methods)
    ]


@dataclass
class Backend:
    """One backend prepared for measuring: where its sessions and its release history live."""

    name: str
    database_url: str  # DATABASE_URL: the sessions (db engine) and the release history
    history: str  # the database backend of the history: postgresql, mariadb or sqlite
    workdir: Path
    marker: str = ""  # the FORCE_LOGOUT_ON_DEPLOY value applied last
    keys: Keys | None = None  # those the live site takes for its own; None: ask it again

    @property
    def engine_env(self) -> dict[str, str]:
        if self.name == "redis":
            return {"DJANGO_SESSION_ENGINE": SESSION_CACHE_ENGINE, "REDIS_URL": REDIS_URL}
        return {}

    def release_env(self, marker: str) -> dict[str, str]:
        """The release command as on Heroku: the example project's settings."""
        return child_env(
            DATABASE_URL=self.database_url, FORCE_LOGOUT_ON_DEPLOY=marker, **self.engine_env
        )

    def logins_env(self, env: dict[str, str]) -> dict[str, str]:
        """`env` with the login records installed (benchmarks.settings)."""
        return {**env, "DJANGO_SETTINGS_MODULE": "benchmarks.settings", "BENCH_LOGIN_RECORDS": "1"}

    def bench_env(self, **extra: str) -> dict[str, str]:
        """The suite's other processes: benchmarks.settings on the same stores."""
        return child_env(
            DATABASE_URL=self.database_url,
            DJANGO_SETTINGS_MODULE="benchmarks.settings",
            **self.engine_env,
            **extra,
        )


_markers = 0


def new_marker() -> str:
    global _markers
    _markers += 1
    return f"bench-{time.strftime('%Y%m%dT%H%M%S')}-{_markers}"


def manage(*args: str) -> list[str]:
    return [PYTHON, "manage.py", *args]


def runner(*args: str) -> list[str]:
    return [PYTHON, "-m", "benchmarks.runner", *args]


def comparison_timeout(n: int) -> float:
    return 300 + n * 1e-4


def argv_env(
    method: Method, backend: Backend, options: Options, *, noop: bool = False
) -> tuple[list[str], dict[str, str], float]:
    """The command of `method`, its environment and its timeout (0: `comparison_timeout`);
    with `noop`, the same command with nothing to do."""
    if method in (OURS, OURS_LOGINS):
        marker = backend.marker if noop else new_marker()
        env = backend.release_env(marker)
        if method.login_records:
            env = backend.logins_env(env)
        return manage("release", "--skip-migrate", "--json"), env, RELEASE_TIMEOUT
    if noop:
        extra = {"BENCH_CACHE": "django_redis"} if method is DELETE_PATTERN else {}
        env = backend.bench_env(**extra)
        return runner("noop"), backend.logins_env(env) if method.login_records else env, 120.0
    if method is DELETE:
        return runner("delete"), backend.bench_env(), 0.0
    if method is DELETE_LOGINS:
        return runner("delete"), backend.logins_env(backend.bench_env()), 0.0
    if method is PER_OBJECT:
        return runner("per-object", str(options.per_object_sample)), backend.bench_env(), 600.0
    return runner("delete-pattern"), backend.bench_env(BENCH_CACHE="django_redis"), 0.0


def startup_beside(method: Method, backend: Backend, options: Options) -> float:
    """The wall time of `method`'s command when it has nothing to remove, run beside the same
    live load as the measurement (on two cores, that load slows starting Python and Django by
    tenths of a second): the median of `startup_repeats` runs."""
    walls = []
    for _ in range(options.startup_repeats):
        argv, env, timeout = argv_env(method, backend, options, noop=True)
        if method in (OURS, OURS_LOGINS):
            databases.wait_for_release_lock(backend.history)
        result = proc.run(argv, env, timeout)
        if not result.ok:
            raise RuntimeError(f"{method.label} with nothing to do: {result.failure()}")
        walls.append(result.seconds)
    return statistics.median(walls)


@dataclass
class Measurement:
    backend: str
    n: int
    method: str
    label: str
    status: str  # ok, timeout or error
    # The command's own account of its work, without starting Python and Django: the release's
    # history (`duration_seconds`), the others' timer around the call; the per-object loop's
    # time per row on its sample times N.
    clear_seconds: float | None
    end_to_end_seconds: float | None  # its wall time less its wall time with nothing to do
    wall_seconds: float
    startup_seconds: float | None
    peak_rss_mb: float
    removed: int | None
    fill_seconds: float
    extrapolated: bool
    sample: int | None
    live: dict[str, Any]
    remaining: int | None = None  # sessions of the fill left after the clear
    dependents: str | None = None  # with login records: what became of them
    dependents_ok: bool | None = None  # all deleted (CASCADE) and set NULL (SET_NULL)
    others_kept: int | None = None  # Redis: unrelated keys still there
    others: int | None = None
    lock_wait_seconds: float = 0.0  # waiting beforehand for another database's release lock
    # The release's own account of each step (`release --json`'s `steps`), in seconds.
    steps: dict[str, float] | None = None
    # Its account of the parts of its clear (`clear_steps`), where the store times them.
    clear_steps: dict[str, float] | None = None
    # Redis: the seconds Redis itself spent in each command while the command ran, the live
    # site's included in "all".
    redis_seconds: dict[str, float] | None = None
    output: str = ""  # the end of what the command printed
    error: str | None = None
    # Where the method ran more than once: each run's times and worst wait, in the order run.
    runs: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def run_summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "clear_seconds": self.clear_seconds,
            "end_to_end_seconds": self.end_to_end_seconds,
            "wall_seconds": self.wall_seconds,
            "startup_seconds": self.startup_seconds,
            "worst_ms": self.live.get("worst_ms"),
        }


def _history_row(backend: Backend) -> tuple[float | None, int | None]:
    """The newest history row: how long the release says its logout took, and how many."""
    sql = "SELECT duration_seconds, sessions_removed FROM release_logout ORDER BY id DESC LIMIT 1"
    if backend.history == "sqlite":
        with sqlite3.connect(backend.database_url.removeprefix("sqlite:///")) as connection:
            row = connection.execute(sql).fetchone()
    else:
        with (
            databases.postgres() if backend.history == "postgresql" else databases.mariadb()
        ) as connection:
            cursor = connection.cursor()
            cursor.execute(sql)
            row = cursor.fetchone()
    if not row:
        return None, None
    return (None if row[0] is None else float(row[0])), (None if row[1] is None else int(row[1]))


Steps = dict[str, float]


def _own_account(
    method: Method, backend: Backend, result: proc.Command
) -> tuple[float | None, int | None, Steps | None, Steps | None]:
    """What the command says it took and removed; the release also how long each step and each
    part of its clear took, checked against its history row."""
    if method in (OURS, OURS_LOGINS):
        document = json.loads(result.stdout)
        recorded, removed = _history_row(backend)
        if removed != document["sessions_removed"]:
            raise RuntimeError(f"the history says {removed}, the release {document!r}")
        return recorded, removed, document["steps"], document["clear_steps"]
    lines = result.stdout.strip().splitlines()
    if not lines:
        return None, None, None, None
    data = json.loads(lines[-1])
    return float(data["seconds"]), int(data["count"]), None, None


def runs_of(method: Method, options: Options) -> int:
    """How many times `method` runs at each size: `repeats`, but once for the per-object loop
    (extrapolated from a sample) and the methods with login records (a minute or more each)."""
    return 1 if method.extrapolated or method.login_records else max(options.repeats, 1)


def measure(method: Method, backend: Backend, n: int, options: Options) -> Measurement:
    """Fill the store with `n` sessions, then run `method` beside the live process; as many
    times as `runs_of()` says, each on a store filled afresh: the run with the median end-to-end
    time, with the live waits of them all."""
    if not method.login_records:
        return _repeated(method, backend, n, options)
    login_tables(backend, present=True)
    try:
        return _repeated(method, backend, n, options)
    finally:
        login_tables(backend, present=False)


def _repeated(method: Method, backend: Backend, n: int, options: Options) -> Measurement:
    runs: list[tuple[Measurement, Window]] = []
    for run in range(runs_of(method, options)):
        measurement, window = _measure(method, backend, n, options, at_rest=run == 0)
        runs.append((measurement, window))
        if measurement.status != "ok":
            break
    return combined(runs)


def combined(runs: list[tuple[Measurement, Window]]) -> Measurement:
    """One measurement of several runs: the first that failed, else the run with the median
    end-to-end time (the lower of the two middle ones), with the live waits of every run, the
    highest peak memory, and the most sessions any run left."""
    failed = [m for m, _ in runs if m.status != "ok"]
    # Only a run that went through has an end-to-end time, and only those are ordered.
    ordered = sorted(runs, key=lambda run: run[0].end_to_end_seconds or 0.0)
    chosen = failed[0] if failed else ordered[(len(ordered) - 1) // 2][0]
    measurements = [m for m, _ in runs]
    return replace(
        chosen,
        live=Window.merged([window for _, window in runs]).as_dict(),
        # A run that timed out has no peak (NaN): the highest of the runs that have one.
        peak_rss_mb=max(
            (m.peak_rss_mb for m in measurements if not math.isnan(m.peak_rss_mb)),
            default=math.nan,
        ),
        remaining=max((m.remaining for m in measurements if m.remaining is not None), default=None),
        others_kept=min(
            (m.others_kept for m in measurements if m.others_kept is not None), default=None
        ),
        lock_wait_seconds=sum(m.lock_wait_seconds for m in measurements),
        runs=[m.run_summary() for m in measurements],
    )


def live_keys(backend: Backend) -> Keys:
    """The keys of sessions the live site takes for its own: a process with its settings makes
    one (after a logout, the guard's stamp changes, and with it these keys)."""
    if backend.keys is None:
        result = proc.run(runner("made-key"), backend.bench_env(), 120)
        if not result.ok:
            raise RuntimeError(f"making a session as the live site: {result.failure()}")
        backend.keys = Keys.like(json.loads(result.stdout.strip().splitlines()[-1])["key"])
    return backend.keys


def login_tables(backend: Backend, *, present: bool) -> None:
    """Make the login records' tables (their migration), or drop them (migrating to zero)."""
    argv = manage("migrate", "bench_logins", *([] if present else ["zero"]), "--no-input")
    result = proc.run(argv, backend.logins_env(backend.bench_env()), 300)
    if not result.ok:
        raise RuntimeError(f"migrate bench_logins: {result.failure()}")


def _measure(
    method: Method, backend: Backend, n: int, options: Options, *, at_rest: bool
) -> tuple[Measurement, Window]:
    others = options.redis_others if backend.name == "redis" else 0
    every = SESSIONS_PER_LOGIN_RECORD if method.login_records else 0
    keys = live_keys(backend)
    fill_seconds = fill.fill(backend.name, n, keys, others, login_records_every=every)
    argv, env, timeout = argv_env(method, backend, options)
    if not timeout:
        timeout = comparison_timeout(n)
    ours = method in (OURS, OURS_LOGINS)
    rest_seconds = options.rest if at_rest and method.name in WAITS_JUDGED else 0.0
    with LiveSite(
        backend.bench_env(),
        n,
        backend.workdir,
        timeout + 120 + rest_seconds,
        options.live_rate,
        options.live_workers,
        keys,
        atomic=backend.name in DB_BACKENDS,
    ) as live:
        time.sleep(options.settle)
        rest_from = time.monotonic()
        time.sleep(rest_seconds)
        rest = (rest_from, time.monotonic())
        startup = None if method.extrapolated else startup_beside(method, backend, options)
        lock_wait = databases.wait_for_release_lock(backend.history) if ours else 0.0
        redis_before = databases.redis_command_seconds() if backend.name == "redis" else None
        result = proc.run(argv, env, timeout)
        redis_seconds = None
        if redis_before is not None:
            redis_after = databases.redis_command_seconds()
            redis_seconds = {name: redis_after[name] - redis_before[name] for name in redis_after}
        if ours and result.ok:
            # The value it applied: the runs with nothing to do repeat it.
            backend.marker = env["FORCE_LOGOUT_ON_DEPLOY"]
        if ours:
            backend.keys = None  # a logout: a new stamp for the sessions made after it
        time.sleep(options.settle)
    window = live.window(result.started, result.ended, rest if rest_seconds else None)
    own, removed, steps, clear_steps = (
        (None, None, None, None) if not result.ok else _own_account(method, backend, result)
    )
    clear = end_to_end = None
    if result.ok and method.extrapolated:
        clear = (own or 0.0) / max(removed or 1, 1) * n
    elif result.ok:
        clear = own
        end_to_end = max(result.seconds - (startup or 0.0), 0.0)
    measurement = Measurement(
        backend=backend.name,
        n=n,
        method=method.name,
        label=method.label,
        status="ok" if result.ok else "timeout" if result.timed_out else "error",
        clear_seconds=clear,
        end_to_end_seconds=end_to_end,
        wall_seconds=result.seconds,
        startup_seconds=startup,
        peak_rss_mb=result.peak_rss_mb,
        removed=removed,
        fill_seconds=fill_seconds,
        extrapolated=method.extrapolated,
        sample=options.per_object_sample if method.extrapolated else None,
        live=window.as_dict(),
        lock_wait_seconds=lock_wait,
        steps=steps,
        clear_steps=clear_steps,
        redis_seconds=redis_seconds,
        output=(result.stdout + result.stderr)[-3000:],
        error=None if result.ok else result.failure(),
    )
    _check_after(measurement, backend, n, window.created, others)
    if method.login_records:
        measurement.dependents, measurement.dependents_ok = fill.login_records_after(n, every)
    return measurement, window


def _check_after(m: Measurement, backend: Backend, n: int, created: int, others: int) -> None:
    """How many of the filled sessions are left (the live process may have made `created`
    new ones meanwhile, which a clear that ran first leaves), and Redis's other keys."""
    if backend.name == "redis":
        left = databases.count_keys(fill.session_pattern())
        m.others = others
        m.others_kept = databases.count_keys(fill.OTHER_PATTERN)
    else:
        left = databases.count_sessions(backend.name)
    m.remaining = max(left - created, 0)
