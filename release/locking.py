from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from release.models import ReleaseLock

LOCK_ROW = 1


def hold_release_lock(alias: str, holder: str) -> None:
    """Wait for and take the release lock until the current transaction on `alias` ends.

    Updating the lock row takes its row lock on PostgreSQL and MariaDB and the database write
    lock on SQLite, so a second release or force_logout waits here and then reads what the first
    one committed: one logout, one record.
    """
    if not transaction.get_connection(alias).in_atomic_block:
        raise RuntimeError("hold_release_lock() must run inside transaction.atomic().")
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
