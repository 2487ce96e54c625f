"""What differs between the databases the release runs on, one class per vendor, chosen once from
the connection (as Django's `connection.ops` is): how a command holds the release lock, how a
table is emptied and how long a statement may wait for a lock, how rows are estimated, and which
errors mean a lock wait timed out or a deadlock.

- PostgreSQL: an advisory lock for the whole command; `TRUNCATE` after `LOCK TABLE ... NOWAIT`,
  or under a short `lock_timeout`, in PL/pgSQL that catches a refused lock, on a connection of
  its own whose COMMIT is waited for only until it has gone through; after batches, a `VACUUM`
  at autovacuum's pace.
- MariaDB: `GET_LOCK`; `TRUNCATE ... NOWAIT` and `SET STATEMENT ... FOR`, which Oracle's MySQL
  lacks: `unsupported()` says so, and the system check release.E006 with it.
- SQLite and anything else: no session-level lock (the whole command is one transaction whose
  first write takes the database's write lock) and no TRUNCATE: one DELETE, which SQLite does
  quickly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from release.exceptions import ReleaseError

LOCK_NAME = "django-release-logout"

# One attempt at TRUNCATE, given how long it may wait for the table's lock in milliseconds (None:
# not at all); whether it emptied the table.
Attempt = Callable[[int | None], bool]


def _error_code(error: DatabaseError) -> tuple[str | None, object]:
    cause = error.__cause__
    args: tuple[object, ...] = getattr(cause, "args", ())
    return getattr(cause, "sqlstate", None), args[0] if args else None


class Database:
    """A database without a session-level lock or TRUNCATE: SQLite, and the fallback."""

    name = "the database"

    # Whether a lock can be held across the transactions of a command, so that a big clear can
    # commit in batches before the transaction that records it.
    has_session_lock = False
    # SQLSTATE codes, and the driver's error numbers where it has no SQLSTATE.
    lock_timeout_codes: frozenset[object] = frozenset()
    deadlock_codes: frozenset[object] = frozenset()
    # How a table is emptied at once, as the summary says it.
    emptying = "TRUNCATE"

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.connection: BaseDatabaseWrapper = connections[alias]

    def quote(self, name: str) -> str:
        return str(self.connection.ops.quote_name(name))

    def unsupported(self) -> str | None:
        """Why the release cannot run on this database, or None."""
        return None

    @contextmanager
    def session_lock(self, wait: float) -> Iterator[None]:
        """The release lock, held for the whole command where the database has one."""
        yield

    @contextmanager
    def _holding(self, unlock: str, param: int | str) -> Iterator[None]:
        """Until the block ends, then `unlock`. After a failure in the block (SIGTERM in the
        middle of a query, say) the connection may not take another statement: then it is
        closed, which ends the lock too, and the failure goes on unchanged."""
        try:
            yield
        except BaseException:
            try:
                with self.connection.cursor() as cursor:
                    cursor.execute(unlock, [param])
            except DatabaseError:
                self.connection.close()
            raise
        with self.connection.cursor() as cursor:
            cursor.execute(unlock, [param])

    def is_lock_timeout(self, error: DatabaseError) -> bool:
        return any(code in self.lock_timeout_codes for code in _error_code(error))

    def is_deadlock(self, error: DatabaseError) -> bool:
        return any(code in self.deadlock_codes for code in _error_code(error))

    @contextmanager
    def truncating(self, name: str) -> Iterator[Attempt]:
        """Attempts at emptying table `name` at once (`emptying`): each gives up after
        `lock_timeout_ms` waiting for the table's lock, or at once where it is None (an attempt
        that does not wait queues nobody behind it), and says whether it emptied the table; any
        other error is raised."""
        raise NotImplementedError(f"{self.connection.vendor} has no TRUNCATE here")
        yield  # pragma: no cover

    def wait_for_row_locks(self, cursor: Any, seconds: int) -> None:
        """How long each statement of the current transaction waits for a locked row."""

    def commit_without_flush(self) -> None:
        """Let the current transaction's COMMIT return, and release its locks, before its log
        reaches the disk: only for a batch that comes before the transaction that records the
        logout, whose own COMMIT then flushes the log up to it and everything before it. A
        crash in between loses at most some removed sessions, and nothing is recorded."""

    def clean_up_deleted(self, table: str) -> str | None:
        """After batches, before the final transaction: drop the deleted rows from `table` and
        its indexes, where the database keeps them until asked, so that the final pass does not
        read them all again. A sentence for the summary where that could not be done."""
        return None

    def estimated_rows(self, name: str) -> int | None:
        """The database's own estimate of the rows of table `name`, where it keeps one."""
        return None

    def among(self, column: str, keys: list[Any]) -> tuple[str, list[Any]]:
        """`column` is one of `keys`."""
        return f"{column} IN ({', '.join(['%s'] * len(keys))})", list(keys)

    def delete_locked(self, table: str, key: str, keys: list[Any]) -> int:
        """Delete rows this transaction has locked, by key, without waiting for any other row."""
        among, params = self.among(key, keys)
        with self.connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE {among}", params)
            return int(max(cursor.rowcount, 0))

    @contextmanager
    def by_index(self) -> Iterator[None]:
        """Around statements that look a batch of keys up in foreign keys' indexes."""
        yield

    def check_constraints_now(self) -> None:
        """Check the transaction's deferred foreign keys now, where a refusal can be explained."""


