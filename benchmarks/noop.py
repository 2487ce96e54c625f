"""A release with nothing to do against `manage.py migrate` alone: what the tool adds to every
deploy that logs nobody out. Repeated, interleaved, compared by medians."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from benchmarks import databases, proc
from benchmarks.config import child_env
from benchmarks.methods import Backend, manage


@dataclass
class Noop:
    backend: str
    repeats: int
    release_seconds: list[float] = field(default_factory=list)
    migrate_seconds: list[float] = field(default_factory=list)
    release_rss_mb: float = 0.0
    migrate_rss_mb: float = 0.0
    logged_out: bool = False  # a release with nothing to do that recorded something: a bug
    error: str | None = None

    @property
    def release_median(self) -> float | None:
        return statistics.median(self.release_seconds) if self.release_seconds else None

    @property
    def migrate_median(self) -> float | None:
        return statistics.median(self.migrate_seconds) if self.migrate_seconds else None

    @property
    def ratio(self) -> float | None:
        if not self.release_median or not self.migrate_median:
            return None
        return self.release_median / self.migrate_median

    @property
    def ratio_of_least(self) -> float | None:
        """The ratio of the fastest runs: what is left when the machine's noise is not."""
        if not self.release_seconds or not self.migrate_seconds:
            return None
        return min(self.release_seconds) / min(self.migrate_seconds)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "release_median": self.release_median,
            "migrate_median": self.migrate_median,
            "ratio": self.ratio,
            "ratio_of_least": self.ratio_of_least,
        }


def measure_noop(backend: Backend, repeats: int) -> Noop:
    result = Noop(backend.name, repeats)
    release_env = backend.release_env(backend.marker)
    migrate_env = child_env(DATABASE_URL=backend.database_url, **backend.engine_env)
    history_before = databases.count_history(backend.history)
    for i in range(repeats):
        # Alternate which goes first, so that neither always finds the caches warmer.
        runs = [("release", release_env), ("migrate", migrate_env)]
        for name, env in runs if i % 2 == 0 else runs[::-1]:
            argv = manage("release") if name == "release" else manage("migrate", "--no-input")
            databases.wait_for_release_lock(backend.history)
            command = proc.run(argv, env, 300)
            if not command.ok:
                result.error = f"{' '.join(argv[1:])}: {command.failure()}"
                return result
            if name == "release":
                result.release_seconds.append(command.seconds)
                result.release_rss_mb = max(result.release_rss_mb, command.peak_rss_mb)
            else:
                result.migrate_seconds.append(command.seconds)
                result.migrate_rss_mb = max(result.migrate_rss_mb, command.peak_rss_mb)
    result.logged_out = databases.count_history(backend.history) != history_before
    return result
