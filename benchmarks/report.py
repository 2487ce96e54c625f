"""What a run writes: results.json, results.md (markdown tables) and clear-time.png."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import databases
from benchmarks.config import (
    ATOMIC_HOLD_S,
    ATOMIC_SHARE,
    HTTP_CALIBRATION,
    LIVE_MIN_RATE,
    LIVE_RATE,
    LIVE_WORKERS,
    REPORT_TITLE,
)
from benchmarks.live import shortfall
from benchmarks.methods import METHODS, WAITS_JUDGED, Measurement, reference_of
from benchmarks.noop import Noop
from benchmarks.targets import NAMES, Check
from benchmarks.throughput import PAGE_WORDS, VARIANTS, Throughput


@dataclass
class Results:
    started: str
    command: str
    machine: dict[str, Any]
    options: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    noops: list[Noop] = field(default_factory=list)
    http: Throughput | None = None
    guard_cost: dict[str, Any] | None = None  # benchmarks.guard_cost's results.json
    checks: list[Check] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "command": self.command,
            "seconds": self.seconds,
            "machine": self.machine,
            "options": self.options,
            "skipped": self.skipped,
            "measurements": [m.as_dict() for m in self.measurements],
            "noop": [n.as_dict() for n in self.noops],
            "http": self.http.as_dict() if self.http else None,
            "guard_cost": self.guard_cost,
            "targets": [c.as_dict() for c in self.checks],
            "errors": self.errors,
        }


def _first_match(path: str, pattern: str) -> str | None:
    try:
        found = re.search(pattern, Path(path).read_text(), re.MULTILINE)
    except OSError:
        return None
    return found.group(1).strip() if found else None


def filesystem(path: str | None) -> str | None:
    """The filesystem that holds `path`, and whether it frees blocks with online discard:
    on ext4 mounted with `discard`, freeing a big file (a TRUNCATE's COMMIT) stalls every
    fdatasync meanwhile, which each COMMIT of the live site waits for."""
    if not path:
        return None
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        resolved = os.path.realpath(path)
    except OSError:
        return None
    best: tuple[str, str, str] | None = None
    for line in mounts:
        _device, point, kind, options, *_ = line.split()
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > len(best[0])):
            best = (point, kind, options)
    if best is None:
        return None
    point, kind, options = best
    discard = "discard" in options.split(",")
    return f"{kind} at {point}, {'online discard' if discard else 'no online discard'}"


def machine(backends: Iterable[str]) -> dict[str, Any]:
    import django

    memory_kb = _first_match("/proc/meminfo", r"^MemTotal:\s+(\d+)")
    try:
        wrk = subprocess.run(
            ["wrk", "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        wrk_version = (wrk.stdout or wrk.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        wrk_version = None
    return {
        "cores": os.cpu_count(),
        "cpu": _first_match("/proc/cpuinfo", r"^model name\s*:\s*(.+)$"),
        "memory_gb": round(int(memory_kb) / 1024 / 1024, 1) if memory_kb else None,
        "os": _first_match("/etc/os-release", r'^PRETTY_NAME="?([^"\n]+)"?'),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "servers": {backend: databases.version(backend) for backend in backends},
        "data_filesystems": {
            backend: filesystem(databases.data_directory(backend))
            for backend in backends
            if backend != "redis"
        },
        "wrk": wrk_version,
    }


def machine_line(results: Results) -> str:
    m = results.machine
    servers = ", ".join(m["servers"].values())  # none under --only-http
    data = "; ".join(
        f"{NAMES[backend]}'s data on {where}"
        for backend, where in m.get("data_filesystems", {}).items()
        if where
    )
    return (
        f"{m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, {m['os']}; Python {m['python']}, "
        f"Django {m['django']}"
        + (f"; {servers}" if servers else "")
        + (f"; {data}" if data else "")
    )


def number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _clear_cell(m: Measurement) -> str:
    if m.status == "timeout":
        return f"> {m.wall_seconds:,.0f} (timeout)"
    if m.status == "error":
        return "error"
    text = number(m.clear_seconds)
    return f"~{text}" if m.extrapolated else text


def _at_rest(live: dict[str, Any]) -> str:
    if live.get("rest_worst_ms") is None:
        return "-"
    return f"{live['rest_p99_ms']:.1f}, {live['rest_worst_ms']:.1f}"


def clear_table(results: Results) -> list[str]:
    lines = [
        "| store | N | method | clear (s) | x reference | end to end (s) | wall (s) "
        "| peak RSS (MB) | live ops | live ops/s | p50 wait (ms) | p99 wait (ms) "
        "| worst wait (ms) | of it, for a CPU (ms) | longest for the store (ms) "
        "| at rest: p99, worst (ms) | notes |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in results.measurements:
        reference = next(
            (
                r
                for r in results.measurements
                if r.backend == m.backend
                and r.n == m.n
                and r.method == reference_of(m.backend, m.method).name
            ),
            None,
        )
        ratio = (
            m.clear_seconds / reference.clear_seconds
            if reference and reference.clear_seconds and m.clear_seconds is not None
            else None
        )
        notes = []
        if m.extrapolated:
            notes.append(f"{m.sample:,} rows timed")
        if len(m.runs) > 1:
            times = ", ".join(number(run["end_to_end_seconds"]) for run in m.runs)
            notes.append(f"{len(m.runs)} runs, end to end {times} s: the median's row")
        if m.live.get("errors"):
            notes.append(f"failed live ops: {m.live['errors']}")
        if m.live.get("interrupted"):
            notes.append(f"interrupted saves: {m.live['interrupted']}")
        short = shortfall(m.live, during=m.method in WAITS_JUDGED)
        if short:
            notes.append(short)
        if m.remaining and not m.extrapolated:
            notes.append(f"{m.remaining:,} sessions left")
        if m.dependents:
            notes.append(m.dependents)
        if m.others is not None:
            notes.append(f"{m.others_kept:,}/{m.others:,} other keys kept")
        if m.lock_wait_seconds >= 0.1:
            notes.append(f"waited {m.lock_wait_seconds:.1f} s first for a test run's release lock")
        if m.error:
            notes.append(m.error.replace("|", "/")[:120])
        lines.append(
            f"| {NAMES[m.backend]} | {m.n:,} | {m.label} | {_clear_cell(m)} | "
            f"{number(ratio)} | {number(m.end_to_end_seconds)} | "
            f"{number(m.wall_seconds)} | "
            f"{'-' if m.extrapolated else number(m.peak_rss_mb, 0)} | {m.live.get('ops', 0)} | "
            f"{number(m.live.get('ops_per_second'), 0)} | {number(m.live.get('p50_ms'), 1)} | "
            f"{number(m.live.get('p99_ms'), 1)} | {number(m.live.get('worst_ms'), 1)} | "
            f"{number(m.live.get('worst_queued_ms'), 1)} | "
            f"{number(m.live.get('worst_unqueued_ms'), 1)} | "
            f"{_at_rest(m.live)} | {'; '.join(notes)} |"
        )
    return lines


STEPS = ("lock", "decide", "clear", "finish", "record")


def breakdown_table(results: Results) -> list[str]:
    """Where each release's wall time went: the steps it reports (`release --json`), and the
    rest, starting Python and Django, the system checks, and exiting."""
    rows = [m for m in results.measurements if m.steps]
    if not rows:
        return []
    head = " | ".join(f"{step} (s)" for step in STEPS)
    lines = [
        f"| store | N | method | wall (s) | start-up, checks, exit (s) | {head} | the clear's "
        "parts (s) |",
        "|---|---|---|---|---|" + "---|" * len(STEPS) + "---|",
    ]
    for m in rows:
        steps = m.steps or {}
        rest = m.wall_seconds - sum(steps.values())
        cells = " | ".join(number(steps.get(step), 3) for step in STEPS)
        clear_steps = (m.clear_steps or {}).items()
        parts = ", ".join(f"{part} {seconds:.3f}" for part, seconds in clear_steps)
        lines.append(
            f"| {NAMES[m.backend]} | {m.n:,} | {m.label} | {number(m.wall_seconds, 3)} | "
            f"{number(rest, 3)} | {cells} | {parts or '-'} |"
        )
    return lines


def redis_table(results: Results) -> list[str]:
    """Redis's own time in the commands of each clear: what no client can do faster."""
    rows = [m for m in results.measurements if m.redis_seconds]
    if not rows:
        return []
    names = databases.REDIS_CLEAR_COMMANDS
    head = " | ".join(f"{name.upper()} (s)" for name in names)
    lines = [
        f"| N | method | clear (s) | Redis: {head} | all commands, the live site's too (s) | "
        "main thread's CPU (s) |",
        "|---:|---|---:|" + "---:|" * len(names) + "---:|---:|",
    ]
    for m in rows:
        seconds = m.redis_seconds or {}
        cells = " | ".join(number(seconds.get(name), 3) for name in names)
        lines.append(
            f"| {m.n:,} | {m.label} | {number(m.clear_seconds)} | {cells} | "
            f"{number(seconds.get('all'), 3)} | {number(seconds.get('main_thread'), 3)} |"
        )
    return lines


def redis_section(results: Results) -> list[str]:
    table = redis_table(results)
    if not table:
        return []
    return [
        "### Redis's own time",
        "",
        "The seconds Redis spent in each command while the clear ran (`INFO commandstats`, "
        "before and after): Redis runs commands one at a time, so no client removes these keys "
        "with these commands in less. *Main thread's CPU*: the CPU time of the thread that also "
        "reads and parses every client's commands and writes the replies (`INFO cpu`), the live "
        "site's too: what the commands' own time leaves out.",
        "",
        *table,
        "",
    ]


def noop_table(results: Results) -> list[str]:
    lines = [
        "| database | release, nothing to do (s) | `migrate` alone (s) | ratio "
        "| A/A: `migrate` against itself | runs of the release | of `migrate` |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in results.noops:
        ratio = "error" if n.error else number(n.ratio, 3)
        lines.append(
            f"| {NAMES[n.backend]} | {number(n.release_median, 3)} | "
            f"{number(n.migrate_median, 3)} | {ratio} | {number(n.calibration, 3)} | "
            f"{len(n.release_seconds)} | {len(n.migrate_seconds)} |"
        )
    return lines


def http_table(http: Throughput) -> list[str]:
    lines = [
        "| page | A/A: plain vs plain | guard vs plain | CPU/request guard (µs) "
        "| plain (µs) | plain again (µs) | wrk req/s guard | plain | plain again "
        "| failed requests |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for page, words in PAGE_WORDS.items():
        cells = []
        for comparison in ("calibration", "guard"):
            estimate = http.ratio(page, comparison)
            cells.append("-" if estimate is None else estimate.text())
        cells += [number(http.median_cpu_us(v, page), 0) for v in VARIANTS]
        cells += [number(http.median_rps(v, page), 0) for v in VARIANTS]
        cells.append(str(sum(http.errors.get(v, {}).get(page, 0) for v in VARIANTS)))
        lines.append(f"| {words} | {' | '.join(cells)} |")
    return lines


def http_section(http: Throughput) -> list[str]:
    uncalibrated = [PAGE_WORDS[p] for p in PAGE_WORDS if http.calibrated(p) is False]
    if uncalibrated:
        calibration = (
            f"The A/A interval is wider than ±{HTTP_CALIBRATION:g} on {', '.join(uncalibrated)}: "
            f"on this machine, now, the method cannot judge {HTTP_CALIBRATION * 100:g} % there "
            "(more rounds, `--http-rounds`, or a quieter machine may)."
        )
    else:
        calibration = (
            f"Every A/A interval lies within ±{HTTP_CALIBRATION:g}: the method tells "
            f"{HTTP_CALIBRATION * 100:g} % apart on this machine."
        )
    return [
        "### Requests per second",
        "",
        f"The example project under gunicorn, one server with the guard (`release.sessions`), "
        "one with the engine it wraps (plain), and a second plain one (*plain again*), each "
        f"with {http.workers} sync worker; wrk loads the three at once, {http.connections} "
        f"connections each, on one page at a time: {http.rounds} rounds of {http.seconds:g} s "
        f"on each page, fresh server processes every {http.refresh} rounds; {http.pinning}. "
        "*CPU/request*: the worker's CPU time (its process CPU clock, all threads) over the "
        "requests it answered, median of the rounds. *Ratio*: the plain server's CPU per "
        "request over the other's, that is the other's requests/s as a share of the plain "
        "engine's where the worker's CPU is the limit; median of the rounds' ratios, 95 % "
        "bootstrap interval in brackets. *A/A*: the two plain servers, the calibration. "
        "*wrk req/s*: wrk's own count, for reference only: the three servers share one core.",
        "",
        calibration,
        "",
        *http_table(http),
    ]


def guard_cost_table(cost: dict[str, Any]) -> list[str]:
    lines = [
        "### What the guard adds to loading a session (`python -m benchmarks.guard_cost`)",
        "",
        f"Per call, median of {cost['rounds']} interleaved batches; SQLite for the database "
        "engine; the process read its stamp after a logout.",
        "",
        "| engine | method | Django's store | guarded | ratio | CPU time ratio | result |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for t in cost["timings"]:
        lines.append(
            f"| {t['engine']} | {t['method']}() | {t['django_median_us']:.1f} µs | "
            f"{t['guarded_median_us']:.1f} µs | {t['ratio']:.3f} | {t['cpu_ratio']:.3f} | "
            f"{t['target']} |"
        )
    return lines


def markdown(results: Results) -> str:
    lines = [
        REPORT_TITLE,
        "",
        f"{results.started}, {machine_line(results)}.",
        "",
        f"Command: `{results.command}` ({results.seconds / 60:.1f} min).",
        "",
        "### Targets",
        "",
        "| target | measured | result |",
        "|---|---|---|",
        *(f"| {c.target} | {c.measured.replace('|', '/')} | {c.status} |" for c in results.checks),
        "",
        "### Clearing every session",
        "",
        "*clear*: the command's own account of its work, without starting Python and Django: "
        "the release's history (`duration_seconds`: from when it holds the release lock to "
        "the end of the clear), the timer around `delete()` or `delete_pattern()`; for the "
        "per-object loop, its time per row on a sample times N. *x reference*: against "
        "`Session.objects.all().delete()` (databases) or django-redis `delete_pattern` (Redis); "
        "*with login records*: one row per 10 sessions in each of two tables with a foreign key "
        "to `django_session`, one CASCADE, one SET_NULL, against `delete()` on the same data. "
        "*End to end*: the command's wall time less the median wall time of the same command "
        "with nothing to remove, run just before it beside the same live load. *Live*: a busy "
        "site beside the command, "
        f"{LIVE_WORKERS} processes with a connection each, reading, saving and creating random "
        f"sessions through Django's SessionStore, {LIVE_RATE:g} operations/s in all; on the "
        f"databases {ATOMIC_SHARE:.0%} of them save a session in `transaction.atomic()` and "
        f"hold it open {ATOMIC_HOLD_S[0] * 1000:g}-{ATOMIC_HOLD_S[1] * 1000:g} ms, as under "
        "ATOMIC_REQUESTS. *Live ops/s*: the operations started while the command ran, a second "
        f"(at least {LIVE_MIN_RATE:g} wanted before each command, and during the release; the "
        "others may stall the site). *Waits*: of the operations that overlapped the command, "
        "less the deliberate hold. *For a CPU*: how much of the worst wait its process was "
        "ready to run but waited for one of the machine's cores (Linux's schedstat), which the "
        "store, the command and the site share here; *longest for the store*: the longest wait "
        "of any of those operations less that part. *At rest*: the waits of the same load "
        "alone, with nothing else running, over a period just before each release's first run "
        "(`--rest-seconds`, 30 by default): what this machine gives the site without the "
        "release. *Runs*: each "
        "method but the per-object loop and those with login records runs several times at "
        "each size (`--repeats`, 3 by default), on a store filled afresh each time; its row is "
        "the run with the median end-to-end time, its live columns the operations of every run.",
        "",
        *clear_table(results),
        "",
        "### Where a release's time goes",
        "",
        "Each release's wall time, from starting the process to its exit, by the steps it "
        "reports in `release --json` (`steps`): waiting for the release lock, reading the "
        "history and deciding, the clear, the final removal of what was saved meanwhile, and "
        "recording (the final transaction, its COMMIT included); the rest is starting Python "
        "and Django, the system checks and exiting. The clear's parts are its own account "
        "(`clear_steps`): the table's size, the preparation (PostgreSQL's second connection, "
        "MariaDB's empty copy), the attempts that did not get the table, the one that did until "
        "the table was let go, its COMMIT through, and dropping MariaDB's old table; or the "
        "batches and the VACUUM after them. Where the method ran more than once, the run with the "
        "median end-to-end time.",
        "",
        *breakdown_table(results),
        "",
        *redis_section(results),
        "### A release with nothing to do",
        "",
        "Wall time of `manage.py release` when no marker changed against `manage.py migrate` "
        "alone: each repeat runs the release and `migrate` twice, in rotating order. The A/A "
        "column is one of those `migrate` runs against the other, the resolution of the "
        "comparison on this machine. The target is on the medians.",
        "",
        *noop_table(results),
    ]
    http = results.http
    if http and not http.skipped and not http.error:
        lines += ["", *http_section(http)]
    elif http:
        lines += ["", f"Requests per second: {http.skipped or http.error}."]
    cost = results.guard_cost
    if cost and "error" not in cost:
        lines += ["", *guard_cost_table(cost)]
    if results.skipped:
        lines += ["", "Skipped: " + "; ".join(f"{b}: {r}" for b, r in results.skipped.items())]
    if results.errors:
        lines += ["", "Errors of the suite:", *(f"- {e}" for e in results.errors)]
    return "\n".join(lines) + "\n"


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(11, 5.5))
    colours = {"postgresql": "tab:blue", "mariadb": "tab:orange", "redis": "tab:red"}
    styles: dict[str, Any] = {
        "ours": "-",
        "delete": "--",
        "per_object": ":",
        "delete_pattern": "--",
        "ours_logins": "-.",
        "delete_logins": (0, (1, 3)),
    }
    markers = {
        "ours": "o",
        "delete": "s",
        "per_object": "^",
        "delete_pattern": "s",
        "ours_logins": "D",
        "delete_logins": "x",
    }
    for backend, methods in METHODS.items():
        for method in methods:
            points = sorted(
                (m.n, m.clear_seconds)
                for m in results.measurements
                if m.backend == backend and m.method == method.name and m.clear_seconds
            )
            if not points:
                continue
            axes.plot(
                [n for n, _ in points],
                [s for _, s in points],
                linestyle=styles[method.name],
                marker=markers[method.name],
                color=colours[backend],
                label=f"{NAMES[backend]}: {method.label}",
            )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("sessions (N)")
    axes.set_ylabel("time to clear (s)")
    axes.set_title("Clearing every session")
    axes.grid(True, which="both", alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write(results: Results, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "results.json", directory / "results.md", directory / "clear-time.png"]
    paths[0].write_text(json.dumps(results.as_dict(), indent=2, default=str) + "\n")
    paths[1].write_text(markdown(results))
    try:
        plot(results, paths[2])
    except ImportError as error:
        results.errors.append(f"no plot: {error} (pip install -r benchmarks/requirements.txt)")
        paths[1].write_text(markdown(results))
        paths.pop()
    return paths
