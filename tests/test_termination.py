"""SIGTERM in the middle of the work: the exception comes where the database connection can
still roll back, so the report says the release was stopped, not that the database failed."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.utils import timezone

from release.exceptions import Terminated
from release.management.termination import STOPPED, stopping_on_sigterm
from tests.conftest import vendor

only_postgresql = pytest.mark.skipif(
    vendor() != "postgresql", reason="psycopg waits for PostgreSQL's answer in Python"
)


@contextmanager
def sigterm_in(seconds: float) -> Iterator[None]:
    timer = threading.Timer(seconds, os.kill, [os.getpid(), signal.SIGTERM])
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def running_sleeps() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE query LIKE 'SELECT pg_sleep(30)%%' AND state = 'active'"
        )
        (count,) = cursor.fetchone()
    return int(count)


def save_then_sleep() -> None:
    with stopping_on_sigterm(), transaction.atomic(), connection.cursor() as cursor:
        Session.objects.create(session_key="x" * 32, session_data="", expire_date=timezone.now())
        cursor.execute("SELECT pg_sleep(30)")


@only_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_query_under_way_is_cancelled_and_the_stop_reported() -> None:
    started = time.monotonic()
    with pytest.raises(Terminated, match=STOPPED), sigterm_in(0.3):
        save_then_sleep()

    assert time.monotonic() - started < 10
    assert running_sleeps() == 0
    assert not Session.objects.exists(), "the transaction rolled back"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@only_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_stop_that_came_outside_django_is_raised_before_the_next_query() -> None:
    with stopping_on_sigterm():
        raw = connection.cursor().cursor.connection  # psycopg's own, which Django does not wrap
        with sigterm_in(0.3), pytest.raises(Exception, match="canceling statement"):
            raw.execute("SELECT pg_sleep(30)")
        with pytest.raises(Terminated, match=STOPPED):
            Session.objects.count()

    assert Session.objects.count() == 0, "after the block, queries run again"


def query_then_stop() -> None:
    with stopping_on_sigterm():
        Session.objects.count()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        pytest.fail("SIGTERM was not raised")


@pytest.mark.django_db(transaction=True)
def test_a_stop_between_queries_is_raised_at_once() -> None:
    with pytest.raises(Terminated, match=STOPPED):
        query_then_stop()

    assert Session.objects.count() == 0


def sleep_a_second() -> None:
    with stopping_on_sigterm(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(1)")


@only_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_query_that_cannot_be_cancelled_ends_then_the_stop_is_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import psycopg

    def refused(self: psycopg.Connection[Any], *, timeout: float = 30.0) -> None:
        raise psycopg.OperationalError("connection to server failed")

    monkeypatch.setattr(psycopg.Connection, "cancel_safe", refused)
    started = time.monotonic()
    with pytest.raises(Terminated, match=STOPPED), sigterm_in(0.2):
        sleep_a_second()

    assert time.monotonic() - started >= 1, "after the query's own end"
    assert "Could not cancel the running query after SIGTERM: connection to server failed" in (
        caplog.text
    )
    assert Session.objects.count() == 0
