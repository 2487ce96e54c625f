"""The suite's own databases: reachable or not, made and dropped, counted, and their versions.

PostgreSQL and MariaDB: the database `release_bench` (or BENCH_DATABASE), dropped and made again
by each run. Redis: database 14 (or BENCH_REDIS_DB), which each fill empties with FLUSHDB (that
database only).
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import redis

from benchmarks.config import (
    BENCH_DATABASE,
    MARIADB_HOST,
    MARIADB_PORT,
    MARIADB_USER,
    POSTGRES_ADMIN_URL,
    POSTGRES_URL,
    REDIS_DB,
    REDIS_URL,
)

PORTS = {"postgresql": 5432, "mariadb": 3306, "redis": 6379}


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def unavailable(backend: str) -> str | None:
    """Why `backend` cannot be measured here, or None if it can."""
    if not port_open(PORTS[backend]):
        return f"nothing listens on 127.0.0.1:{PORTS[backend]}"
    if backend == "mariadb":
        try:
            import MySQLdb  # noqa: F401
        except ImportError:
            return "mysqlclient is not installed (tests/requirements-mariadb.txt)"
    return None


@contextmanager
def postgres(url: str = POSTGRES_URL) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


@contextmanager
def mariadb(database: str | None = BENCH_DATABASE) -> Iterator[Any]:
    import MySQLdb

    kwargs: dict[str, Any] = {"host": MARIADB_HOST, "port": MARIADB_PORT, "user": MARIADB_USER}
    if database:
        kwargs["database"] = database
    connection = MySQLdb.connect(charset="utf8mb4", autocommit=True, **kwargs)
    try:
        yield connection
    finally:
        connection.close()


def redis_client() -> redis.Redis:
    # After django-redis removed ten million keys, Redis took longer than redis-py's default
    # timeout to answer the next INFO.
    return redis.Redis.from_url(REDIS_URL, socket_timeout=120, socket_connect_timeout=120)


def create(backend: str) -> None:
    """Drop the suite's database and make it again, empty."""
    drop(backend)
    if backend == "postgresql":
        with postgres(POSTGRES_ADMIN_URL) as connection:
            connection.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    elif backend == "mariadb":
        with mariadb(None) as connection:
            connection.cursor().execute(
                f"CREATE DATABASE `{BENCH_DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
    else:
        flush_redis()


def drop(backend: str) -> None:
    if backend == "postgresql":
        with postgres(POSTGRES_ADMIN_URL) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
    elif backend == "mariadb":
        with mariadb(None) as connection:
            connection.cursor().execute(f"DROP DATABASE IF EXISTS `{BENCH_DATABASE}`")
    else:
        flush_redis()


def flush_redis() -> None:
    client = redis_client()
    assert client.connection_pool.connection_kwargs.get("db") == REDIS_DB
    client.flushdb()


def scalar(backend: str, sql: str, *, server: bool = False) -> Any:
    """The first value `sql` gives in the suite's database, or with `server` outside any (it may
    not exist yet)."""
    if backend == "postgresql":
        with postgres(POSTGRES_ADMIN_URL if server else POSTGRES_URL) as connection:
            row = connection.execute(sql).fetchone()
    else:
        with mariadb(None if server else BENCH_DATABASE) as connection:
            cursor = connection.cursor()
            cursor.execute(sql)
            row = cursor.fetchone()
    return row[0] if row else None


# The release's lock on MariaDB (a GET_LOCK name, one per database, as release.locking makes
# it): should another run hold it, wait for it beforehand, so that the wait is not timed as
# clearing.
RELEASE_LOCK_NAME = (
    f"django-release-logout:{hashlib.sha256(BENCH_DATABASE.encode()).hexdigest()[:32]}"
)


def wait_for_release_lock(backend: str, limit: float = 600.0) -> float:
    """Seconds spent waiting until no one on the server holds the release's named lock."""
    if backend != "mariadb":
        return 0.0
    started = time.monotonic()
    with mariadb() as connection:
        cursor = connection.cursor()
        while time.monotonic() - started < limit:
            cursor.execute("SELECT IS_FREE_LOCK(%s)", [RELEASE_LOCK_NAME])
            if cursor.fetchone()[0] == 1:
                break
            time.sleep(0.05)
    return time.monotonic() - started


def count_sessions(backend: str) -> int:
    return int(scalar(backend, "SELECT COUNT(*) FROM django_session"))


def count_history(backend: str) -> int:
    return int(scalar(backend, "SELECT COUNT(*) FROM release_logout"))


# The commands a clear sends to Redis, whose own time the report shows.
REDIS_CLEAR_COMMANDS = ("scan", "unlink", "del")


def redis_command_seconds() -> dict[str, float]:
    """How long Redis has spent in each command since it started (INFO commandstats), in all of
    them ("all"), and the CPU time of its main thread ("main_thread"), which also reads and
    parses each command and writes each reply, one client at a time: the difference across a
    clear is Redis's own work for it."""
    client = redis_client()
    stats = client.info("commandstats")
    seconds = {
        name: float(stats.get(f"cmdstat_{name}", {}).get("usec", 0)) / 1e6
        for name in REDIS_CLEAR_COMMANDS
    }
    seconds["all"] = sum(float(entry.get("usec", 0)) for entry in stats.values()) / 1e6
    cpu = client.info("cpu")
    seconds["main_thread"] = float(cpu.get("used_cpu_user_main_thread", 0)) + float(
        cpu.get("used_cpu_sys_main_thread", 0)
    )
    return seconds


def count_keys(pattern: str) -> int:
    return sum(1 for _ in redis_client().scan_iter(match=pattern, count=5000))


def data_directory(backend: str) -> str | None:
    """Where a database server keeps its files (on this machine: the servers are local)."""
    sql = "SHOW data_directory" if backend == "postgresql" else "SELECT @@datadir"
    try:
        return str(scalar(backend, sql, server=True))
    except Exception:  # only a blank in the report
        return None


def version(backend: str) -> str:
    try:
        if backend == "postgresql":
            return f"PostgreSQL {scalar(backend, 'SHOW server_version', server=True)}"
        if backend == "mariadb":
            return f"MariaDB {scalar(backend, 'SELECT VERSION()', server=True)}"
        info: dict[str, Any] = redis_client().info("server")
        return f"Redis {info['redis_version']}"
    except Exception as error:  # a version we cannot read is only a blank
        return f"{backend} (version unknown: {type(error).__name__})"
