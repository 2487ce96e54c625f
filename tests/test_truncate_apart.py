"""PostgreSQL: the TRUNCATE runs on a connection of its own, whose COMMIT the release waits for
only until it has gone through, not while the server frees the table's old files; and where that
cannot be, on the command's own connection, waiting."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from pytest_django.fixtures import Settings

from release.models import Logout
from release.vendors import PostgreSQL
from tests.conftest import make_sessions, release, vendor

pytestmark = [
    pytest.mark.skipif(vendor() != "postgresql", reason="PostgreSQL's TRUNCATE"),
    pytest.mark.django_db(transaction=True),
]


@contextmanager
def statements_here() -> Iterator[list[str]]:
    """The SQL the command's own connection runs meanwhile."""
    statements: list[str] = []

    def noting(execute: Any, sql: str, *args: Any) -> Any:
        statements.append(sql)
        return execute(sql, *args)

    with connection.execute_wrapper(noting):
        yield statements


def backends() -> int:
    """Connections to the test database but this one."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def until_backends_are(expected: int) -> int:
    """A closed connection's server process ends a moment after the client has gone."""
    for _attempt in range(200):
        found = backends()
        if found == expected:
            break
        time.sleep(0.01)
    return found


def logout_after_install(settings: Settings, sessions: int = 40) -> None:
    release()
    make_sessions(sessions)
    settings.FORCE_LOGOUT_VERSION = 2


def test_the_truncate_goes_on_a_connection_of_its_own_which_is_closed_after_it(
    settings: Settings,
) -> None:
    logout_after_install(settings)
    before = backends()

    with statements_here() as statements:
        output = release()

    assert "Emptied the table with TRUNCATE (40 rows)." in output
    assert Session.objects.count() == 0
    assert Logout.objects.filter(logged_out=True).count() == 1
    assert not [sql for sql in statements if "TRUNCATE" in sql]
    # The command's own connection waited for the table to be let go, and asked whether the
    # other's transaction committed.
    assert any(sql.startswith("LOCK TABLE") and "ACCESS SHARE" in sql for sql in statements)
    assert any("pg_xact_status" in sql for sql in statements)
    assert until_backends_are(before) == before


def test_a_truncate_whose_commit_fails_empties_nothing_and_the_rows_go_in_batches(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction can fail at COMMIT (here a deferred foreign key, as Django's are): the
    release does not take the TRUNCATE for done, and removes the rows in batches instead."""
    logout_after_install(settings)
    attempt = PostgreSQL._attempt

    def failing_at_commit(db: PostgreSQL, apart: BaseDatabaseWrapper, *args: Any) -> str | None:
        xid = attempt(db, apart, *args)
        with apart.cursor() as cursor:
            cursor.execute("INSERT INTO release_commit_fails VALUES (1, 2)")
        return xid

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE release_commit_fails (id int PRIMARY KEY, parent int REFERENCES "
            "release_commit_fails (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    monkeypatch.setattr(PostgreSQL, "_attempt", failing_at_commit)
    try:
        output = release()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE release_commit_fails")

    assert (
        "TRUNCATE was refused (its COMMIT did not go through: PostgreSQL reports transaction"
    ) in output
    assert "as 'aborted'), so rows were deleted in batches of 5,000." in output
    assert Session.objects.count() == 0
    assert Logout.objects.filter(logged_out=True).get().sessions_removed == 40


def test_where_no_other_connection_can_be_opened_the_truncate_waits_on_the_commands_own(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when the server's max_connections is reached: here, a port nobody listens on."""
    logout_after_install(settings)

    def unreachable(alias: str) -> BaseDatabaseWrapper:
        wrapper = connections[alias]
        return type(wrapper)({**wrapper.settings_dict, "PORT": "1"}, alias)

    monkeypatch.setattr(connections, "create_connection", unreachable)
    with statements_here() as statements:
        output = release()

    assert "Emptied the table with TRUNCATE (40 rows)." in output
    assert Session.objects.count() == 0
    assert [sql for sql in statements if "TRUNCATE" in sql]
    assert not [sql for sql in statements if "pg_xact_status" in sql]


class WithoutAsynchronousSend:
    """A psycopg 3 connection as psycopg2's looks to the release: no libpq `pgconn` to send a
    query on without waiting for its result."""

    def __init__(self, driver: Any) -> None:
        object.__setattr__(self, "_driver", driver)

    def __getattr__(self, name: str) -> Any:
        if name == "pgconn":
            raise AttributeError(name)
        return getattr(self._driver, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._driver, name, value)


def test_a_driver_that_cannot_send_without_waiting_commits_and_waits(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    logout_after_install(settings)
    create = connections.create_connection
    before = backends()

    def as_psycopg2(alias: str) -> BaseDatabaseWrapper:
        wrapper = create(alias)
        wrapper.ensure_connection()
        wrapper.connection = WithoutAsynchronousSend(wrapper.connection)
        return wrapper

    monkeypatch.setattr(connections, "create_connection", as_psycopg2)
    with statements_here() as statements:
        output = release()

    assert "Emptied the table with TRUNCATE (40 rows)." in output
    assert Session.objects.count() == 0
    assert not [sql for sql in statements if "TRUNCATE" in sql]
    assert not [sql for sql in statements if "pg_xact_status" in sql]
    assert until_backends_are(before) == before
