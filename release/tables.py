"""Emptying a session table fast, without stalling the requests that read and save sessions.

- PostgreSQL: TRUNCATE, which swaps the table's files in a few milliseconds. It needs a lock
  that waits for every open transaction that read the table, and while it waits it queues every
  new reader behind it, so each attempt gives up after LOCK_TIMEOUT_MS and is retried.
- MariaDB: TRUNCATE ... NOWAIT likewise. It commits by itself (it is DDL), so it runs before the
  transaction that records the logout.
- When the table stays busy, or cannot be truncated (a foreign key points at it), batches of
  BATCH_ROWS rows by key order, each committed on its own, skipping rows another transaction
  has locked rather than waiting for them.
- SQLite, and anything else: one DELETE, which SQLite does quickly.

What the final transaction then finds (sessions saved meanwhile) goes in `remove_remaining()`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import DatabaseError, connections, transaction
from django.db.models import Model

from release.text import counted, one_line

BATCH_ROWS = 5_000
LOCK_TIMEOUT_MS = 50
# Attempts at TRUNCATE, a short random pause apart: live requests hold the table only for the
# moment of a statement, so one of the first few attempts finds it free; a long transaction
# keeps it busy through all of them (about 4 s), and the rows go in batches instead.
TRUNCATE_ATTEMPTS = 40
TRUNCATE_PAUSE_S = (0.02, 0.08)
# Above this many rows (by PostgreSQL's own estimate) the summary reports the estimate instead
# of counting: an exact count of millions of rows costs more than the TRUNCATE.
EXACT_COUNT_UP_TO = 200_000
# A remaining row another transaction holds is waited for at most this long per attempt.
ROW_LOCK_TIMEOUT_S = 1
ROW_LOCK_ATTEMPTS = 5

# Called with the number of sessions removed so far and, where known, how many there were.
Progress = Callable[[int, int | None], None]


def no_progress(removed: int, total: int | None) -> None:
    """A Progress for callers that do not report it."""


@dataclass
class Removal:
    removed: int
    notes: list[str] = field(default_factory=list)


def _quoted(alias: str, model: type[Model]) -> tuple[str, str]:
    ops = connections[alias].ops
    key = model._meta.pk.column
    assert key is not None
    return ops.quote_name(model._meta.db_table), ops.quote_name(key)


def _is_lock_timeout(error: DatabaseError) -> bool:
    cause = error.__cause__
    if getattr(cause, "sqlstate", None) == "55P03":  # PostgreSQL lock_not_available
        return True
    args: tuple[object, ...] = getattr(cause, "args", ())
    return bool(args) and args[0] == 1205  # MariaDB/MySQL lock wait timeout


def remove_all(alias: str, model: type[Model], progress: Progress) -> Removal:
    connection = connections[alias]
    table, _ = _quoted(alias, model)
    if connection.vendor not in {"postgresql", "mysql"} or connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table}")
            return Removal(max(cursor.rowcount, 0))
    total, estimated = _row_count(alias, model)
    problem = _truncate(alias, table)
    if problem is None:
        progress(total, total)
        rows = counted(total, "row")
        how_many = f"about {rows}, PostgreSQL's estimate" if estimated else rows
        return Removal(total, [f"Emptied the table with TRUNCATE ({how_many})."])
    removal = _delete_in_batches(alias, model, lambda removed: progress(removed, total))
    removal.notes.insert(0, f"{problem}, so rows were deleted in batches of {BATCH_ROWS:,}.")
    return removal


def _row_count(alias: str, model: type[Model]) -> tuple[int, bool]:
    """How many rows the table has, and whether that is an estimate."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(model._meta.db_table)],
            )
            row = cursor.fetchone()
        if row is not None and row[0] > EXACT_COUNT_UP_TO:
            return int(row[0]), True
    return model._base_manager.using(alias).count(), False


