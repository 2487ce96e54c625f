"""Filling a session store with N realistic sessions, fast: bulk SQL and Redis pipelines.

Every session is a signed-in user's, encoded as Django encodes it, expiring within 15 days;
key i is `config.session_key(i)`, so the live process can find sessions without asking.
"""

from __future__ import annotations

import os
import pickle
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from benchmarks import databases
from benchmarks.config import KEY_SEED, REDIS_URL, SESSION_AGE, SIGNED_IN, session_key

POSTGRES_BATCH = 1_000_000
MARIADB_BATCH = 1_000_000
PIPELINE = 10_000

# Expiry dates spread over 1 to 15 days from now, as on a site people use every day.
SPREAD = SESSION_AGE


@cache
def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()


def encoded_session() -> str:
    """SIGNED_IN as the `db` engine stores it: signed, compressed where it pays."""
    _django()
    from django.contrib.sessions.backends.db import SessionStore

    return SessionStore().encode(SIGNED_IN)


def fill(backend: str, n: int, others: int = 0, login_records_every: int = 0) -> float:
    """Empty the store and put `n` sessions in it (and, on Redis, `others` unrelated keys; on
    PostgreSQL with `login_records_every`, a login record per that many sessions in each table
    of benchmarks.login_records, which must exist).

    Returns the seconds it took."""
    started = time.monotonic()
    if backend == "postgresql":
        fill_postgresql(n, login_records_every)
    elif backend == "mariadb":
        fill_mariadb(n)
    else:
        fill_redis(n, others)
    return time.monotonic() - started


LOGIN_TABLES = ("bench_logins_cascadelogin", "bench_logins_nulllogin")
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def fill_postgresql(n: int, login_records_every: int = 0) -> None:
    data = encoded_session()
    with databases.postgres() as connection:
        if login_records_every:
            connection.execute(f"TRUNCATE django_session, {', '.join(LOGIN_TABLES)}")
        else:
            connection.execute("TRUNCATE django_session")
        for first in range(0, n, POSTGRES_BATCH):
            last = min(n, first + POSTGRES_BATCH) - 1
            connection.execute(
                "INSERT INTO django_session (session_key, session_data, expire_date) "
                "SELECT md5(%s || i), %s, now() + make_interval(secs => 86400 + i %% %s) "
                "FROM generate_series(%s::bigint, %s::bigint) AS i",
                (KEY_SEED, data, SPREAD, first, last),
            )
        for table in LOGIN_TABLES if login_records_every else ():
            connection.execute(
                f"INSERT INTO {table} (session_id, user_agent, created) "
                "SELECT md5(%s || i), %s, now() - make_interval(secs => i %% %s) "
                "FROM generate_series(0, %s::bigint, %s::bigint) AS i",
                (KEY_SEED, USER_AGENT, SPREAD, n - 1, login_records_every),
            )
        # As a table a live site has had for a while: statistics and visibility map up to
        # date, and no checkpoint of the fill's writes left to land in a measurement.
        connection.execute("VACUUM (ANALYZE) django_session")
        for table in LOGIN_TABLES if login_records_every else ():
            connection.execute(f"VACUUM (ANALYZE) {table}")
        connection.execute("CHECKPOINT")


def login_records_after(n: int, every: int) -> tuple[str, bool]:
    """What became of the login records of a fill of `n` sessions, one per `every`, and whether
    that is what on_delete asks (the live process made sessions but no login records)."""
    filled = len(range(0, n, every))
    with databases.postgres() as connection:
        rows = connection.execute(
            f"SELECT (SELECT count(*) FROM {LOGIN_TABLES[0]}), "
            f"(SELECT count(*) FROM {LOGIN_TABLES[1]} WHERE session_id IS NULL), "
            f"(SELECT count(*) FROM {LOGIN_TABLES[1]})"
        ).fetchone()
    assert rows is not None
    left, nulled, kept = rows
    text = (
        f"login records: {filled - left:,} of {filled:,} deleted (CASCADE), "
        f"{nulled:,} of {kept:,} set NULL (SET_NULL)"
    )
    return text, left == 0 and nulled == kept == filled


