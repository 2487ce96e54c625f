"""What the suite runs against, and the options of one run."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
REPORT_TITLE = "# Release logout benchmark"  # results.md's first line

# The suite's own databases: other runs (the tests) use test_release* and Redis 13 and 15.
# BENCH_DATABASE and BENCH_REDIS_DB name others, for two runs at once on the same servers.
BENCH_DATABASE = os.environ.get("BENCH_DATABASE") or "release_bench"
POSTGRES_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL = f"postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE}"
MARIADB_HOST, MARIADB_PORT, MARIADB_USER = "127.0.0.1", 3306, "root"
MARIADB_URL = f"mysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{BENCH_DATABASE}"
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB") or 14)
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"

DB_BACKENDS = ("postgresql", "mariadb")
BACKENDS = (*DB_BACKENDS, "redis")

SESSION_DB_ENGINE = "django.contrib.sessions.backends.db"
SESSION_CACHE_ENGINE = "django.contrib.sessions.backends.cache"
# Every session a logout must remove expires in 14 days, Django's SESSION_COOKIE_AGE.
SESSION_AGE = 14 * 24 * 3600

# What a signed-in user's session holds.
SIGNED_IN = {
    "_auth_user_id": "42",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "9f" * 32,
}

# Session keys are made, not stored: the live process picks key i of N by computing it, and SQL
# makes the same keys (fill.py). Key i is a prefix and i in decimal, zero-padded: keys in the
# order of i, in which MariaDB appends to its clustered index (see fill.py for PostgreSQL's
# heap). Before any logout the prefix is KEY_PREFIX, in keys of Django's 32 characters. After
# one, the live site's guard (release.sessions) refuses, without looking them up, sessions whose
# keys do not carry its stamp: its keys are 40 characters, the stamp then 26 random ones. The
# fill then makes keys with the live site's stamp, as the sessions of a site that has been up
# since that logout: its reads find them, and its saves update them.
KEY_PREFIX = "bench"
DJANGO_KEY_LENGTH = 32
STAMPED_KEY_LENGTH = 40
STAMPED_KEY_RANDOM = 26


@dataclass(frozen=True)
class Keys:
    """The session keys of a fill: key i is `prefix` and i in decimal, zero-padded to `length`
    characters, all of them among Django's [a-z0-9]."""

    prefix: str = KEY_PREFIX
    length: int = DJANGO_KEY_LENGTH

    @property
    def digits(self) -> int:
        return self.length - len(self.prefix)

    def key(self, i: int) -> str:
        return f"{self.prefix}{i:0{self.digits}d}"

    @classmethod
    def like(cls, made: str) -> Keys:
        """The keys of sessions the live site takes for its own, from a key it made."""
        if len(made) == STAMPED_KEY_LENGTH:
            return cls(made[: STAMPED_KEY_LENGTH - STAMPED_KEY_RANDOM], STAMPED_KEY_LENGTH)
        if len(made) == DJANGO_KEY_LENGTH:
            return cls()
        raise ValueError(f"The session engine made a key of {len(made)} characters: {made!r}.")

    def as_arg(self) -> str:
        return f"{self.prefix}:{self.length}"

    @classmethod
    def from_arg(cls, text: str) -> Keys:
        prefix, _, length = text.partition(":")
        return cls(prefix, int(length))


# Targets (ratios measured in one run, on one machine; clears judged end to end).
MAX_WAIT_MS = 50.0  # the worst wait of a live session read or save, on every store
MAX_WAIT_MS_BY_BACKEND: dict[str, float] = {}
POSTGRES_MAX_RATIO = 0.25
# With login records (foreign keys to the session table) the release deletes in batches, each
# with what refers to it, instead of TRUNCATE: it must not be slower than delete().
LOGINS_MAX_RATIO = 1.0
MARIADB_MAX_RATIO = 1.0
REDIS_MAX_RATIO = 0.15
REDIS_MAX_RSS_MB = 100.0
BIG_RUN_MAX_SECONDS = 1800.0  # "well inside the hour" Heroku gives the release phase
MEMORY_GROWTH = 1.10  # peak RSS at the largest N, at most this times the smallest N's
NOOP_MAX_RATIO = 1.05
# Requests/s with the tool, as a share of those without it (from the server's CPU per request).
HTTP_MIN_RATIO = 0.98
# Two identical servers (A/A) must measure 1.00 with a 95 % interval within ± this, or the
# method cannot judge HTTP_MIN_RATIO on the machine.
HTTP_CALIBRATION = 0.02

