from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from release.exceptions import ReleaseError
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
    if not rows.update(held_since=timezone.now(), holder=holder[:255]):
        raise ReleaseError(
            "The release lock row is missing from the release_releaselock table. "
            "Run `python manage.py migrate release` to restore it."
        )