class PostgreSQL(Database):
    name = "PostgreSQL"
    has_session_lock = True
    lock_timeout_codes = frozenset({"55P03"})  # lock_not_available
    deadlock_codes = frozenset({"40P01"})
    # pg_advisory_lock takes a bigint: the first 8 bytes of the name's hash.
    LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
    # Set for the transaction when its TRUNCATE went through.
    TRUNCATED = "django_release.truncated"
    VACUUM_LOCK_TIMEOUT_MS = 5000
    VACUUM_COST_DELAY_MS = 2  # autovacuum_vacuum_cost_delay's default

    @contextmanager
    def session_lock(self, wait: float) -> Iterator[None]:
        with self.connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{int(wait * 1000)}ms'")
            try:
                cursor.execute("SELECT pg_advisory_lock(%s)", [self.LOCK_KEY])
            except OperationalError as error:
                raise busy(self.alias, wait) from error
            finally:
                cursor.execute("RESET lock_timeout")
        with self._holding("SELECT pg_advisory_unlock(%s)", self.LOCK_KEY):
            yield

    @contextmanager
    def truncating(self, name: str) -> Iterator[Attempt]:
        table = self.quote(name)
        # On a connection of its own, whose COMMIT the release does not wait for: PostgreSQL
        # frees the table's old files inside the COMMIT, after it has let go of the table (0.1 to
        # 0.2 s for a million sessions here, seconds for ten million), and neither the site nor
        # the release needs to wait for that, only for the table to be let go and the COMMIT to
        # have gone through. Where that connection cannot be opened (the server's
        # max_connections reached), on the command's own, waiting for the COMMIT.
        try:
            apart = connections.create_connection(self.alias)
            apart.set_autocommit(False)
        except DatabaseError:
            yield lambda lock_timeout_ms: self._truncate_here(table, lock_timeout_ms)
            return
        try:
            yield lambda lock_timeout_ms: self._truncate_apart(apart, table, lock_timeout_ms)
        finally:
            apart.close()

    def _truncate_here(self, table: str, lock_timeout_ms: int | None) -> bool:
        with transaction.atomic(using=self.alias):
            return self._attempt(self.connection, table, lock_timeout_ms) is not None

    def _truncate_apart(
        self, apart: BaseDatabaseWrapper, table: str, lock_timeout_ms: int | None
    ) -> bool:
        # After an error `truncating()` closes the connection, which rolls the transaction back.
        xid = self._attempt(apart, table, lock_timeout_ms)
        if xid is None:
            apart.rollback()
            return False
        pgconn = getattr(apart.connection, "pgconn", None)
        if pgconn is None or getattr(apart, "pool", None) is not None:
            # psycopg2, or a connection pool, which would take back a connection still at work.
            apart.commit()
            return True
        pgconn.send_query(b"COMMIT")
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            # Granted once the TRUNCATE's transaction has ended, committed or not.
            cursor.execute(f"LOCK TABLE {table} IN ACCESS SHARE MODE")
            cursor.execute("SELECT pg_xact_status(%s::xid8)", [xid])
            row = cursor.fetchone()
        status = row[0] if row is not None else None
        if status != "committed":
            raise DatabaseError(
                f"its COMMIT did not go through: PostgreSQL reports transaction {xid} as {status!r}"
            )
        return True

    def _attempt(
        self, connection: BaseDatabaseWrapper, table: str, lock_timeout_ms: int | None
    ) -> str | None:
        """In `connection`'s open transaction: TRUNCATE `table` where its lock is had in time;
        the transaction's id if it was emptied. The lock is asked for inside PL/pgSQL, which
        catches its refusal: an error that reached the client would be an ERROR line in the
        server's log (on Heroku, the app's log stream) for each of the hundreds of attempts a
        busy table can take."""
        wait = "NOWAIT" if lock_timeout_ms is None else ""
        with connection.cursor() as cursor:
            if lock_timeout_ms is not None:
                cursor.execute(f"SET LOCAL lock_timeout = '{lock_timeout_ms}ms'")
            cursor.execute(
                f"DO $release$ BEGIN LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE {wait}; "
                f"TRUNCATE {table}; PERFORM set_config('{self.TRUNCATED}', 'yes', true); "
                "EXCEPTION WHEN lock_not_available THEN NULL; END $release$"
            )
            cursor.execute(
                "SELECT CASE WHEN current_setting(%s, true) = 'yes' "
                "THEN pg_current_xact_id()::text END",
                [self.TRUNCATED],
            )
            row = cursor.fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def wait_for_row_locks(self, cursor: Any, seconds: int) -> None:
        cursor.execute(f"SET LOCAL lock_timeout = '{seconds}s'")

    def commit_without_flush(self) -> None:
        # Each batch's COMMIT otherwise waits for an fsync (4 ms here, 45 ms while a big file is
        # freed), holding its sessions locked meanwhile. MariaDB's equivalent,
        # innodb_flush_log_at_trx_commit, is server-wide.
        with self.connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")

    def clean_up_deleted(self, table: str) -> str | None:
        # The final pass reads the table by its key from the start, and without this visits every
        # row the batches deleted: the whole table read from disk again, inside the transaction
        # that records the logout (4.5 s at a million rows). Autovacuum has often started on the
        # table by then: after deadlock_timeout (1 s) the server cancels it for this VACUUM,
        # which waits no longer than VACUUM_LOCK_TIMEOUT_MS for anything else holding the lock
        # (an anti-wraparound autovacuum, another VACUUM), then goes without. That lock does not
        # conflict with reads and writes of rows, so nobody waits behind it. At autovacuum's pace:
        # at full speed it rewrote and logged a million sessions' pages in 1.6 s, and a live
        # COMMIT waited 0.9 s for the disk; paced, 12.5 s, and no wait above the site's own.
        # TRUNCATE false: never the table's exclusive lock, which shortening its file would take.
        # Only the owner may; for anyone else VACUUM would log a WARNING and do nothing.
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(%s)",
                [table],
            )
            row = cursor.fetchone()
            if row is None or not row[0]:
                return None
            cursor.execute(f"SET lock_timeout = '{self.VACUUM_LOCK_TIMEOUT_MS}ms'")
            cursor.execute(f"SET vacuum_cost_delay = '{self.VACUUM_COST_DELAY_MS}ms'")
            try:
                cursor.execute(f"VACUUM (TRUNCATE false) {table}")
            except DatabaseError as error:
                if not self.is_lock_timeout(error):
                    raise
                return (
                    "The deleted rows were not vacuumed: another VACUUM or maintenance command "
                    f"held the table for {self.VACUUM_LOCK_TIMEOUT_MS / 1000:g} s, so the final "
                    "pass read them again."
                )
            finally:
                cursor.execute("RESET lock_timeout")
                cursor.execute("RESET vacuum_cost_delay")
        return None

    def estimated_rows(self, name: str) -> int | None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [self.quote(name)],
            )
            row = cursor.fetchone()
        return None if row is None else int(row[0])

    def among(self, column: str, keys: list[Any]) -> tuple[str, list[Any]]:
        # One array parameter, which psycopg sends without parsing thousands of placeholders.
        return f"{column} = ANY(%s)", [list(keys)]

    @contextmanager
    def by_index(self) -> Iterator[None]:
        """For a batch of 1,000 keys the planner expects 1,000 rows in each table that refers
        to the sessions, and would rather read a table of 100,000 login records whole, at every
        batch: ten times slower. Only for these statements, in this transaction: not for the
        database's own foreign key checks, which may have no index to use."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('enable_seqscan'), "
                "set_config('enable_seqscan', 'off', true)"
            )
            row = cursor.fetchone()
        yield  # on an error the transaction rolls back, and the setting with it
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('enable_seqscan', %s, true)", [row[0] if row else "on"]
            )

    def check_constraints_now(self) -> None:
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at COMMIT otherwise.
        with self.connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


class MariaDB(Database):
    name = "MariaDB"
    has_session_lock = True
    lock_timeout_codes = frozenset({1205})  # lock wait timeout exceeded
    deadlock_codes = frozenset({1213})

    def lock_name(self) -> str:
        """GET_LOCK names are server-wide: the lock of one database, at most 64 characters."""
        database = str(self.connection.settings_dict["NAME"])
        return f"{LOCK_NAME}:{hashlib.sha256(database.encode()).hexdigest()[:32]}"

    @contextmanager
    def session_lock(self, wait: float) -> Iterator[None]:
        name = self.lock_name()
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, %s)", [name, wait])
            if cursor.fetchone() != (1,):
                raise busy(self.alias, wait)
        with self._holding("SELECT RELEASE_LOCK(%s)", name):
            yield

    @contextmanager
    def truncating(self, name: str) -> Iterator[Attempt]:
        # InnoDB's TRUNCATE deletes the table's old file while it holds the table, and every
        # request that reads or saves a session waits that long: 52 ms for a million sessions,
        # 0.65 s for ten million (5 GB) here. Where only its name ties the table to the rest of
        # the schema, an empty copy is swapped in instead (RENAME TABLE, a few milliseconds),
        # and the old table dropped after, which no request waits for. A crash between the two
        # leaves the old table, which the next clear drops first.
        table = self.quote(name)
        fresh, old = (self.quote(spare) for spare in swap_tables(name))
        try:
            swappable = self.swappable(name)
            if swappable:
                with self.connection.cursor() as cursor:
                    cursor.execute(f"DROP TABLE IF EXISTS {fresh}, {old}")
                    cursor.execute(f"CREATE TABLE {fresh} LIKE {table}")
        except DatabaseError:  # a user who may TRUNCATE but not CREATE, say
            swappable = False
        if not swappable:
            yield lambda lock_timeout_ms: self._truncate(table)
            return
        self.emptying = "RENAME TABLE to an empty copy"
        swapped = False

        def attempt(lock_timeout_ms: int | None) -> bool:
            nonlocal swapped
            swapped = self._ddl(f"RENAME TABLE {table} NOWAIT TO {old}, {fresh} TO {table}")
            return swapped

        try:
            yield attempt
        finally:
            with self.connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {old if swapped else fresh}")

    def swappable(self, name: str) -> bool:
        """Whether table `name` can be swapped for an empty copy: an InnoDB table without
        triggers (they would stay with the old table) or foreign keys, its own (`CREATE TABLE
        ... LIKE` copies none) or any schema's that point at it (they would follow the old
        table)."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT engine = 'InnoDB' "
                "AND NOT EXISTS (SELECT 1 FROM information_schema.triggers "
                "WHERE event_object_schema = DATABASE() AND event_object_table = %s) "
                "AND NOT EXISTS (SELECT 1 FROM information_schema.referential_constraints "
                "WHERE (constraint_schema = DATABASE() AND table_name = %s) "
                "OR (unique_constraint_schema = DATABASE() AND referenced_table_name = %s)) "
                "FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = %s",
                [name, name, name, name],
            )
            return bool(cursor.fetchone() == (1,))

    def _truncate(self, table: str) -> bool:
        # NOWAIT gives up at once where the table is in use: every attempt, since a TRUNCATE's
        # WAIT takes whole seconds (WAIT 0.025 is WAIT 0).
        return self._ddl(f"TRUNCATE TABLE {table} NOWAIT")

    def _ddl(self, statement: str) -> bool:
        """A statement that takes a table's lock NOWAIT and commits by itself (DDL); whether it
        had the lock. MariaDB logs no statement's error unless asked to."""
        with self.connection.cursor() as cursor:
            try:
                cursor.execute(statement)
            except DatabaseError as error:
                if self.is_lock_timeout(error):
                    return False
                raise
        return True

    def estimated_rows(self, name: str) -> int | None:
        # InnoDB's sampled estimate: counting a million rows takes about a second.
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_rows FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = %s",
                [name],
            )
            row = cursor.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def wait_for_row_locks(self, cursor: Any, seconds: int) -> None:
        cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {seconds}")

    def delete_locked(self, table: str, key: str, keys: list[Any]) -> int:
        """MariaDB may scan the table for a short IN list and then wait for rows other
        transactions hold: there the statement gives up at once, and the rows go one key at a
        time."""
        among, params = self.among(key, keys)
        with self.connection.cursor() as cursor:
            try:
                with transaction.atomic(using=self.alias):
                    cursor.execute(
                        f"SET STATEMENT innodb_lock_wait_timeout = 0 FOR "
                        f"DELETE FROM {table} WHERE {among}",
                        params,
                    )
                    return int(max(cursor.rowcount, 0))
            except DatabaseError as error:
                if not self.is_lock_timeout(error):
                    raise
            removed = 0
            for one in keys:
                cursor.execute(f"DELETE FROM {table} WHERE {key} = %s", [one])
                removed += max(cursor.rowcount, 0)
            return removed