def _has_sequence_engine(cursor: Any) -> bool:
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.ENGINES "
        "WHERE ENGINE = 'SEQUENCE' AND SUPPORT IN ('YES', 'DEFAULT')"
    )
    return bool(cursor.fetchone()[0])


def fill_mariadb(n: int) -> None:
    data = encoded_session()
    with databases.mariadb() as connection:
        cursor = connection.cursor()
        cursor.execute("TRUNCATE TABLE django_session")
        sequence = _has_sequence_engine(cursor)
        now = datetime.now(UTC).replace(tzinfo=None)  # Django keeps UTC in DATETIME columns
        for first in range(0, n, MARIADB_BATCH):
            last = min(n, first + MARIADB_BATCH) - 1
            if sequence:
                # MariaDB's Sequence engine: seq_A_to_B is a table of the numbers A..B. In key
                # order, InnoDB appends to its clustered index (five times faster than random
                # order); the rows are the same, the pages as after OPTIMIZE TABLE.
                cursor.execute(
                    "INSERT INTO django_session (session_key, session_data, expire_date) "
                    "SELECT MD5(CONCAT(%s, seq)), %s, "
                    "UTC_TIMESTAMP(6) + INTERVAL (86400 + seq MOD %s) SECOND "
                    f"FROM seq_{first:d}_to_{last:d} ORDER BY 1",
                    (KEY_SEED, data, SPREAD),
                )
            else:
                # mysqlclient turns executemany() of an INSERT into multi-row INSERTs.
                for chunk in range(first, last + 1, 10_000):
                    cursor.executemany(
                        "INSERT INTO django_session (session_key, session_data, expire_date) "
                        "VALUES (%s, %s, %s)",
                        [
                            (session_key(i), data, now + timedelta(seconds=86400 + i % SPREAD))
                            for i in range(chunk, min(last + 1, chunk + 10_000))
                        ],
                    )
        cursor.execute("ANALYZE TABLE django_session")
        cursor.fetchall()


def cache_keys() -> tuple[Any, str]:
    """Django's RedisCache as the example project makes it from REDIS_URL, and the prefix its
    cache session engine puts before session keys."""
    _django()
    from django.contrib.sessions.backends.cache import KEY_PREFIX
    from django.core.cache.backends.redis import RedisCache

    return RedisCache(REDIS_URL, {}), KEY_PREFIX


def other_key(cache: Any, i: int) -> str:
    """Unrelated keys: half made by the same cache (same KEY_PREFIX and VERSION), half not."""
    return str(cache.make_key(f"bench-other:{i}")) if i % 2 else f"bench-other-raw:{i}"


OTHER_PATTERN = "*bench-other*"


def session_pattern() -> str:
    """The Redis pattern of every session key the cache engine makes through the cache."""
    cache, prefix = cache_keys()
    return f"{cache.make_key(prefix)}*"


def fill_redis(n: int, others: int) -> None:
    databases.flush_redis()
    client = databases.redis_client()
    cache, prefix = cache_keys()
    # What Django's RedisCache stores for the cache engine's session dict: a pickle of it.
    value = pickle.dumps(SIGNED_IN, pickle.HIGHEST_PROTOCOL)
    pipeline = client.pipeline(transaction=False)
    for i in range(n):
        pipeline.set(cache.make_key(prefix + session_key(i)), value, ex=SESSION_AGE)
        if len(pipeline) >= PIPELINE:
            pipeline.execute()
    for i in range(others):
        pipeline.set(other_key(cache, i), b"x" * 100, ex=SESSION_AGE if i % 3 else None)
        if len(pipeline) >= PIPELINE:
            pipeline.execute()
    pipeline.execute()