RELEASE_TIMEOUT = 3600.0  # Heroku ends a release phase after an hour
# Above this many sessions only the release and `Session.objects.all().delete()` run: the
# per-object loop is timed per row on a sample whatever N is, with login records ten million
# sessions would take the release about 8 minutes and `delete()` about 10 and 14 GB of memory,
# and `delete_pattern` of ten million keys did not finish (methods.DELETE_PATTERN).
ALL_METHODS_UP_TO = 1_000_000

# The live site beside each method (live.py): a busy site's load, at least LIVE_MIN_RATE session
# operations a second from LIVE_WORKERS processes, each with its own connection. They are paced
# at LIVE_RATE, above the minimum, so that the short stalls the wait targets allow (tens of
# milliseconds) leave the load above it. On the databases ATOMIC_SHARE of the operations save a
# session in transaction.atomic() and hold it open ATOMIC_HOLD_S (at random) before committing,
# as a view under ATOMIC_REQUESTS does.
LIVE_MIN_RATE = 200.0
LIVE_RATE = 250.0
LIVE_WORKERS = 4
ATOMIC_SHARE = 0.2
ATOMIC_HOLD_S = (0.010, 0.050)


@dataclass
class Options:
    sizes: list[int] = field(default_factory=lambda: [100_000, 1_000_000])
    backends: list[str] = field(default_factory=lambda: list(BACKENDS))
    methods: list[str] | None = None  # the clearing methods to measure (default: all)
    out: Path | None = None
    skip_http: bool = False
    smoke: bool = False
    keep: bool = False
    per_object_sample: int = 2000
    redis_others: int = 100_000
    # Repeats of a release and two `migrate` runs (noop.py): with 21 of a release and a `migrate`,
    # two runs of the same code gave 1.025x and 1.069x, and `migrate` against itself 0.982x and
    # 0.991x, about what a release with nothing to do adds (9 ms of 0.4 s).
    noop_repeats: int = 41
    startup_repeats: int = 5
    # Runs of each method at each size, on a store filled afresh (methods.runs_of()).
    repeats: int = 3
    http_seconds: float = 5.0  # each wrk run (whole seconds: wrk's own unit)
    http_rounds: int = 12
    http_refresh: int = 2  # rounds between fresh server processes
    http_connections: int = 4
    http_workers: int = 1  # gunicorn sync workers of each server
    live_rate: float = LIVE_RATE  # session operations a second of the live site, in all
    live_workers: int = LIVE_WORKERS
    settle: float = 1.0  # live operations before and after each method, in seconds
    # Before each release, seconds of the live load alone: the waits this machine gives with
    # nothing else running, beside the release's.
    rest: float = 30.0
    command: str = ""

    @classmethod
    def for_smoke(cls) -> Options:
        return cls(
            sizes=[500, 2000],
            per_object_sample=100,
            redis_others=1000,
            noop_repeats=2,
            startup_repeats=1,
            repeats=2,
            http_seconds=1.0,
            http_rounds=2,
            http_refresh=1,
            settle=0.3,
            rest=1.0,
        )


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every command the suite runs: this one, without what would steer
    the command elsewhere, production-like (DEBUG off), plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "DJANGO_SESSION_ENGINE",
            "DJANGO_SETTINGS_MODULE",
            "FORCE_LOGOUT_ON_DEPLOY",
            "DYNO",
            "BENCH_SESSION_ENGINE",
            "BENCH_CACHE",
        }
    }
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DEBUG"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env
