"""Filling a session store with N realistic sessions, fast: bulk SQL and Redis pipelines.

Every session is a signed-in user's, encoded as Django encodes it, expiring within 15 days;
key i is `keys.key(i)` (config.Keys), so the live process can find sessions without asking.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import chain
from typing import Any

from benchmarks import databases
from benchmarks.config import REDIS_URL, SESSION_AGE, SIGNED_IN, Keys

POSTGRES_BATCH = 1_000_000
MARIADB_BATCH = 1_000_000
PIPELINE = 10_000
EXISTS_NAMES = 1_000

# Expiry dates spread over 1 to 15 days from now, as on a site people use every day.
SPREAD = SESSION_AGE

# Keys.key(i) in SQL, of the number i (PostgreSQL) or seq (MariaDB's Sequence engine); the
# parameters are the prefix and the number of digits.
POSTGRES_KEY = "%s || lpad(i::text, %s, '0')"
MARIADB_KEY = "CONCAT(%s, LPAD(seq, %s, '0'))"

# PostgreSQL's heap keeps rows in the order they came, and a site's sessions came in an order
# unrelated to their random keys. The j-th row made is session i = j x SCATTER mod N (a prime
# above any N, so this is a permutation of 0..N-1): neighbouring keys lie far apart in the
# table, as on a site, and a batch of keys in key order reads pages all over it. The parameter
# is N.
SCATTER = 2_654_435_761
POSTGRES_SCATTER = f"LATERAL (SELECT j * {SCATTER} %% %s AS i) AS scatter"


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


def fill(backend: str, n: int, keys: Keys, others: int = 0, login_records_every: int = 0) -> float:
    """Empty the store and put `n` sessions under `keys` in it (and, on Redis, `others` unrelated
    keys; on PostgreSQL with `login_records_every`, a login record per that many sessions in each
    table of benchmarks.login_records, which must exist).

    Returns the seconds it took."""
    started = time.monotonic()
    if backend == "postgresql":
        fill_postgresql(n, keys, login_records_every)
    elif backend == "mariadb":
        fill_mariadb(n, keys)
    else:
        fill_redis(n, keys, others)
    return time.monotonic() - started


LOGIN_TABLES = ("bench_logins_cascadelogin", "bench_logins_nulllogin")
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def fill_postgresql(n: int, keys: Keys, login_records_every: int = 0) -> None:
    data = encoded_session()
    with databases.postgres() as connection:
        if login_records_every:
            connection.execute(f"TRUNCATE django_session, {', '.join(LOGIN_TABLES)}")
        else:
            connection.execute("TRUNCATE django_session")
        rebuilt = nullcontext() if login_records_every else _indexes_built_after(connection)
        with rebuilt:
            for first in range(0, n, POSTGRES_BATCH):
                last = min(n, first + POSTGRES_BATCH) - 1
                connection.execute(
                    "INSERT INTO django_session (session_key, session_data, expire_date) "
                    f"SELECT {POSTGRES_KEY}, %s, now() + make_interval(secs => 86400 + j %% %s) "
                    f"FROM generate_series(%s::bigint, %s::bigint) AS j, {POSTGRES_SCATTER}",
                    (keys.prefix, keys.digits, data, SPREAD, first, last, n),
                )
        for table in LOGIN_TABLES if login_records_every else ():
            connection.execute(
                f"INSERT INTO {table} (session_id, user_agent, created) "
                f"SELECT {POSTGRES_KEY}, %s, now() - make_interval(secs => j %% %s) "
                f"FROM generate_series(0, %s::bigint) AS j, {POSTGRES_SCATTER} "
                "WHERE i %% %s = 0",
                (keys.prefix, keys.digits, USER_AGENT, SPREAD, n - 1, n, login_records_every),
            )
        # As a table a live site has had for a while: statistics and visibility map up to
        # date, and no checkpoint of the fill's writes left to land in a measurement.
        connection.execute("VACUUM (ANALYZE) django_session")
        for table in LOGIN_TABLES if login_records_every else ():
            connection.execute(f"VACUUM (ANALYZE) {table}")
        connection.execute("CHECKPOINT")


@contextmanager
def _indexes_built_after(connection: Any) -> Iterator[None]:
    """The session table's indexes dropped, then built again from the rows: rows in scattered
    key order would each go to a random page of each index, which outgrows PostgreSQL's buffers
    past a few million rows (ten million took 250 s). Not where the login records' foreign keys
    need the primary key. In one transaction: a fill that fails leaves the indexes as they were."""
    with connection.transaction():
        key = connection.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'django_session'::regclass AND contype = 'p'"
        ).fetchone()
        assert key is not None, "django_session has no primary key"
        others = connection.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'django_session' AND indexname <> %s",
            (key[0],),
        ).fetchall()
        connection.execute(f'ALTER TABLE django_session DROP CONSTRAINT "{key[0]}"')
        for name, _ in others:
            connection.execute(f'DROP INDEX "{name}"')
        yield
        connection.execute("SET LOCAL maintenance_work_mem = '512MB'")
        connection.execute(f'ALTER TABLE django_session ADD CONSTRAINT "{key[0]}" {key[1]}')
        for _, definition in others:
            connection.execute(definition)


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


def fill_mariadb(n: int, keys: Keys) -> None:
    data = encoded_session()
    with databases.mariadb() as connection:
        cursor = connection.cursor()
        cursor.execute("TRUNCATE TABLE django_session")
        sequence = _has_sequence_engine(cursor)
        now = datetime.now(UTC).replace(tzinfo=None)  # Django keeps UTC in DATETIME columns
        for first in range(0, n, MARIADB_BATCH):
            last = min(n, first + MARIADB_BATCH) - 1
            if sequence:
                # MariaDB's Sequence engine: seq_A_to_B is a table of the numbers A..B, in
                # order. Keys in that order append to InnoDB's clustered index, which is the
                # table: its pages filled one after the other, as after OPTIMIZE TABLE, and
                # never read back, whatever the size of the buffer pool.
                cursor.execute(
                    "INSERT INTO django_session (session_key, session_data, expire_date) "
                    f"SELECT {MARIADB_KEY}, %s, %s + INTERVAL (86400 + seq MOD %s) SECOND "
                    f"FROM seq_{first:d}_to_{last:d} ORDER BY seq",
                    (keys.prefix, keys.digits, data, now, SPREAD),
                )
            else:
                # mysqlclient turns executemany() of an INSERT into multi-row INSERTs.
                for chunk in range(first, last + 1, 10_000):
                    cursor.executemany(
                        "INSERT INTO django_session (session_key, session_data, expire_date) "
                        "VALUES (%s, %s, %s)",
                        [
                            (keys.key(i), data, now + timedelta(seconds=86400 + i % SPREAD))
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


def fill_redis(n: int, keys: Keys, others: int) -> None:
    databases.flush_redis()
    client = databases.redis_client()
    cache, prefix = cache_keys()
    # What Django's RedisCache stores for the cache engine's session dict: a pickle of it.
    value = pickle.dumps(SIGNED_IN, pickle.HIGHEST_PROTOCOL)

    def sessions() -> Iterator[str]:
        return (cache.make_key(prefix + keys.key(i)) for i in range(n))

    def unrelated() -> Iterator[str]:
        return (other_key(cache, i) for i in range(others))

    pipeline = client.pipeline(transaction=False)
    for name in sessions():
        pipeline.set(name, value, ex=SESSION_AGE)
        if len(pipeline) >= PIPELINE:
            pipeline.execute()
    for i, name in enumerate(unrelated()):
        pipeline.set(name, b"x" * 100, ex=SESSION_AGE if i % 3 else None)
        if len(pipeline) >= PIPELINE:
            pipeline.execute()
    pipeline.execute()
    finish_rehashing(client, chain(sessions(), unrelated()))


def finish_rehashing(client: Any, names: Iterable[str]) -> None:
    """Look every key up once, so that Redis finishes growing its tables of keys and of expiry
    times before anything is measured.

    Redis grows a table by moving its entries to one twice the size a few at a time: a step with
    each lookup of a key, and 1 ms in each 100 ms on its own. Just filled, a million keys
    leave both tables mid-move for about 80 s, during which each SCAN walks both halves, and
    the command measured then pays for the move. A store that grew over days is almost never
    mid-move. A lookup of a key with an expiry time steps both tables once, and a table of S
    slots is moved in at most S steps: at most as many as the keys in it."""
    from release.clearing.keys import batched  # needs Django set up, as cache_keys() does

    for batch in batched(names, EXISTS_NAMES):
        client.exists(*batch)
