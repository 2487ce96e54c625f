"""Emptying a session table fast, without stalling the requests that read and save sessions.

- Where the database can (PostgreSQL, MariaDB): TRUNCATE, which swaps the table's files in a few
  milliseconds. It needs a lock that waits for every open transaction that read the table, and
  while it waits it queues every new reader behind it. So the first attempts do not wait at all
  (NOWAIT) and queue nobody: a few milliseconds apart, one of them finds the table between two
  requests. Where none does, the next attempts wait up to LOCK_TIMEOUT_MS each (PostgreSQL; a
  MariaDB TRUNCATE waits whole seconds or not at all). On MariaDB it commits by itself (DDL).
- When the table stays busy, or cannot be truncated, batches of rows by key order, each committed
  on its own, skipping rows another transaction has locked rather than waiting for them. Where
  foreign keys point at the table (`release.clearing.dependents`), batches from the start, each
  with what refers to its rows. Then, on PostgreSQL, a VACUUM of the deleted rows, which the
  final pass would otherwise read all over again.
- SQLite, and anything else: one DELETE, which SQLite does quickly.

What the final transaction then finds (sessions saved meanwhile) goes in `remove_remaining()`.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import Model

from release.clearing import dependents as rules
from release.clearing.base import Cleared, Progress
from release.stopwatch import Stopwatch
from release.text import counted, one_line
from release.vendors import database

# Attempts at TRUNCATE that do not wait for the table's lock, one right after another for this
# long: requests hold the table for a statement, or for their transaction under ATOMIC_REQUESTS,
# and an attempt that finds it between them takes it without making anybody wait. The gaps last
# about a millisecond on a busy site, so the attempts do not pause: beside the benchmark's live
# load (250 session operations a second, a fifth in transactions held 10-50 ms), 80 tries each,
# attempts 2-6 ms apart took the table after a median 78 ms (p90 327 ms, at most 482 ms), back to
# back after 41 ms (p90 216 ms, at most 395 ms). Each costs the database a refused lock request.
FREE_SECONDS = 1.0
# Then attempts that wait for the table (where the database can): while one waits, every request
# that reads or saves a session waits behind it, so each gives up after this long...
LOCK_TIMEOUT_MS = 25
# ... and is tried again after a longer pause. A site whose requests overlap without a gap lets
# one of them through once the transactions open at its start have ended; a long transaction
# keeps the table busy through all of them (about 5 s more), and the rows go in batches instead.
WAITING_ATTEMPTS = 80
WAITING_PAUSE_S = (0.02, 0.08)
# Above this many rows (by the database's own estimate) the summary reports the estimate instead
# of counting: an exact count of millions of rows costs more than the TRUNCATE.
EXACT_COUNT_UP_TO = 200_000
# Passes over the table in the final transaction, each removing what the one before missed: a
# million sessions with login records beside a busy site took 250 passes of 80 ms, each finding
# about ten sessions saved during the one before, while the final transaction held every row it
# had removed.
FINAL_PASSES = 3
# A remaining row another transaction holds is waited for at most this long per attempt.
ROW_LOCK_TIMEOUT_S = 1
ROW_LOCK_ATTEMPTS = 5
# A batch that deadlocks with a live request (which locked a row that refers to a session, then
# the session) is rolled back by the database and tried again this many times.
DEADLOCK_ATTEMPTS = 5


class SessionTable:
    """The table of a session model on one database, and the rows that refer to it."""

    def __init__(self, alias: str, model: type[Model]) -> None:
        self.alias = alias
        self.model = model
        self.db = database(alias)
        self.found = rules.dependents(model)
        key = model._meta.pk.column
        assert key is not None
        self.table = self.db.quote(model._meta.db_table)
        self.key = self.db.quote(key)

    @property
    def in_batches(self) -> bool:
        """Whether the rows can go in batches of their own transactions: on a database with a
        session lock, outside a transaction."""
        return self.db.has_session_lock and not self.db.connection.in_atomic_block

    def stop_if_refused(self) -> None:
        """Raise the release's own refusal where rows that refer to the sessions would stop it
        (PROTECT, RESTRICT, a constraint under DO_NOTHING), before anything is removed."""
        if self.found.acts:
            rules.stop_if_refused(self.alias, self.found, None)

    def remove_all(self, progress: Progress) -> Cleared:
        """Every row, timed in parts (`Cleared.parts`): `count` (and the check for rows that
        would refuse), then `prepare` (PostgreSQL's second connection, MariaDB's empty copy),
        `wait` (the attempts that did not get the table), `truncate` (from the attempt that got
        it to the table let go, its COMMIT through) and `drop` (MariaDB's old table), or, where
        the rows go in batches, `batches` and `vacuum`."""
        found = self.found
        watch = Stopwatch()
        self.stop_if_refused()
        if not self.in_batches:
            return self._remove_at_once()
        total, estimated = self._row_count()
        watch.lap("count")
        if found.acts:
            return self._delete_in_batches(lambda removed: progress(removed, total), watch).noted(
                f"{found.describe()}, so rows were deleted in batches of {found.batch_rows:,}, "
                "each with what refers to it.",
                first=True,
            )
        problem = self._truncate(watch)
        if problem is None:
            progress(total, total)
            rows = counted(total, "row")
            how_many = f"about {rows}, {self.db.name}'s estimate" if estimated else rows
            emptied = f"Emptied the table with {self.db.emptying} ({how_many})."
            return Cleared(total, (emptied,)).timed(watch)
        watch.lap("wait")
        return self._delete_in_batches(lambda removed: progress(removed, total), watch).noted(
            f"{problem}, so rows were deleted in batches of {rules.BATCH_ROWS:,}.", first=True
        )

    def remove_remaining(self, *, skip_locked: bool) -> Cleared:
        """Inside the final transaction: the rows saved since `remove_all()`, with what refers to
        them.

        With `skip_locked` (the session guard refuses what stays) rows another transaction holds
        are left; without it they are waited for, a bounded time, and the release fails if they
        stay locked.
        """
        if not self.db.has_session_lock:
            self.stop_if_refused()
            return self._remove_at_once()
        if not skip_locked:
            return self._delete_waiting()
        done: rules.Done = Counter()
        removed = 0
        # Passes in key order, by the primary key's index, until one finds nothing to remove, or
        # FINAL_PASSES of them: a pass misses the sessions saved behind it meanwhile, and the
        # next one finds them, but a site that keeps saving sessions would keep the passes
        # going. The rows that a batch clear deleted are still in the table's pages until
        # VACUUM, and a scan of the table would read them all again for each batch.
        for _pass in range(FINAL_PASSES):
            found, last = 0, ""
            while True:
                keys, count = self._remove_next_batch(last, done, final=True)
                if not keys:
                    break
                found += count
                last = keys[-1]
            removed += found
            if not found:
                break
        left = self.model._base_manager.using(self.alias).count()
        cleared = Cleared(removed, rules.effects(done))
        if left:
            cleared = cleared.noted(
                f"{counted(left, 'session')} locked by other transactions or saved meanwhile "
                f"{'was' if left == 1 else 'were'} left; the session guard refuses "
                f"{'it' if left == 1 else 'them'} at the next request."
            )
        return cleared

    def _remove_at_once(self) -> Cleared:
        """In the caller's transaction: SQLite's one DELETE, after what refers to the rows (by
        `fk IS NOT NULL` where a constraint holds); elsewhere every row locked first, so that no
        session saved meanwhile goes without what refers to it."""
        found = self.found
        done: rules.Done = Counter()
        with (
            rules.explaining_refusals(self.alias, found, None),
            transaction.atomic(using=self.alias),
        ):
            if self.db.has_session_lock and found.acts:
                removed = self._delete_all_locked(done)
            else:
                if found.acts:
                    rules.apply_rules(self.alias, found, None, done)
                with self.db.connection.cursor() as cursor:
                    cursor.execute(f"DELETE FROM {self.table}")
                    removed = max(cursor.rowcount, 0)
        return Cleared(removed, rules.effects(done))

    def _delete_all_locked(self, done: rules.Done) -> int:
        with self.db.connection.cursor() as cursor:
            cursor.execute(f"SELECT {self.key} FROM {self.table} ORDER BY {self.key} FOR UPDATE")
            keys = [row[0] for row in cursor.fetchall()]
        rows = self.found.batch_rows
        return sum(
            self._remove_locked(keys[start : start + rows], done)
            for start in range(0, len(keys), rows)
        )

    def _remove_locked(self, keys: list[Any], done: rules.Done) -> int:
        """Inside a transaction that holds `keys` locked: what refers to them, then them."""
        if self.found.acts:
            with self.db.by_index():
                rules.stop_if_refused(self.alias, self.found, keys)
                rules.apply_rules(self.alias, self.found, keys, done)
        return self.db.delete_locked(self.table, self.key, keys)

    def _row_count(self) -> tuple[int, bool]:
        """How many rows the table has, and whether that is an estimate."""
        estimate = self.db.estimated_rows(self.model._meta.db_table)
        if estimate is not None and estimate > EXACT_COUNT_UP_TO:
            return estimate, True
        return self.model._base_manager.using(self.alias).count(), False

    def _truncate(self, watch: Stopwatch) -> str | None:
        """TRUNCATE the table, or swap in an empty copy (`Database.truncating`); None when
        done, else why it could not be."""
        attempts = 0
        emptied = False
        try:
            with self.db.truncating(self.model._meta.db_table) as attempt:
                watch.lap("prepare")
                free_until = time.monotonic() + FREE_SECONDS
                while not emptied and time.monotonic() < free_until:
                    attempts += 1
                    started = time.monotonic()
                    emptied = attempt(None)
                for _ in range(0 if emptied else WAITING_ATTEMPTS):
                    time.sleep(random.uniform(*WAITING_PAUSE_S))
                    attempts += 1
                    started = time.monotonic()
                    if emptied := attempt(LOCK_TIMEOUT_MS):
                        break
                if emptied:
                    watch.lap("wait", at=started)
                    watch.lap("truncate")
        except DatabaseError as error:
            return f"{self.db.emptying} was refused ({one_line(error)})"
        if emptied:
            watch.lap("drop")
            return None
        return (
            f"Other transactions kept the table busy through {attempts:,} attempts at "
            f"{self.db.emptying}"
        )

    def _remove_next_batch(
        self, last: Any, done: rules.Done, *, final: bool
    ) -> tuple[list[Any], int]:
        """In a savepoint of the final transaction (`final`), whose foreign keys are checked at
        each batch, where a refusal can still be explained; else in a transaction of its own
        before it, which commits without waiting for the disk. The next batch of keys after
        `last`, locked, and what refers to them, then them; the keys and how many rows went."""
        keys: list[Any] = []
        with (
            rules.explaining_refusals(self.alias, self.found, keys),
            transaction.atomic(using=self.alias),
        ):
            if not final:
                self.db.commit_without_flush()
            keys.extend(self._lock_next_batch(last))
            if not keys:
                return keys, 0
            count = self._remove_locked(keys, done)
            if final and self.found.acts:
                self.db.check_constraints_now()
        return keys, count

    def _lock_next_batch(self, last: Any) -> list[Any]:
        """The next batch of keys after `last`, locked, skipping rows another transaction
        holds."""
        with self.db.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {self.key} FROM {self.table} WHERE {self.key} > %s ORDER BY {self.key} "
                f"LIMIT {self.found.batch_rows} FOR UPDATE SKIP LOCKED",
                [last],
            )
            return [row[0] for row in cursor.fetchall()]

    def _delete_in_batches(self, progress: Callable[[int], None], watch: Stopwatch) -> Cleared:
        removed = 0
        last = ""
        done: rules.Done = Counter()
        deadlocks = 0
        while True:
            batch: rules.Done = Counter()
            try:
                keys, count = self._remove_next_batch(last, batch, final=False)
            except DatabaseError as error:
                deadlocks += 1
                if not self.db.is_deadlock(error) or deadlocks >= DEADLOCK_ATTEMPTS:
                    raise
                continue
            if not keys:
                break
            deadlocks = 0
            removed += count
            done.update(batch)
            last = keys[-1]
            progress(removed)
        watch.lap("batches")
        not_cleaned_up = self.db.clean_up_deleted(self.table)
        watch.lap("vacuum")
        cleared = Cleared(removed, rules.effects(done)).timed(watch)
        return cleared.noted(not_cleaned_up) if not_cleaned_up else cleared

    def _delete_waiting(self) -> Cleared:
        for attempt in range(ROW_LOCK_ATTEMPTS):
            try:
                with (
                    rules.explaining_refusals(self.alias, self.found, None),
                    transaction.atomic(using=self.alias),
                    self.db.connection.cursor() as cursor,
                ):
                    self.db.wait_for_row_locks(cursor, ROW_LOCK_TIMEOUT_S)
                    if self.found.acts:
                        done: rules.Done = Counter()
                        removed = self._delete_all_locked(done)
                        self.db.check_constraints_now()
                        return Cleared(removed, rules.effects(done))
                    cursor.execute(f"DELETE FROM {self.table}")
                    return Cleared(int(max(cursor.rowcount, 0)))
            except DatabaseError as error:
                if not self.db.is_lock_timeout(error) or attempt == ROW_LOCK_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
