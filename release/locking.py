"""One release or forced logout at a time per database.

On PostgreSQL and MariaDB a session-level lock (an advisory lock, GET_LOCK) is held for the whole
command, across the batches a big clear commits one by one; it goes with the connection if the
process dies. SQLite has no such lock: there the whole command is one transaction whose first
write (to the lock row) takes the database's write lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import IntegrityError, transaction
from django.utils import timezone

from release.models import ReleaseLock
from release.vendors import database

LOCK_ROW = 1
# How long a command waits for another release or force_logout to finish: a clear of millions
# of sessions takes minutes; Heroku allows the release phase an hour.
LOCK_WAIT_SECONDS = 600.0


def has_session_lock(alias: str) -> bool:
    return database(alias).has_session_lock


@contextmanager
def one_at_a_time(alias: str, holder: str, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold the release lock of `alias`: its session-level lock where it has one, else a
    transaction whose first write is to the lock row."""
    db = database(alias)
    if db.has_session_lock:
        with db.session_lock(wait):
            yield
        return
    with transaction.atomic(using=alias):
        claim_lock_row(alias, holder)
        yield


def claim_lock_row(alias: str, holder: str) -> None:
    """Write to the lock row first in the current transaction on `alias`.

    On SQLite this takes the database's write lock, so a second command waits here and then
    reads what the first one committed. Elsewhere the row names the holder.
    """
    if not transaction.get_connection(alias).in_atomic_block:
        raise RuntimeError("claim_lock_row() must run inside transaction.atomic().")
    rows = ReleaseLock.objects.using(alias).filter(pk=LOCK_ROW)
    if rows.update(held_since=timezone.now(), holder=holder[:255]):
        return
    # The migration creates the row; a flushed database (tests, `flush`) has lost it. A second
    # command creating it at the same moment waits on the unique key, then fails here and takes
    # the lock of the row the first one made.
    try:
        with transaction.atomic(using=alias):
            ReleaseLock.objects.using(alias).create(pk=LOCK_ROW)
    except IntegrityError:
        pass
    rows.update(held_since=timezone.now(), holder=holder[:255])