def _truncate(alias: str, table: str) -> str | None:
    """TRUNCATE the table; None when done, else why it could not be."""
    connection = connections[alias]
    for _ in range(TRUNCATE_ATTEMPTS):
        try:
            with transaction.atomic(using=alias), connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
                    cursor.execute(f"TRUNCATE {table}")
                else:
                    cursor.execute(f"TRUNCATE TABLE {table} NOWAIT")
            return None
        except DatabaseError as error:
            if not _is_lock_timeout(error):
                return f"TRUNCATE was refused ({one_line(error)})"
        time.sleep(random.uniform(*TRUNCATE_PAUSE_S))
    return (
        f"Other transactions kept the table busy through {TRUNCATE_ATTEMPTS} attempts "
        "to TRUNCATE it"
    )


def _delete_in_batches(alias: str, model: type[Model], progress: Callable[[int], None]) -> Removal:
    connection = connections[alias]
    table, key = _quoted(alias, model)
    removed = 0
    last = ""
    while True:
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {key} FROM {table} WHERE {key} > %s ORDER BY {key} "
                f"LIMIT {BATCH_ROWS} FOR UPDATE SKIP LOCKED",
                [last],
            )
            keys = [row[0] for row in cursor.fetchall()]
            if not keys:
                break
            removed += _delete_keys(alias, table, key, keys)
        last = keys[-1]
        progress(removed)
    return Removal(removed)


def _delete_keys(alias: str, table: str, key: str, keys: list[str]) -> int:
    """Delete rows this transaction has locked, by key, without waiting for any other row.

    MariaDB may scan the table for a short IN list and then wait for rows other transactions
    hold; there the statement gives up at once, and the rows go one key at a time.
    """
    connection = connections[alias]
    placeholders = ", ".join(["%s"] * len(keys))
    in_list = f"DELETE FROM {table} WHERE {key} IN ({placeholders})"
    with connection.cursor() as cursor:
        if connection.vendor != "mysql":
            cursor.execute(in_list, keys)
            return int(max(cursor.rowcount, 0))
        try:
            with transaction.atomic(using=alias):
                cursor.execute(f"SET STATEMENT innodb_lock_wait_timeout = 0 FOR {in_list}", keys)
                return int(max(cursor.rowcount, 0))
        except DatabaseError as error:
            if not _is_lock_timeout(error):
                raise
        removed = 0
        for one in keys:
            cursor.execute(f"DELETE FROM {table} WHERE {key} = %s", [one])
            removed += max(cursor.rowcount, 0)
        return removed


def remove_remaining(alias: str, model: type[Model], *, skip_locked: bool) -> Removal:
    """Inside the final transaction: the rows saved since `remove_all()`.

    With `skip_locked` (the session guard refuses what stays) rows another transaction holds
    are left; without it they are waited for, a bounded time, and the release fails if they
    stay locked.
    """
    connection = connections[alias]
    table, key = _quoted(alias, model)
    if connection.vendor not in {"postgresql", "mysql"}:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table}")
            return Removal(max(cursor.rowcount, 0))
    removed = 0
    with connection.cursor() as cursor:
        if skip_locked:
            while True:
                cursor.execute(
                    f"SELECT {key} FROM {table} LIMIT {BATCH_ROWS} FOR UPDATE SKIP LOCKED"
                )
                keys = [row[0] for row in cursor.fetchall()]
                if not keys:
                    break
                removed += _delete_keys(alias, table, key, keys)
            left = model._base_manager.using(alias).count()
            notes = (
                [
                    f"{counted(left, 'session')} locked by other transactions "
                    f"{'was' if left == 1 else 'were'} left; the session guard refuses "
                    f"{'it' if left == 1 else 'them'} at the next request."
                ]
                if left
                else []
            )
            return Removal(removed, notes)
        return Removal(_delete_waiting(alias, table))


def _delete_waiting(alias: str, table: str) -> int:
    connection = connections[alias]
    for attempt in range(ROW_LOCK_ATTEMPTS):
        try:
            with transaction.atomic(using=alias), connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute(f"SET LOCAL lock_timeout = '{ROW_LOCK_TIMEOUT_S}s'")
                else:
                    cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {ROW_LOCK_TIMEOUT_S}")
                cursor.execute(f"DELETE FROM {table}")
                return int(max(cursor.rowcount, 0))
        except DatabaseError as error:
            if not _is_lock_timeout(error) or attempt == ROW_LOCK_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
