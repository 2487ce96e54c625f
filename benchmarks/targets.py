"""The issue's targets, checked against one run: PASS, FAIL, or N/A where it did not measure.

A failed target is a result, not an error of the suite."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.config import (
    BIG_RUN_MAX_SECONDS,
    HTTP_CALIBRATION,
    HTTP_MIN_RATIO,
    LIVE_MIN_RATE,
    LOGINS_MAX_RATIO,
    MARIADB_MAX_RATIO,
    MAX_WAIT_MS,
    MAX_WAIT_MS_BY_BACKEND,
    MEMORY_GROWTH,
    NOOP_MAX_RATIO,
    POSTGRES_MAX_RATIO,
    REDIS_MAX_RATIO,
    REDIS_MAX_RSS_MB,
)
from benchmarks.live import shortfall
from benchmarks.methods import (
    DELETE_LOGINS,
    OURS_LOGINS,
    REFERENCE,
    SESSIONS_PER_LOGIN_RECORD,
    Measurement,
)
from benchmarks.noop import Noop
from benchmarks.throughput import COMPARISONS, PAGE_WORDS, Throughput

NAMES = {"postgresql": "PostgreSQL", "mariadb": "MariaDB", "redis": "Redis"}
TARGET_N = 1_000_000
BIG_N = 10_000_000


@dataclass
class Check:
    target: str
    measured: str
    status: str  # PASS, FAIL or N/A

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def median_of(*measurements: Measurement) -> str:
    """Says which run a ratio is between, where the methods ran more than once."""
    counts = sorted({len(m.runs) for m in measurements if len(m.runs) > 1})
    if not counts:
        return ""
    return f"the median of {' and '.join(str(c) for c in counts)} runs each: "


class Checker:
    def __init__(
        self, measurements: list[Measurement], noops: list[Noop], http: Throughput | None
    ) -> None:
        self.measurements = measurements
        self.noops = noops
        self.http = http
        self.checks: list[Check] = []

    def find(self, backend: str, n: int, method: str) -> Measurement | None:
        return next(
            (
                m
                for m in self.measurements
                if m.backend == backend and m.n == n and m.method == method
            ),
            None,
        )

    def sizes(self, backend: str) -> list[int]:
        return sorted({m.n for m in self.measurements if m.backend == backend})

    def size_for(self, backend: str) -> int | None:
        """N = 1,000,000 where measured, else the largest N measured (a smoke run)."""
        sizes = self.sizes(backend)
        if TARGET_N in sizes:
            return TARGET_N
        return max((n for n in sizes if n < BIG_N), default=None)

    def add(self, target: str, measured: str, status: str) -> None:
        self.checks.append(Check(target, measured, status))

    def ours_failed(self, target: str, ours: Measurement | None) -> bool:
        """FAIL the target when our release did not run to the end or left sessions."""
        if ours is None:
            return False
        if ours.status != "ok":
            self.add(target, f"release {ours.status}: {ours.error}", "FAIL")
            return True
        if ours.remaining:
            self.add(target, f"release left {ours.remaining:,} of the sessions", "FAIL")
            return True
        if ours.dependents and not ours.dependents_ok:
            self.add(target, f"release left rows that refer to sessions: {ours.dependents}", "FAIL")
            return True
        return False

    def clear_ratio(self, backend: str, limit: float, ours_name: str = "ours") -> None:
        n = self.size_for(backend)
        name = NAMES[backend]
        reference = REFERENCE[backend]
        what = f"{n or TARGET_N:,} sessions"
        if ours_name == OURS_LOGINS.name:
            reference = DELETE_LOGINS
            rows = len(range(0, n or TARGET_N, SESSIONS_PER_LOGIN_RECORD))
            what += f" and 2 x {rows:,} login records (CASCADE, SET_NULL)"
        target = f"{name}, {what}: clear ≤ {limit:g} x {reference.label.split(',')[0]}, end to end"
        ours, other = (
            (None, None)
            if n is None
            else (self.find(backend, n, ours_name), self.find(backend, n, reference.name))
        )
        if n is None or (ours is None and other is None):
            self.add(target, "not measured", "N/A")
            return
        if self.ours_failed(target, ours):
            return
        if ours is None or other is None or other.clear_seconds is None:
            self.add(target, "not measured", "N/A")
            return
        assert ours.clear_seconds is not None
        # Judged end to end (process start to exit, less the same command with nothing to do),
        # with each command's own account beside it.
        if ours.end_to_end_seconds is None or not other.end_to_end_seconds:
            self.add(target, "no end-to-end time", "N/A")
            return
        ratio = ours.end_to_end_seconds / other.end_to_end_seconds
        own = ours.clear_seconds / other.clear_seconds if other.clear_seconds else None
        measured = (
            median_of(ours, other)
            + f"end to end {ours.end_to_end_seconds:.2f} s vs {other.end_to_end_seconds:.2f} s "
            f"= {ratio:.2f}x (own account {ours.clear_seconds:.2f} s vs "
            f"{other.clear_seconds:.2f} s" + (f" = {own:.2f}x)" if own is not None else ")")
        )
        self.add(target, measured, verdict(ratio <= limit))

    def waits(
        self, backend: str, n: int | None = None, label: str = "", ours_name: str = "ours"
    ) -> None:
        n = n or self.size_for(backend)
        bound = MAX_WAIT_MS_BY_BACKEND.get(backend, MAX_WAIT_MS)
        target = (
            f"{NAMES[backend]}, {n or TARGET_N:,} sessions{label}: a concurrent session read "
            f"or save waits ≤ {bound:g} ms during the release, under ≥ {LIVE_MIN_RATE:g} "
            "session operations/s"
        )
        ours = None if n is None else self.find(backend, n, ours_name)
        if ours is None:
            self.add(target, "not measured", "N/A")
            return
        if ours.live.get("worst_ms") is None:
            self.add(target, "no live operation overlapped the release", "FAIL")
            return
        live = ours.live
        measured = (
            (f"over {len(ours.runs)} runs: " if len(ours.runs) > 1 else "")
            + f"worst {ms(live['worst_ms'])}, p99 {ms(live['p99_ms'])}, p50 {ms(live['p50_ms'])}; "
            f"{live['ops']} ops at {live['ops_per_second'] or 0:,.0f} ops/s"
        )
        if live.get("worst_queued_ms") is not None:
            measured += (
                f" (of the worst, {ms(live['worst_queued_ms'])} waiting for a CPU; the longest "
                f"wait less that, {ms(live['worst_unqueued_ms'])})"
            )
        if live.get("errors"):
            measured += f", {live['errors']} failed"
        if live.get("rest_worst_ms") is not None:
            measured += (
                f"; the same load at rest for {live['rest_seconds']:.0f} s before it: worst "
                f"{ms(live['rest_worst_ms'])}, p99 {ms(live['rest_p99_ms'])}"
            )
        short = shortfall(live, during=True)
        if short:
            measured += f"; {short}"
        ok = live["worst_ms"] <= bound and not live.get("errors") and not short
        self.add(target, measured, verdict(ok))

    def redis(self) -> None:
        n = self.size_for("redis")
        ours = None if n is None else self.find("redis", n, "ours")
        target = f"Redis, {n or TARGET_N:,} session keys: peak memory < {REDIS_MAX_RSS_MB:g} MB"
        if ours is None:
            self.add(target, "not measured", "N/A")
        else:
            rss = ours.peak_rss_mb
            self.add(target, f"{rss:.0f} MB", verdict(rss < REDIS_MAX_RSS_MB))
        target = f"Redis, {n or TARGET_N:,} session keys: the other keys intact"
        if ours is None or ours.others is None:
            self.add(target, "not measured", "N/A")
        else:
            kept = f"{ours.others_kept:,} of {ours.others:,} other keys kept"
            self.add(target, kept, verdict(ours.others_kept == ours.others))

    def big(self, backend: str) -> None:
        target = (
            f"{NAMES[backend]}, {BIG_N:,} sessions: release finishes in "
            f"≤ {BIG_RUN_MAX_SECONDS / 60:.0f} min"
        )
        ours = self.find(backend, BIG_N, "ours")
        if ours is None:
            self.add(target, f"not run (add {BIG_N} to --sizes)", "N/A")
            return
        if self.ours_failed(target, ours):
            return
        self.add(
            target,
            f"{ours.wall_seconds:,.1f} s",
            verdict(ours.wall_seconds <= BIG_RUN_MAX_SECONDS),
        )
        self.waits(backend, BIG_N)

    def memory(self, backend: str) -> None:
        sizes = self.sizes(backend)
        target = (
            f"{NAMES[backend]}: peak memory of the release does not grow with N "
            f"(largest N ≤ {MEMORY_GROWTH:g} x smallest)"
        )
        small = self.find(backend, sizes[0], "ours") if sizes else None
        large = self.find(backend, sizes[-1], "ours") if sizes else None
        if len(sizes) < 2 or small is None or large is None:
            self.add(target, "needs two sizes", "N/A")
            return
        measured = (
            f"{small.peak_rss_mb:.0f} MB at {small.n:,}, {large.peak_rss_mb:.0f} MB at {large.n:,}"
        )
        self.add(target, measured, verdict(large.peak_rss_mb <= MEMORY_GROWTH * small.peak_rss_mb))

    def noop(self, noop: Noop) -> None:
        target = (
            f"{NAMES[noop.backend]}: a release with nothing to do ≤ {NOOP_MAX_RATIO:g} x "
            "`migrate` alone (median wall time)"
        )
        if noop.error:
            self.add(target, f"error: {noop.error}", "FAIL")
            return
        ratio = noop.ratio
        assert ratio is not None
        assert noop.release_median is not None
        assert noop.migrate_median is not None
        measured = (
            f"{noop.release_median:.3f} s vs {noop.migrate_median:.3f} s = {ratio:.3f}x"
            + (f" (`migrate` against itself: {noop.calibration:.3f}x)" if noop.calibration else "")
            + (", and it recorded a logout" if noop.logged_out else "")
        )
        self.add(target, measured, verdict(ratio <= NOOP_MAX_RATIO and not noop.logged_out))

    def throughput(self) -> None:
        """The A/A calibration first: where it cannot tell 2 % apart, the guard is not judged."""
        http = self.http
        for comparison in ("calibration", "guard"):
            for page, words in PAGE_WORDS.items():
                if comparison == "calibration":
                    target = (
                        f"Requests/s, {words}: two identical servers (A/A) measure 1.00x, 95 % "
                        f"interval within ±{HTTP_CALIBRATION:g}"
                    )
                else:
                    target = (
                        f"Requests/s, {words}: with the tool ≥ {HTTP_MIN_RATIO:g} x without "
                        "(server CPU per request, median of the rounds)"
                    )
                if http is None or http.skipped or http.error:
                    reason = "skipped" if http is None else http.skipped or f"error: {http.error}"
                    self.add(target, reason, "FAIL" if http and http.error else "N/A")
                    continue
                estimate = http.ratio(page, comparison)
                if estimate is None:
                    self.add(target, "not measured", "N/A")
                    continue
                measured, against = COMPARISONS[comparison]
                text = (
                    f"{estimate.text()} over {estimate.rounds} rounds; "
                    f"{http.median_cpu_us(measured, page) or 0:,.0f} vs "
                    f"{http.median_cpu_us(against, page) or 0:,.0f} µs of CPU a request"
                )
                failed = sum(http.errors.get(v, {}).get(page, 0) for v in (measured, against))
                if failed:
                    text += f"; {failed} requests failed"
                calibrated = http.calibrated(page)
                if comparison == "calibration":
                    if not calibrated:
                        text += (
                            f"; wider than ±{HTTP_CALIBRATION:g}: on this machine the method "
                            f"cannot judge {HTTP_CALIBRATION * 100:g} %"
                        )
                    self.add(target, text, verdict(bool(calibrated) and not failed))
                elif not calibrated:
                    self.add(target, f"{text}; not judged: the A/A calibration failed", "N/A")
                else:
                    ok = estimate.median >= HTTP_MIN_RATIO and not failed
                    self.add(target, text, verdict(ok))

    def run(self, backends: list[str]) -> list[Check]:
        if "postgresql" in backends:
            self.clear_ratio("postgresql", POSTGRES_MAX_RATIO)
            self.waits("postgresql")
            self.clear_ratio("postgresql", LOGINS_MAX_RATIO, OURS_LOGINS.name)
            self.waits("postgresql", label=" with login records", ours_name=OURS_LOGINS.name)
        if "mariadb" in backends:
            self.clear_ratio("mariadb", MARIADB_MAX_RATIO)
            self.waits("mariadb")
        if "redis" in backends:
            self.clear_ratio("redis", REDIS_MAX_RATIO)
            self.waits("redis")
            self.redis()
        for backend in ("postgresql", "mariadb"):
            if backend in backends:
                self.big(backend)
        for backend in backends:
            self.memory(backend)
        for noop in self.noops:
            self.noop(noop)
        self.throughput()
        return self.checks


def evaluate(
    measurements: list[Measurement],
    noops: list[Noop],
    http: Throughput | None,
    backends: list[str],
) -> list[Check]:
    return Checker(measurements, noops, http).run(backends)
