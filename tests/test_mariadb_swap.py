"""MariaDB: an empty copy of the session table is swapped in (RENAME TABLE) and the old table
dropped after, where nothing but its name ties the table to the rest of the schema; TRUNCATE
where something does, or where the user may not create tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from pytest_django.fixtures import Settings

from release.vendors import swap_tables
from tests.conftest import make_sessions, release, vendor

mariadb = pytest.mark.skipif(vendor() != "mysql", reason="MariaDB's swap")
OTHER_SCHEMA = "release_swap_other"
LIMITED_USER = "release_no_create"


def query(sql: str, params: list[str] | None = None) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def execute(*statements: str) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def tables_beside_sessions() -> list[object]:
    return [
        row[0]
        for row in query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name LIKE 'django\\_session\\_\\_%'"
        )
    ]


def definition() -> object:
    return query("SHOW CREATE TABLE django_session")[0][1]


def logout(settings: Settings) -> str:
    release()
    make_sessions(30)
    settings.FORCE_LOGOUT_VERSION = 2
    return release()


def test_the_spare_tables_names_fit_mariadbs_limit_and_differ_by_table() -> None:
    assert swap_tables("django_session") == (
        "django_session__release_new",
        "django_session__release_old",
    )
    long = swap_tables("s" * 64)
    other = swap_tables("s" * 63 + "t")
    assert all(len(name) <= 64 for name in long)
    assert long != other


@mariadb
@pytest.mark.django_db(transaction=True)
def test_an_empty_copy_is_swapped_in_and_the_old_table_dropped(settings: Settings) -> None:
    before = definition()

    output = logout(settings)

    assert "Emptied the table with RENAME TABLE to an empty copy (30 rows)." in output
    assert Session.objects.count() == 0
    assert definition() == before
    assert tables_beside_sessions() == []


@mariadb
@pytest.mark.django_db(transaction=True)
def test_the_swap_is_timed_in_parts(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    release()
    make_sessions(3)
    settings.FORCE_LOGOUT_VERSION = 2

    call_command("release", "--json", "--skip-migrate")

    parts = json.loads(capsys.readouterr().out)["clear_steps"]
    assert list(parts) == ["count", "prepare", "wait", "truncate", "drop"]
    assert parts["prepare"] > 0  # the checks and CREATE TABLE ... LIKE
    assert parts["drop"] > 0


@mariadb
@pytest.mark.django_db(transaction=True)
def test_tables_a_crash_left_are_dropped_first(settings: Settings) -> None:
    fresh, old = swap_tables("django_session")
    execute(
        f"CREATE TABLE {fresh} LIKE django_session",
        f"CREATE TABLE {old} LIKE django_session",
        f"INSERT INTO {old} VALUES ('left-by-a-crash', 'x', NOW())",
    )

    output = logout(settings)

    assert "RENAME TABLE to an empty copy (30 rows)" in output
    assert Session.objects.count() == 0
    assert tables_beside_sessions() == []


@mariadb
@pytest.mark.django_db(transaction=True)
def test_a_trigger_keeps_the_truncate_and_stays_on_the_table(settings: Settings) -> None:
    execute(
        "CREATE TRIGGER release_swap_trigger BEFORE INSERT ON django_session "
        "FOR EACH ROW SET NEW.session_data = CONCAT(NEW.session_data, '')"
    )
    try:
        output = logout(settings)

        assert "Emptied the table with TRUNCATE (30 rows)." in output
        assert Session.objects.count() == 0
        assert query(
            "SELECT event_object_table FROM information_schema.triggers "
            "WHERE trigger_schema = DATABASE() AND trigger_name = 'release_swap_trigger'"
        ) == [("django_session",)]
    finally:
        execute("DROP TRIGGER IF EXISTS release_swap_trigger")


@mariadb
@pytest.mark.django_db(transaction=True)
def test_a_foreign_key_from_another_schema_keeps_pointing_at_the_session_table(
    settings: Settings,
) -> None:
    """A TRUNCATE is refused where a foreign key points at the table, and a swap would move the
    key to the old table: neither happens, the rows go in batches."""
    database = connection.settings_dict["NAME"]
    execute(
        f"DROP DATABASE IF EXISTS {OTHER_SCHEMA}",
        f"CREATE DATABASE {OTHER_SCHEMA}",
        f"CREATE TABLE {OTHER_SCHEMA}.visit (id int PRIMARY KEY, session_key varchar(40), "
        f"CONSTRAINT visit_session FOREIGN KEY (session_key) "
        f"REFERENCES {database}.django_session (session_key))",
    )
    try:
        output = logout(settings)

        assert "TRUNCATE was refused" in output
        assert "so rows were deleted in batches of 5,000" in output
        assert Session.objects.count() == 0
        assert query(
            "SELECT referenced_table_name FROM information_schema.referential_constraints "
            "WHERE constraint_schema = %s AND constraint_name = 'visit_session'",
            [OTHER_SCHEMA],
        ) == [("django_session",)]
        assert tables_beside_sessions() == []
    finally:
        execute(f"DROP DATABASE IF EXISTS {OTHER_SCHEMA}")


@mariadb
@pytest.mark.django_db(transaction=True)
def test_a_table_with_foreign_keys_of_its_own_keeps_the_truncate(settings: Settings) -> None:
    """LIKE copies no foreign keys: a session table with one (django-user-sessions' user) is
    truncated, and keeps it."""
    execute(
        "ALTER TABLE django_session ADD COLUMN owner_id int NULL, "
        "ADD CONSTRAINT session_owner FOREIGN KEY (owner_id) REFERENCES auth_user (id)"
    )
    try:
        output = logout(settings)

        assert "Emptied the table with TRUNCATE (30 rows)." in output
        assert query(
            "SELECT referenced_table_name FROM information_schema.referential_constraints "
            "WHERE constraint_schema = DATABASE() AND table_name = 'django_session'"
        ) == [("auth_user",)]
    finally:
        execute(
            "ALTER TABLE django_session DROP FOREIGN KEY session_owner",
            "ALTER TABLE django_session DROP COLUMN owner_id",
        )


@contextmanager
def as_a_user_who_may_not_create_tables() -> Iterator[None]:
    settings_dict = connection.settings_dict
    database, user = settings_dict["NAME"], settings_dict["USER"]
    execute(
        f"CREATE USER IF NOT EXISTS '{LIMITED_USER}'@'%'",
        f"GRANT SELECT, INSERT, UPDATE, DELETE, DROP ON {database}.* TO '{LIMITED_USER}'@'%'",
    )
    connection.close()
    settings_dict["USER"] = LIMITED_USER
    try:
        yield
    finally:
        connection.close()
        settings_dict["USER"] = user
        execute(f"DROP USER IF EXISTS '{LIMITED_USER}'@'%'")


@mariadb
@pytest.mark.django_db(transaction=True)
def test_a_user_who_may_not_create_tables_gets_the_truncate(settings: Settings) -> None:
    release()
    make_sessions(30)
    settings.FORCE_LOGOUT_VERSION = 2

    with as_a_user_who_may_not_create_tables():
        output = release()
        assert query("SELECT CURRENT_USER()") == [(f"{LIMITED_USER}@%",)]
        assert Session.objects.count() == 0

    assert "Emptied the table with TRUNCATE (30 rows)." in output
    assert tables_beside_sessions() == []
