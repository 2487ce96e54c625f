"""A release with nothing to do against `manage.py migrate` alone: what the tool adds to every
deploy that logs nobody out. Repeated, interleaved, compared by medians.

Each repeat runs the release and two runs of `migrate` (A and B), in an order that rotates: the
release against every `migrate` run, and A against B, the method's own resolution on the machine.
On a quiet 2-core machine, one `migrate` took 0.43 s to 0.90 s (a tenth of the runs under 0.48 s,
a tenth over 0.72 s), and its CPU time followed its wall time (correlation 0.998): the same work
at whatever speed the machine's CPU gave it. `migrate` against itself measured 0.987x and 1.018x
in two sets of 61 runs each, 0.982x and 0.991x in two of 21: the resolution of this comparison,
against the 9-14 ms the release step adds to a 0.5 s process (2 %)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from benchmarks import databases, proc
from benchmarks.config import child_env
from benchmarks.methods import Backend, manage

# The order of one repeat's runs, by repeat number modulo 3: each run goes first as often.
ORDERS = (("release", "a", "b"), ("a", "b", "release"), ("b", "release", "a"))


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class Noop:
    backend: str
    repeats: int
    release_seconds: list[float] = field(default_factory=list)
    migrate_a_seconds: list[float] = field(default_factory=list)
    migrate_b_seconds: list[float] = field(default_factory=list)
    release_rss_mb: float = 0.0
    migrate_rss_mb: float = 0.0
    logged_out: bool = False  # a release with nothing to do that recorded something: a bug
    error: str | None = None

    @property
    def migrate_seconds(self) -> list[float]:
        return [*self.migrate_a_seconds, *self.migrate_b_seconds]

    @property
    def release_median(self) -> float | None:
        return median(self.release_seconds)

    @property
    def migrate_median(self) -> float | None:
        return median(self.migrate_seconds)

    @property
    def ratio(self) -> float | None:
        if not self.release_median or not self.migrate_median:
            return None
        return self.release_median / self.migrate_median

    @property
    def calibration(self) -> float | None:
        """`migrate` against itself (A/A): 1.00 but for the machine's noise."""
        a, b = median(self.migrate_a_seconds), median(self.migrate_b_seconds)
        return a / b if a and b else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "release_median": self.release_median,
            "migrate_median": self.migrate_median,
            "ratio": self.ratio,
            "calibration": self.calibration,
        }


def measure_noop(backend: Backend, repeats: int) -> Noop:
    result = Noop(backend.name, repeats)
    release_env = backend.release_env(backend.marker)
    migrate_env = child_env(DATABASE_URL=backend.database_url, **backend.engine_env)
    history_before = databases.count_history(backend.history)
    for i in range(repeats):
        for name in ORDERS[i % len(ORDERS)]:
            release = name == "release"
            argv = manage("release") if release else manage("migrate", "--no-input")
            databases.wait_for_release_lock(backend.history)
            command = proc.run(argv, release_env if release else migrate_env, 300)
            if not command.ok:
                result.error = f"{' '.join(argv[1:])}: {command.failure()}"
                return result
            if release:
                result.release_seconds.append(command.seconds)
                result.release_rss_mb = max(result.release_rss_mb, command.peak_rss_mb)
                continue
            runs = result.migrate_a_seconds if name == "a" else result.migrate_b_seconds
            runs.append(command.seconds)
            result.migrate_rss_mb = max(result.migrate_rss_mb, command.peak_rss_mb)
    result.logged_out = databases.count_history(backend.history) != history_before
    return result