class MySQL(MariaDB):
    """Oracle's MySQL identifies itself as `mysql`, like MariaDB, but lacks the MariaDB syntax
    the clear relies on."""

    name = "MySQL"

    def unsupported(self) -> str | None:
        version = ".".join(str(part) for part in self.connection.mysql_version)  # type: ignore[attr-defined]
        return (
            f"Database {self.alias!r} is MySQL {version}, not MariaDB: the release clears "
            "sessions with MariaDB's syntax (TRUNCATE ... NOWAIT, SET STATEMENT ... FOR), which "
            "MySQL does not have, so every logout there would fail."
        )


def swap_tables(name: str) -> tuple[str, str]:
    """The names of the empty copy that a MariaDB clear swaps in for table `name`, and of the old
    table until it is dropped: at most 64 characters, MariaDB's limit."""
    suffixes = ("__release_new", "__release_old")
    if len(name) + len(suffixes[0]) > 64:
        name = name[:40] + "_" + hashlib.sha256(name.encode()).hexdigest()[:10]
    return name + suffixes[0], name + suffixes[1]


def database(alias: str) -> Database:
    """The vendor class of database `alias`."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        return PostgreSQL(alias)
    if connection.vendor == "mysql":
        return MariaDB(alias) if connection.mysql_is_mariadb else MySQL(alias)  # type: ignore[attr-defined]
    return Database(alias)


def busy(alias: str, wait: float) -> ReleaseError:
    return ReleaseError(
        f"Another release or force_logout has held the release lock on database {alias!r} "
        f"for over {wait:.0f} s. Let it finish (`heroku ps` shows it), then run the release "
        "again."
    )
