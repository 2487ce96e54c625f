"""What the guard adds to loading a session: `python -m benchmarks.guard_cost`.

Times `aload()` and `load()` per call of the guarded store (`release.sessions`) against the store
of the engine it wraps, for the signed-cookie and database engines (the database on SQLite, in
a file), in a process that read its stamp after a logout: the release command installed the tool
(FORCE_LOGOUT_VERSION = 1), then a release with 2 logged everyone out, and the first session read
the stamp, as a web process does. Each call builds a store for a signed-in session's key (its
cookie) and loads it; the guarded store loads a session that it saved, Django's store one that it
saved. Batches of calls alternate between the two, in alternating order, for `--rounds` rounds;
the result is the median of the batches' microseconds per call, and the ratio of the medians.

Target (the issue): the guarded `aload()` takes at most 1.1 times as long as Django's.

Writes results.json and results.md to `--out` (default benchmarks/results/guard-cost-<time>/).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from benchmarks.config import ROOT, SIGNED_IN

ENGINES = {
    "signed_cookies": "django.contrib.sessions.backends.signed_cookies",
    "db": "django.contrib.sessions.backends.db",
}
METHODS = ("aload", "load")
MAX_RATIO = 1.1  # guarded aload() against Django's
# Calls per batch: a batch lasts some milliseconds, so that the clock's resolution and the
# scheduler's slices do not count.
CALLS = {"signed_cookies": 300, "db": 40}
SMOKE_CALLS = {"signed_cookies": 50, "db": 10}
ROUNDS = 61


@dataclass
class Timing:
    engine: str
    method: str
    calls: int
    django_us: list[float] = field(default_factory=list)  # per call, one value per batch
    guarded_us: list[float] = field(default_factory=list)
    # The same batches in CPU time of this process (all its threads): what other processes
    # running meanwhile on the machine take does not count.
    django_cpu_us: list[float] = field(default_factory=list)
    guarded_cpu_us: list[float] = field(default_factory=list)

    @property
    def django_median(self) -> float:
        return statistics.median(self.django_us)

    @property
    def guarded_median(self) -> float:
        return statistics.median(self.guarded_us)

    @property
    def ratio(self) -> float:
        return self.guarded_median / self.django_median

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.guarded_cpu_us) / statistics.median(self.django_cpu_us)

    @property
    def target(self) -> str:
        if self.method != "aload":
            return "n/a"
        return "PASS" if self.ratio <= MAX_RATIO else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "django_median_us": self.django_median,
            "guarded_median_us": self.guarded_median,
            "ratio": self.ratio,
            "django_cpu_median_us": statistics.median(self.django_cpu_us),
            "guarded_cpu_median_us": statistics.median(self.guarded_cpu_us),
            "cpu_ratio": self.cpu_ratio,
            "target": self.target,
        }


def set_up(database: Path) -> None:
    """Django with the example project's settings on a new SQLite file; the tool installed,
    then a logout; this process's stamp read."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
        DATABASE_URL=f"sqlite:///{database}",
        DEBUG="0",  # no query log
    )
    for name in ("REDIS_URL", "FORCE_LOGOUT_ON_DEPLOY", "BENCH_SESSION_ENGINE", "BENCH_CACHE"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from io import StringIO

    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import override_settings

    from release.guard import forget_process_stamp, process_stamp

    out = StringIO()
    call_command("migrate", verbosity=0, stdout=out)
    with override_settings(FORCE_LOGOUT_VERSION=1):
        call_command("release", "--skip-migrate", stdout=out)
    settings.FORCE_LOGOUT_VERSION = 2
    call_command("release", "--skip-migrate", stdout=out)
    forget_process_stamp()
    if process_stamp().is_blank:
        raise RuntimeError(f"no stamp after a logout: {out.getvalue()}")


def stores(engine: str) -> dict[str, tuple[type[Any], str]]:
    """Django's store and the guarded one, each with the key of a signed-in session it saved."""
    from release.sessions import guarded_store_class

    own: type[Any] = import_module(ENGINES[engine]).SessionStore
    made: dict[str, tuple[type[Any], str]] = {}
    for name, store_class in (("django", own), ("guarded", guarded_store_class(own))):
        store = store_class()
        store.update(SIGNED_IN)
        store.save()
        key = str(store.session_key)
        if dict(store_class(key).load()) != SIGNED_IN:
            raise RuntimeError(f"{name} {engine}: the session does not load")
        made[name] = (store_class, key)
    if made["django"][1] == made["guarded"][1]:
        raise RuntimeError("the guarded store saved what Django's did: no stamp")
    return made


def batch(method: str, store_class: type[Any], key: str, loop: asyncio.AbstractEventLoop) -> Any:
    """A function of n that makes n stores for `key` and loads each with `method`."""
    if method == "load":

        def sync_calls(n: int) -> None:
            for _ in range(n):
                store_class(key).load()

        return sync_calls

    async def calls(n: int) -> None:
        for _ in range(n):
            await store_class(key).aload()

    return lambda n: loop.run_until_complete(calls(n))


def per_call_us(run: Callable[[int], None], n: int) -> tuple[float, float]:
    """Microseconds per call of `run(n)`: wall clock, and CPU time of this process."""
    gc.collect()
    started, cpu = time.perf_counter_ns(), time.process_time_ns()
    run(n)
    return (time.perf_counter_ns() - started) / n / 1000, (time.process_time_ns() - cpu) / n / 1000


def measure(engine: str, method: str, calls: int, rounds: int) -> Timing:
    made = stores(engine)
    loop = asyncio.new_event_loop()
    try:
        runs = {name: batch(method, *made[name], loop) for name in ("django", "guarded")}
        for run in runs.values():  # warm up: imports, connections, caches
            run(max(1, calls // 10))
        timing = Timing(engine, method, calls)
        for i in range(rounds):
            order = ("django", "guarded") if i % 2 == 0 else ("guarded", "django")
            for name in order:
                wall, cpu = per_call_us(runs[name], calls)
                if name == "django":
                    timing.django_us.append(wall)
                    timing.django_cpu_us.append(cpu)
                else:
                    timing.guarded_us.append(wall)
                    timing.guarded_cpu_us.append(cpu)
    finally:
        loop.close()
    return timing


def markdown(timings: list[Timing], meta: dict[str, Any]) -> str:
    lines = [
        "## What the guard adds to loading a session",
        "",
        f"`{meta['command']}` on {meta['started']}: Django {meta['django']}, Python "
        f"{meta['python']}, {meta['cores']} cores; {meta['rounds']} interleaved rounds, median "
        "of the batches' time per call. Each call builds a store for a signed-in session's key "
        "and loads it; the process read its stamp after a logout.",
        "",
        "| engine | method | calls per batch | Django's store (µs) | guarded (µs) | ratio | "
        f"CPU time ratio | target ≤ {MAX_RATIO}x |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for t in timings:
        lines.append(
            f"| {t.engine} | {t.method}() | {t.calls:,} | {t.django_median:.1f} | "
            f"{t.guarded_median:.1f} | {t.ratio:.3f} | {t.cpu_ratio:.3f} | {t.target} |"
        )
    return "\n".join(lines) + "\n"


def run_child(out: Path, smoke: bool) -> dict[str, Any]:
    """This benchmark in a process of its own (it sets Django up), for `python -m benchmarks`:
    its results.json, or {"error": ...}."""
    from benchmarks.config import PYTHON, child_env
    from benchmarks.proc import run

    argv = [PYTHON, "-m", "benchmarks.guard_cost", "--out", str(out)]
    command = run([*argv, "--smoke"] if smoke else argv, child_env(), 900)
    if not command.ok:
        return {"error": command.failure()}
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    return results


def checks(results: dict[str, Any] | None) -> list[Any]:
    """The target, per engine, as `python -m benchmarks` lists its targets."""
    from benchmarks.targets import Check

    target = f"guarded aload() at most {MAX_RATIO}x Django's store's"
    if not results or "error" in results:
        return [Check(target, "not measured", "N/A")]
    return [
        Check(
            f"{target}: {t['engine']}",
            f"{t['guarded_median_us']:.1f} µs against {t['django_median_us']:.1f} µs per call "
            f"(ratio {t['ratio']:.3f})",
            t["target"],
        )
        for t in results["timings"]
        if t["method"] == "aload"
    ]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.guard_cost", description=__doc__)
    p.add_argument("--rounds", type=int, help=f"batches of each store (default {ROUNDS})")
    p.add_argument("--smoke", action="store_true", help="a few short batches: checks it runs")
    p.add_argument("--out", type=Path, help="directory for results.json and results.md")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    rounds = args.rounds or (3 if args.smoke else ROUNDS)
    calls = SMOKE_CALLS if args.smoke else CALLS
    out = args.out or ROOT / "benchmarks" / "results" / time.strftime("guard-cost-%Y%m%d-%H%M%S")
    out = out if out.is_absolute() else ROOT / out
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    with tempfile.TemporaryDirectory(prefix="guard-cost-") as tmp:
        set_up(Path(tmp) / "db.sqlite3")
        timings = [
            measure(engine, method, calls[engine], rounds)
            for engine in ENGINES
            for method in METHODS
        ]
        from django.db import connections

        connections.close_all()
    import django

    meta = {
        "command": " ".join(["python -m benchmarks.guard_cost", *(argv or sys.argv[1:])]),
        "started": started,
        "django": django.get_version(),
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
        "rounds": rounds,
        "smoke": args.smoke,
        "max_ratio": MAX_RATIO,
    }
    document = {**meta, "timings": [t.as_dict() for t in timings]}
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    text = markdown(timings, meta)
    (out / "results.md").write_text(text)
    print(text)
    for t in timings:
        print(
            f"{t.target:4} {t.engine} {t.method}(): guarded {t.guarded_median:.1f} µs, Django "
            f"{t.django_median:.1f} µs per call, ratio {t.ratio:.3f}"
        )
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
