"""One release or forced logout at a time per database.

On PostgreSQL and MariaDB a session-level lock (an advisory lock, GET_LOCK) is held for the whole
command, across the batches a big clear commits one by one; it goes with the connection if the
process dies. SQLite has no such lock: there the whole command is one transaction whose first
write (to the lock row) takes the database's write lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import IntegrityError, OperationalError, connections, transaction
from django.utils import timezone

from release.exceptions import ReleaseError
from release.models import ReleaseLock

LOCK_NAME = "django-release-logout"
# pg_advisory_lock takes a bigint: the first 8 bytes of the name's hash.
PG_LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
LOCK_ROW = 1
# How long a command waits for another release or force_logout to finish: a clear of millions
# of sessions takes minutes; Heroku allows the release phase an hour.
LOCK_WAIT_SECONDS = 600.0


def has_session_lock(alias: str) -> bool:
    return connections[alias].vendor in {"postgresql", "mysql"}


@contextmanager
def release_lock(alias: str, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold the session-level release lock of `alias` (where the database has one)."""
    vendor = connections[alias].vendor
    if vendor not in {"postgresql", "mysql"}:
        yield
        return
    with connections[alias].cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(f"SET lock_timeout = '{int(wait * 1000)}ms'")
            try:
                cursor.execute("SELECT pg_advisory_lock(%s)", [PG_LOCK_KEY])
            except OperationalError as error:
                raise _busy(alias, wait) from error
            finally:
                cursor.execute("RESET lock_timeout")
            unlock: tuple[str, int | str] = "SELECT pg_advisory_unlock(%s)", PG_LOCK_KEY
        else:
            name = mysql_lock_name(alias)
            cursor.execute("SELECT GET_LOCK(%s, %s)", [name, wait])
            if cursor.fetchone() != (1,):
                raise _busy(alias, wait)
            unlock = "SELECT RELEASE_LOCK(%s)", name
    try:
        yield
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute(unlock[0], [unlock[1]])


def mysql_lock_name(alias: str) -> str:
    """GET_LOCK names are server-wide: the lock of one database, at most 64 characters."""
    database = str(connections[alias].settings_dict["NAME"])
    return f"{LOCK_NAME}:{hashlib.sha256(database.encode()).hexdigest()[:32]}"


def _busy(alias: str, wait: float) -> ReleaseError:
    return ReleaseError(
        f"Another release or force_logout has held the release lock on database {alias!r} "
        f"for over {wait:.0f} s. Let it finish (`heroku ps` shows it), then run the release "
        "again."
    )


def hold_release_lock(alias: str, holder: str) -> None:
    """Write to the lock row first in the current transaction on `alias`.

    On SQLite this takes the database's write lock, so a second command waits here and then
    reads what the first one committed. Elsewhere the row names the holder.
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
