"""The session guard: what a process accepts, and what it writes into the sessions it saves.

Every logout has an epoch: its time in seconds since 1970, made greater than every epoch the
database has recorded, so that no epoch is ever given twice, not even on a database restored
from a backup. A process reads, once, from the database that `router.db_for_write` names:

- `newest`: the newest logout epoch. Sessions from before it are refused.
- `released`: the newest epoch there was when a release with this process's marker values last
  ran its release step (0 when none did). Sessions written by processes whose marker values were
  released earlier than that are refused: the old release, still serving during the release
  phase and preboot, even where one of its dynos restarted after the logout.

Together they are the process's `Stamp`. Every session a process saves carries its stamp: in the
session key (40 characters: the two epochs in base 36, then 26 random ones) for the engines that
look sessions up by key, and inside the signed data for signed cookies. A process accepts a
session whose stamp is at least its own in both parts, so nobody is refused a session their
process has just made. A session that a process with another stamp writes to gets that
process's stamp (its key is cycled), so the new release refuses what the old one touched.

A process reads its stamp when it starts serving: when its WSGI application builds the session
middleware (which asks `release.sessions` for its SessionStore), else on the first session it
loads or saves. ASGI servers such as uvicorn build the application inside their event loop,
where no query can run, so there each worker reads it at its first session: an old release's
worker that first loads one after a logout enforces that logout, as a new process would, and
its sessions are refused by the new release all the same. A process never reads its stamp
again: an old release that learned the new epoch would stamp its sessions with it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from django.db import DatabaseError, connections, router, transaction
from django.utils.crypto import get_random_string

from release.decision.markers import current_markers
from release.models import Logout, ReleaseEpoch

EPOCH_DIGITS = 7  # base 36: seconds since 1970 up to the year 4439
KEY_LENGTH = 40  # AbstractBaseSession.session_key's max_length; Django's own keys have 32
KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"  # Django's VALID_KEY_CHARS
RANDOM_LENGTH = KEY_LENGTH - 2 * EPOCH_DIGITS  # 26 characters: 134 bits


@dataclass(frozen=True)
class Stamp:
    released: int
    newest: int

    def accepts(self, other: Stamp) -> bool:
        return other.released >= self.released and other.newest >= self.newest

    @property
    def is_blank(self) -> bool:
        """Nothing to enforce: no logout yet. Blank stamps are not written anywhere."""
        return not (self.released or self.newest)

    def key_prefix(self) -> str:
        return _base36(self.released) + _base36(self.newest)

    def new_key(self) -> str:
        return self.key_prefix() + get_random_string(RANDOM_LENGTH, KEY_CHARS)

    def as_text(self) -> str:
        return f"{self.released}.{self.newest}"


BLANK = Stamp(0, 0)


def _base36(number: int) -> str:
    digits = ""
    for _ in range(EPOCH_DIGITS):
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    if number:
        raise ValueError("An epoch does not fit in the session key.")
    return digits


def stamp_of_key(session_key: str | None) -> Stamp:
    """The stamp a session key carries; blank for keys the guard did not make."""
    if session_key is None or len(session_key) != KEY_LENGTH:
        return BLANK
    try:
        return Stamp(int(session_key[:EPOCH_DIGITS], 36), int(session_key[EPOCH_DIGITS:14], 36))
    except ValueError:
        return BLANK


def stamp_from_text(value: object) -> Stamp:
    """The stamp signed into a cookie's data; blank for anything else."""
    if not isinstance(value, str):
        return BLANK
    released, _, newest = value.partition(".")
    if not (released.isdigit() and newest.isdigit()):
        return BLANK
    return Stamp(int(released), int(newest))


def read_stamp() -> Stamp | None:
    """This process's stamp, from the database; None where it cannot be read yet (the app's
    tables do not exist, or a test case forbids queries), which enforces nothing."""
    alias = router.db_for_write(Logout)
    connection = connections[alias]
    quote = connection.ops.quote_name
    sql = (
        f"SELECT (SELECT MAX({quote('epoch')}) FROM {quote(Logout._meta.db_table)}), "
        f"(SELECT {quote('epoch')} FROM {quote(ReleaseEpoch._meta.db_table)} "
        f"WHERE {quote('digest')} = %s)"
    )
    digest = current_markers().digest
    was_connected = connection.connection is not None
    try:
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(sql, [digest])
            newest, released = cursor.fetchone()
        if not was_connected:
            # Read as a server starts, perhaps before it forks its workers: leave no
            # connection behind for them to share.
            connection.close()
    except AssertionError as error:
        if type(error).__name__ == "DatabaseOperationForbidden":  # SimpleTestCase
            return None
        raise
    except RuntimeError as error:
        # pytest-django's blocker: a SimpleTestCase, or a test without the `db` fixture.
        if str(error).startswith("Database access not allowed"):
            return None
        raise
    except DatabaseError:
        if Logout._meta.db_table not in connection.introspection.table_names():
            return None  # not migrated yet: no logout has happened here
        raise
    return Stamp(released=released or 0, newest=newest or 0)


_lock = threading.Lock()
_stamp: Stamp | None = None


def process_stamp() -> Stamp:
    """`read_stamp()`, once per process (until it can be read, it enforces nothing)."""
    global _stamp
    if _stamp is None:
        with _lock:
            if _stamp is None:
                _stamp = read_stamp()
                if _stamp is None:
                    return BLANK
    return _stamp


def read_on_start() -> None:
    """Read the stamp now, as the server builds its application, where a query may run here
    (not inside an event loop: there the first session reads it, off the loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        process_stamp()


def known_stamp() -> Stamp | None:
    """The process's stamp if it has been read, without reading it."""
    return _stamp


def forget_process_stamp() -> None:
    """Make the next session read the stamp again: a new process, as tests play it."""
    global _stamp
    with _lock:
        _stamp = None
