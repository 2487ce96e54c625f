"""SIGTERM, which Heroku sends to a dyno it stops (SIGKILL follows 30 s later)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from release.exceptions import Terminated

logger = logging.getLogger("release")

STOPPED = "Stopped by SIGTERM before the logout was recorded."


class _Stop:
    """A SIGTERM that came while psycopg waited for PostgreSQL, to be raised once it is back."""

    pending = False


def _busy(connection: BaseDatabaseWrapper) -> Any | None:
    """psycopg 3's connection if it is waiting for PostgreSQL's answer, else None.

    psycopg waits in Python, so an exception raised there would leave the connection mid-answer
    ("can't change 'autocommit' now: connection in transaction status ACTIVE"), and the
    rollback that follows fails instead of reporting the stop. Other drivers wait in C, and a
    signal's handler runs only after they are back."""
    pgconn = getattr(connection.connection, "pgconn", None)
    if pgconn is None:
        return None
    from psycopg import pq

    active = pgconn.transaction_status == pq.TransactionStatus.ACTIVE
    return connection.connection if active else None


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    busy = [raw for c in connections.all(initialized_only=True) if (raw := _busy(c)) is not None]
    if not busy:
        raise Terminated(STOPPED)
    _Stop.pending = True
    for raw in busy:
        try:
            raw.cancel_safe(timeout=5.0)
        except Exception as error:  # the query ends on its own; the stop is raised then
            logger.warning("Could not cancel the running query after SIGTERM: %s", error)


def _raise_when_back(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    if _Stop.pending:
        raise Terminated(STOPPED)
    try:
        result = execute(sql, params, many, context)
    except Exception as error:
        if _Stop.pending:
            raise Terminated(STOPPED) from error
        raise
    if _Stop.pending:
        raise Terminated(STOPPED)
    return result


@contextmanager
def stopping_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into an exception, so that transactions roll back and the exit is clean.

    A query under way is cancelled and the exception raised as it returns; a COMMIT under way
    finishes, and the exception comes with the next query."""
    _Stop.pending = False
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with ExitStack() as wrappers:
            for connection in connections.all():
                wrappers.enter_context(connection.execute_wrapper(_raise_when_back))
            yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _Stop.pending = False
