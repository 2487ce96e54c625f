"""One run: prepare each backend, measure every method at every size, then the release with
nothing to do, then throughput; check the targets and write the report."""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict
from pathlib import Path

from benchmarks import databases, fill, guard_cost, report
from benchmarks.config import (
    DB_BACKENDS,
    MARIADB_URL,
    POSTGRES_URL,
    ROOT,
    Options,
)
from benchmarks.live import shortfall
from benchmarks.methods import (
    WAITS_JUDGED,
    Backend,
    Measurement,
    live_keys,
    manage,
    measure,
    methods_of,
    new_marker,
)
from benchmarks.noop import measure_noop
from benchmarks.proc import run
from benchmarks.targets import evaluate
from benchmarks.throughput import measure_throughput


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def install(backend: Backend) -> None:
    """The first release with the tool on this database: migrate, and record the markers."""
    backend.marker = new_marker()
    result = run(manage("release"), backend.release_env(backend.marker), 600)
    if not result.ok:
        raise RuntimeError(f"installing the release app: {result.failure()}")


def prepare(name: str, workdir: Path, postgres_ready: bool) -> Backend:
    """Make the backend's database and install the app on it; Redis keeps its release history
    on the suite's PostgreSQL database when there is one, else in SQLite."""
    if name == "postgresql":
        backend = Backend(name, POSTGRES_URL, "postgresql", workdir)
    elif name == "mariadb":
        databases.create("mariadb")
        backend = Backend(name, MARIADB_URL, "mariadb", workdir)
    elif postgres_ready:
        databases.flush_redis()
        backend = Backend(name, POSTGRES_URL, "postgresql", workdir)
    else:
        databases.flush_redis()
        history = workdir / "history.sqlite3"
        history.unlink(missing_ok=True)
        backend = Backend(name, f"sqlite:///{history}", "sqlite", workdir)
    install(backend)
    return backend


def summary(m: Measurement) -> str:
    live = m.live
    clear = "error" if m.clear_seconds is None else f"{m.clear_seconds:.3f} s"
    worst = live.get("worst_ms")
    waits = (
        "n/a"
        if worst is None
        else f"p50 {live['p50_ms']:.1f} ms, p99 {live['p99_ms']:.1f} ms, worst {worst:.1f} ms"
    )
    rate, before = live.get("ops_per_second"), live.get("before_ops_per_second")
    rates = f"{rate or 0:.0f} ops/s (before it {before or 0:.0f} ops/s)"
    text = (
        f"{m.backend} N={m.n:,} {m.label}: clear {clear} (wall {m.wall_seconds:.2f} s, "
        f"{m.peak_rss_mb:.0f} MB, fill {m.fill_seconds:.1f} s), live {live.get('ops')} ops "
        f"at {rates}, waits {waits}"
    )
    return text + (f" [{m.status}: {m.error}]" if m.error else "")


def run_suite(options: Options) -> int:
    started = time.monotonic()
    out = options.out or ROOT / "benchmarks" / "results" / time.strftime("%Y%m%d-%H%M%S")
    out = out if out.is_absolute() else ROOT / out
    workdir = out / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    results = report.Results(
        started=time.strftime("%Y-%m-%d %H:%M %Z"),
        command=options.command,
        machine=report.machine(options.backends),
        options={k: str(v) for k, v in asdict(options).items()},
    )
    for name in options.backends:
        reason = databases.unavailable(name)
        if reason:
            results.skipped[name] = reason
            say(f"{name}: skipped, {reason}")
    backends = [b for b in options.backends if b not in results.skipped]
    postgres_ready = False
    if databases.unavailable("postgresql") is None and (
        "postgresql" in backends or "redis" in backends or not options.skip_http
    ):
        databases.create("postgresql")
        postgres_ready = True
    prepared: dict[str, Backend] = {}
    for name in backends:
        try:
            say(f"{name}: preparing")
            backend = prepare(name, workdir, postgres_ready)
            prepared[name] = backend
            for n in options.sizes:
                for method in methods_of(name, options, n):
                    m = measure(method, backend, n, options)
                    results.measurements.append(m)
                    say(summary(m))
                    if m.status == "error":
                        results.errors.append(f"{name} N={n:,} {m.label}: {m.error}")
                    short = shortfall(m.live, during=m.method in WAITS_JUDGED)
                    if short:
                        say(f"{name} N={n:,} {m.label}: NOT A BUSY SITE: {short}")
                    # The load before the command is the suite's to make; a slower load while
                    # the release runs is the release stalling the site, a result that fails its
                    # wait target. A smoke run checks that the suite runs; its numbers are not
                    # judged.
                    unmade = shortfall(m.live, during=False)
                    if unmade and not options.smoke:
                        results.errors.append(f"{name} N={n:,} {m.label}: {unmade}")
            if name in DB_BACKENDS:
                say(f"{name}: release with nothing to do vs migrate alone")
                # On an emptied, vacuumed and checkpointed table: the runs before leave up to a
                # million deleted rows to clean up, and beside that work six of a full run's
                # eleven releases took 0.52-0.59 s against 0.46-0.47 s for the others.
                fill.fill(name, 0, live_keys(backend))
                noop = measure_noop(backend, options.noop_repeats)
                results.noops.append(noop)
                if noop.error:
                    results.errors.append(f"{name} nothing to do: {noop.error}")
        except Exception as error:  # the other backends still run
            traceback.print_exc()
            results.errors.append(f"{name}: {type(error).__name__}: {error}")
    if not options.skip_http:
        http_backend = prepared.get("postgresql")
        if http_backend is None and postgres_ready:
            http_backend = Backend("postgresql", POSTGRES_URL, "postgresql", workdir)
            install(http_backend)
        if http_backend is None:
            results.skipped["http"] = "needs PostgreSQL"
        else:
            say("throughput: gunicorn with and without the tool")
            try:
                results.http = measure_throughput(http_backend, options)
                if results.http.error:
                    results.errors.append(f"throughput: {results.http.error}")
            except Exception as error:
                traceback.print_exc()
                results.errors.append(f"throughput: {type(error).__name__}: {error}")
    say("guard cost: aload() and load() of the guarded store against Django's (SQLite)")
    results.guard_cost = guard_cost.run_child(out / "guard-cost", options.smoke)
    if "error" in results.guard_cost:
        results.errors.append(f"guard cost: {results.guard_cost['error']}")
    results.checks = evaluate(results.measurements, results.noops, results.http, backends)
    results.checks += guard_cost.checks(results.guard_cost)
    results.seconds = time.monotonic() - started
    if not options.keep:
        for name in [*DB_BACKENDS, "redis"]:
            if name in backends or (name == "postgresql" and postgres_ready):
                databases.drop(name)
    paths = report.write(results, out)
    print()
    print(report.markdown(results))
    for path in paths:
        say(f"wrote {path}")
    for check in results.checks:
        print(f"{check.status:5} {check.target}: {check.measured}")
    return 1 if results.errors else 0
