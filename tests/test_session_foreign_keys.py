"""Foreign keys to the session table follow Django's `on_delete`, in bulk, through the release
command: CASCADE deletes (and what cascades from those rows, and many-to-many through rows),
SET_NULL, SET_DEFAULT and SET() update, DO_NOTHING without a constraint leaves rows alone;
PROTECT, RESTRICT and a DO_NOTHING the database enforces stop the release before anything is
removed, with a message naming the field.

The session table is `login_records.LoginSession` (tests/login_records/models.py), so that the
rest of the suite keeps a `django_session` without foreign keys. SQLite by default; PostgreSQL
and MariaDB with DATABASE_URL. `transaction=True` tests take the batch path on PostgreSQL and
MariaDB (the others run inside the test's transaction, where the rows go at once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import CommandError
from django.db import connection
from django.db.models.signals import post_delete, pre_delete
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings

from release.apply import apply_release
from release.clearing import Cleared, dependents
from release.clearing.tables import SessionTable
from release.exceptions import ReleaseError
from release.models import Logout
from release.vendors import PostgreSQL
from tests.conftest import emptied_with, make_sessions, release, vendor
from tests.login_records.models import (
    SIGNED_OUT,
    CascadeLogin,
    ConstrainedLogin,
    DefaultLogin,
    Device,
    EventNote,
    EventReceipt,
    KioskLogin,
    Label,
    LoginEvent,
    LoginSession,
    LooseCascadeLogin,
    LooseRecord,
    LooseSession,
    NullLogin,
    ProtectedLogin,
    RestrictedLogin,
    SessionProfile,
    SetLogin,
    UncheckedLogin,
)
from tests.test_faults import needs_session_lock, open_connection

ENGINE = "tests.login_records.backend"
LOOSE_ENGINE = "tests.login_records.loose_backend"
TABLE = "login_records_loginsession"
BATCH = dependents.BATCH_ROWS_WITH_DEPENDENTS


@pytest.fixture(autouse=True)
def login_engine(settings: Settings) -> None:
    settings.RELEASE_SESSION_ENGINE = ENGINE


def sessions(count: int) -> list[str]:
    """`count` sessions in the login table, in key order (the order batches take them in)."""
    return sorted(make_sessions(count, model=LoginSession))


def logout(settings: Settings) -> str:
    settings.FORCE_LOGOUT_VERSION = 2
    return release()


def recorded() -> list[str]:
    return list(Logout.objects.order_by("epoch").values_list("kind", flat=True))


def shown(setting: str) -> str:
    """The value of a PostgreSQL setting on the test's connection."""
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {setting}")
        return str(cursor.fetchone()[0])


def rows(values: Iterable[Any]) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in values)


def every_rule() -> dict[str, Any]:
    """Four sessions, and rows that refer to them by every rule that lets them go."""
    s1, s2, s3, s4 = sessions(4)
    device = Device.objects.create(name="phone")
    device.sessions.add(*LoginSession.objects.filter(pk__in=[s1, s2]))
    label = Label.objects.create(name="beta")
    LoginSession.objects.get(pk=s3).labels.add(label)
    first = CascadeLogin.objects.create(session_id=s1, user_agent="first")
    second = CascadeLogin.objects.create(session_id=s2, user_agent="second", previous=first)
    event = LoginEvent.objects.create(login=first, kind="signed in")
    LoginEvent.objects.create(login=second, kind="signed in")
    EventNote.objects.create(event=event, text="about the event")
    EventNote.objects.create(event=None, text="about nothing")
    SessionProfile.objects.create(session_id=s1, theme="dark")
    LooseCascadeLogin.objects.create(session_id=s2)
    stays = LooseCascadeLogin.objects.create(session_id=None)
    for key in (s1, s2, None):
        NullLogin.objects.create(session_id=key, user_agent=str(key))
    DefaultLogin.objects.create(session_id=s3)
    SetLogin.objects.create(session_id=s4)
    UncheckedLogin.objects.create(session_id=s4)
    # RESTRICT to s1, and a CASCADE from s2's login: Django lets it go, and so does the release.
    RestrictedLogin.objects.create(session_id=s1, login=second)
    return {"keys": [s1, s2, s3, s4], "device": device, "label": label, "loose": stays.pk}


def assert_every_rule_applied(world: dict[str, Any], output: str) -> None:
    s1, s2, _, s4 = world["keys"]
    assert LoginSession.objects.count() == 0
    assert "removed 4 sessions" in output
    # CASCADE, and what cascades from it.
    assert CascadeLogin.objects.count() == 0
    assert LoginEvent.objects.count() == 0
    assert RestrictedLogin.objects.count() == 0
    assert SessionProfile.objects.count() == 0
    assert rows(LooseCascadeLogin.objects.values_list("pk", "session_id")) == [
        (world["loose"], None)
    ]
    # Many-to-many: the through rows go, the rows at the other end stay.
    assert list(Device.objects.values_list("name", flat=True)) == ["phone"]
    assert Device.sessions.through.objects.count() == 0
    assert list(Label.objects.values_list("name", flat=True)) == ["beta"]
    assert LoginSession.labels.through.objects.count() == 0
    # SET_NULL, also from a model that cascades from the sessions.
    assert rows(EventNote.objects.values_list("text", "event_id")) == [
        ("about nothing", None),
        ("about the event", None),
    ]
    assert rows(NullLogin.objects.values_list("user_agent", "session_id")) == sorted(
        [(s1, None), (s2, None), ("None", None)]
    )
    # SET_DEFAULT and SET(): the field's default, the callable's value.
    assert list(DefaultLogin.objects.values_list("session_id", flat=True)) == [SIGNED_OUT]
    assert list(SetLogin.objects.values_list("session_id", flat=True)) == ["gone"]
    # DO_NOTHING without a constraint: untouched.
    assert list(UncheckedLogin.objects.values_list("session_id", flat=True)) == [s4]
    assert recorded() == ["install", "markers"]
    effects = next(
        line for line in output.splitlines() if "With the sessions, by on_delete" in line
    )
    for part in (
        "deleted 2 rows of login_records.CascadeLogin (CASCADE)",
        "deleted 2 rows of login_records.LoginEvent (CASCADE)",
        "deleted 2 rows of login_records.Device_sessions (CASCADE)",
        "deleted 1 row of login_records.LoginSession_labels (CASCADE)",
        "set login_records.NullLogin.session in 2 rows (SET_NULL)",
        "set login_records.EventNote.event in 1 row (SET_NULL)",
        "set login_records.CascadeLogin.previous in 1 row (SET_NULL)",
        "set login_records.DefaultLogin.session in 1 row (SET_DEFAULT)",
        "set login_records.SetLogin.session in 1 row (SET(gone))",
    ):
        assert part in effects


@pytest.mark.django_db
def test_every_rule_in_the_release_transaction(installed: None, settings: Settings) -> None:
    world = every_rule()

    output = logout(settings)

    assert_every_rule_applied(world, output)


@pytest.mark.django_db(transaction=True)
def test_every_rule_in_batches(settings: Settings) -> None:
    release()
    world = every_rule()

    output = logout(settings)

    assert_every_rule_applied(world, output)
    if vendor() in {"postgresql", "mysql"}:
        assert (
            "Foreign keys point at the table (login_records.LoginSession_labels.loginsession: "
            "CASCADE, login_records.Device_sessions.loginsession: CASCADE, "
            "login_records.CascadeLogin.session: CASCADE and 10 more), so rows were deleted in "
            f"batches of {BATCH:,}, each with what refers to it." in output
        )
        assert "TRUNCATE" not in output


def protected() -> str:
    ProtectedLogin.objects.create(session_id=LoginSession.objects.order_by("pk")[0].pk)
    ProtectedLogin.objects.create(session_id=LoginSession.objects.order_by("pk")[1].pk)
    return (
        "2 rows of login_records.ProtectedLogin refer to the sessions through "
        "login_records.ProtectedLogin.session (on_delete=PROTECT)"
    )


def protected_by_cascade() -> str:
    login = CascadeLogin.objects.create(session_id=LoginSession.objects.order_by("pk")[0].pk)
    EventReceipt.objects.create(event=LoginEvent.objects.create(login=login, kind="paid"))
    return (
        "1 row of login_records.EventReceipt refers, through login_records.EventReceipt.event "
        "(on_delete=PROTECT), to login_records.LoginEvent rows that go with the sessions by "
        "CASCADE"
    )


def restricted() -> str:
    RestrictedLogin.objects.create(session_id=LoginSession.objects.order_by("pk")[2].pk)
    return (
        "1 row of login_records.RestrictedLogin refers to the sessions through "
        "login_records.RestrictedLogin.session (on_delete=RESTRICT)"
    )


def constrained() -> str:
    ConstrainedLogin.objects.create(session_id=LoginSession.objects.order_by("pk")[1].pk)
    return (
        "1 row of login_records.ConstrainedLogin refers to the sessions through "
        "login_records.ConstrainedLogin.session (on_delete=DO_NOTHING, and the database's "
        "foreign key refuses it)"
    )


def looping() -> str:
    login = CascadeLogin.objects.create(session_id=LoginSession.objects.order_by("pk")[0].pk)
    cause = LoginEvent.objects.create(login=login, kind="signed in")
    LoginEvent.objects.create(login=login, kind="password changed", cause=cause)
    return (
        "1 row of login_records.LoginEvent refers, through login_records.LoginEvent.cause "
        "(on_delete=CASCADE back to login_records.LoginEvent, a loop the release does not "
        "follow), to login_records.LoginEvent rows that go with the sessions by CASCADE"
    )


def inherited() -> str:
    KioskLogin.objects.create(session_id=LoginSession.objects.order_by("pk")[0].pk)
    return (
        "1 row of login_records.KioskLogin would go by CASCADE through "
        "login_records.KioskLogin.session, but login_records.KioskLogin inherits from "
        "login_records.AuditRecord, whose rows the release does not remove in bulk"
    )


STOPPERS = [protected, protected_by_cascade, restricted, constrained, looping, inherited]


def stopped_release(settings: Settings, add: Callable[[], str]) -> None:
    keys = sessions(3)
    kept = NullLogin.objects.create(session_id=keys[0])
    CascadeLogin.objects.create(session_id=keys[1])
    because = add()
    logins = CascadeLogin.objects.count()

    with pytest.raises(CommandError) as excinfo:
        logout(settings)

    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"Sessions in table {TABLE} cannot be removed: {because}. ")
    assert (
        "Delete or re-point those rows, or change that on_delete (CASCADE, SET_NULL or "
        "SET_DEFAULT are applied in bulk), then run the release again. Nobody was logged out and "
        "nothing was recorded."
    ) in message
    # Nothing removed, nothing updated, nothing recorded.
    assert sorted(LoginSession.objects.values_list("pk", flat=True)) == keys
    assert CascadeLogin.objects.count() == logins
    assert NullLogin.objects.get(pk=kept.pk).session_id == keys[0]
    assert recorded() == ["install"]


@pytest.mark.django_db
@pytest.mark.parametrize("add", STOPPERS, ids=[f.__name__ for f in STOPPERS])
def test_stops_before_anything_is_removed(
    installed: None, settings: Settings, add: Callable[[], str]
) -> None:
    stopped_release(settings, add)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("add", [protected, constrained], ids=["protected", "constrained"])
def test_stops_before_the_first_batch(settings: Settings, add: Callable[[], str]) -> None:
    release()
    stopped_release(settings, add)


@pytest.mark.django_db
@pytest.mark.parametrize("add", STOPPERS, ids=[f.__name__ for f in STOPPERS])
def test_a_dry_run_stops_where_the_release_would_with_the_same_line(
    installed: None, settings: Settings, add: Callable[[], str]
) -> None:
    keys = sessions(3)
    because = add()
    settings.FORCE_LOGOUT_VERSION = 2

    with pytest.raises(CommandError) as dry_run:
        release("--dry-run")
    with pytest.raises(CommandError) as real:
        release()

    assert str(dry_run.value).startswith(f"Sessions in table {TABLE} cannot be removed: {because}.")
    # The release adds what it did not do; the dry run did nothing either way.
    nothing_done = " Nobody was logged out and nothing was recorded."
    assert str(dry_run.value) == str(real.value).replace(nothing_done, "")
    assert sorted(LoginSession.objects.values_list("pk", flat=True)) == keys
    assert recorded() == ["install"]


@pytest.mark.django_db
def test_every_stopping_row_is_named(installed: None, settings: Settings) -> None:
    sessions(3)
    first, second = protected(), restricted()

    with pytest.raises(CommandError) as excinfo:
        logout(settings)

    assert f"cannot be removed: {first}; {second}. Delete" in str(excinfo.value)


@pytest.mark.django_db
def test_the_next_release_goes_once_the_rows_are_gone(installed: None, settings: Settings) -> None:
    sessions(3)
    protected()
    with pytest.raises(CommandError):
        logout(settings)

    ProtectedLogin.objects.all().delete()
    output = release()

    assert "removed 3 sessions" in output
    assert LoginSession.objects.count() == 0
    assert recorded() == ["install", "markers"]


@pytest.mark.django_db
def test_relations_are_found_from_the_model() -> None:
    found = dependents.dependents(LoginSession)

    assert {(r.name, r.rule) for r in found.direct} == {
        ("login_records.LoginSession_labels.loginsession", "CASCADE"),
        ("login_records.Device_sessions.loginsession", "CASCADE"),
        ("login_records.CascadeLogin.session", "CASCADE"),
        ("login_records.SessionProfile.session", "CASCADE"),
        ("login_records.LooseCascadeLogin.session", "CASCADE"),
        ("login_records.KioskLogin.session", "CASCADE"),
        ("login_records.NullLogin.session", "SET_NULL"),  # related_name="+"
        ("login_records.DefaultLogin.session", "SET_DEFAULT"),
        ("login_records.SetLogin.session", "SET(gone)"),
        ("login_records.ProtectedLogin.session", "PROTECT"),
        ("login_records.RestrictedLogin.session", "RESTRICT"),
        ("login_records.UncheckedLogin.session", "DO_NOTHING"),
        ("login_records.ConstrainedLogin.session", "DO_NOTHING"),
    }
    order = [model._meta.label for model in found.cascades]
    # Children before the rows they cascade from.
    assert order.index("login_records.LoginEvent") < order.index("login_records.CascadeLogin")
    assert order.index("login_records.RestrictedLogin") < order.index("login_records.CascadeLogin")
    assert found.acts
    assert not dependents.dependents(LooseSession).acts


@pytest.mark.django_db
def test_no_row_is_loaded_whatever_the_number(installed: None, settings: Settings) -> None:
    """Never QuerySet.delete(), which loads every row once a receiver is connected without a
    sender: the statements are the same for 20 sessions and a whole batch."""
    seen: list[object] = []

    def receiver(sender: object, **kwargs: object) -> None:
        seen.append(sender)

    def statements(rows: int, version: int) -> list[str]:
        for key in sessions(rows):
            CascadeLogin.objects.create(session_id=key)
            NullLogin.objects.create(session_id=key)
        settings.FORCE_LOGOUT_VERSION = version
        with CaptureQueriesContext(connection) as queries:
            release()
        assert LoginSession.objects.count() == CascadeLogin.objects.count() == 0
        assert NullLogin.objects.filter(session__isnull=False).count() == 0
        return [q["sql"] for q in queries.captured_queries if "login_records" in q["sql"]]

    pre_delete.connect(receiver)
    post_delete.connect(receiver)
    try:
        few = statements(20, 2)
        many = statements(BATCH, 3)
    finally:
        pre_delete.disconnect(receiver)
        post_delete.disconnect(receiver)

    assert seen == []
    assert len(few) == len(many)
    assert not [sql for sql in many if "session_data" in sql or "user_agent" in sql]


@pytest.mark.django_db(transaction=True)
def test_do_nothing_without_a_constraint_keeps_the_truncate(settings: Settings) -> None:
    settings.RELEASE_SESSION_ENGINE = LOOSE_ENGINE
    release()
    keys = make_sessions(3, model=LooseSession)
    LooseRecord.objects.create(session_id=keys[0])

    output = logout(settings)

    assert LooseSession.objects.count() == 0
    assert list(LooseRecord.objects.values_list("session_id", flat=True)) == [keys[0]]
    assert "removed 3 sessions" in output
    if vendor() in {"postgresql", "mysql"}:
        assert f"Emptied the table with {emptied_with()} (3 rows)." in output


@contextmanager
def raw_foreign_key() -> Iterator[None]:
    """A table that refers to the sessions by a constraint no model declares."""
    references = f"REFERENCES {TABLE} (session_key)"
    with connection.cursor() as cursor:
        if vendor() == "mysql":
            cursor.execute(
                "CREATE TABLE raw_visit (session_key varchar(40) NOT NULL, "
                f"FOREIGN KEY (session_key) {references}) ENGINE=InnoDB"
            )
        else:
            cursor.execute(
                f"CREATE TABLE raw_visit (session_key varchar(40) NOT NULL {references})"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE raw_visit")


@pytest.mark.django_db(transaction=True)
def test_the_databases_refusal_is_one_line_and_says_how_many_went(settings: Settings) -> None:
    """A foreign key no model declares, to a session of the second batch: the first batch
    went (and the progress said so), the second is refused, nothing is recorded."""
    release()
    batched = vendor() in {"postgresql", "mysql"}
    keys = sessions(BATCH + 10 if batched else 10)
    progress: list[int] = []
    settings.FORCE_LOGOUT_VERSION = 2

    with raw_foreign_key():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO raw_visit (session_key) VALUES (%s)", [keys[-1]])
        with pytest.raises(ReleaseError) as excinfo:
            apply_release(progress=lambda removed, total: progress.append(removed))
        left = LoginSession.objects.count()

    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"The database refused to remove sessions from table {TABLE} (")
    assert "a foreign key that no installed model declares" in message
    assert recorded() == ["install"]
    assert left == 10
    if batched:  # the first batch went; `progress` said so, and the message says it
        assert progress == [BATCH]
        assert message.endswith(
            f"then run the release again. {BATCH:,} sessions were removed before it stopped, and "
            "nothing was recorded: the next release removes the rest and records the logout."
        )
    else:  # one transaction, rolled back
        assert progress == []
        assert message.endswith(
            "then run the release again. Nobody was logged out and nothing was recorded."
        )


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_a_restricted_row_goes_with_the_first_batch_that_needs_it(settings: Settings) -> None:
    """RESTRICT to a session of the first batch, CASCADE from one of the second: it must go
    with the first (the constraint), and may (it goes anyway)."""
    release()
    keys = sessions(BATCH + 1)
    login = CascadeLogin.objects.create(session_id=keys[-1])
    RestrictedLogin.objects.create(session_id=keys[0], login=login)
    progress: list[int] = []
    settings.FORCE_LOGOUT_VERSION = 2

    outcome = apply_release(progress=lambda removed, total: progress.append(removed))

    assert outcome.removed == BATCH + 1
    assert progress == [BATCH, BATCH + 1]
    assert LoginSession.objects.count() == CascadeLogin.objects.count() == 0
    assert RestrictedLogin.objects.count() == 0


@contextmanager
def locking_a_login_session(key: str) -> Iterator[None]:
    """Another connection holding one session row's lock in an open transaction."""
    with open_connection() as other:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET session_data = session_data WHERE session_key = %s", [key]
            )
        try:
            yield
        finally:
            other.rollback()
            other.set_autocommit(True)


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_a_locked_session_keeps_what_refers_to_it(settings: Settings) -> None:
    release()
    keys = sessions(2 * BATCH + BATCH // 2)
    logins = CascadeLogin.objects.bulk_create(CascadeLogin(session_id=key) for key in keys[::10])
    NullLogin.objects.bulk_create(NullLogin(session_id=key) for key in keys[::10])
    locked = keys[0]
    progress: list[int] = []
    settings.FORCE_LOGOUT_VERSION = 2

    with locking_a_login_session(locked):
        outcome = apply_release(progress=lambda removed, total: progress.append(removed))

    assert outcome.removed == len(keys) - 1
    assert progress == [BATCH, 2 * BATCH, len(keys) - 1]
    assert list(LoginSession.objects.values_list("pk", flat=True)) == [locked]
    assert list(CascadeLogin.objects.values_list("session_id", flat=True)) == [locked]
    assert list(NullLogin.objects.exclude(session=None).values_list("session_id", flat=True)) == [
        locked
    ]
    assert NullLogin.objects.filter(session=None).count() == len(logins) - 1
    assert "1 session locked by other transactions or saved meanwhile was left" in " ".join(
        outcome.notes
    )
    assert (
        f"With the sessions, by on_delete: deleted {len(logins) - 1} rows of "
        f"login_records.CascadeLogin (CASCADE); set login_records.NullLogin.session in "
        f"{len(logins) - 1} rows (SET_NULL)."
    ) in outcome.notes


@needs_session_lock
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "unguarded"])
def test_sessions_saved_during_the_release_go_with_their_rows(
    settings: Settings, guarded: bool
) -> None:
    """A live site signs someone in (a session and its login record) after the first batch:
    the final transaction removes both."""
    if not guarded:
        settings.SESSION_ENGINE = ENGINE
    release()
    keys = sessions(BATCH + 5)
    CascadeLogin.objects.bulk_create(CascadeLogin(session_id=key) for key in keys)
    live = "0" * 32 + "live"  # before every key, so the batches have passed it

    def sign_in_meanwhile(removed: int, total: int | None) -> None:
        if removed != BATCH:
            return
        with open_connection() as other, other.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {TABLE} (session_key, session_data, expire_date) "
                "SELECT %s, session_data, expire_date FROM "
                f"{TABLE} WHERE session_key = %s",
                [live, keys[-1]],
            )
            cursor.execute(
                "INSERT INTO login_records_cascadelogin (session_id, user_agent) VALUES (%s, %s)",
                [live, "live"],
            )
            cursor.execute(
                "INSERT INTO login_records_nulllogin (session_id, user_agent) VALUES (%s, %s)",
                [live, "live"],
            )

    settings.FORCE_LOGOUT_VERSION = 2
    outcome = apply_release(progress=sign_in_meanwhile)

    assert outcome.removed == BATCH + 6
    assert LoginSession.objects.count() == CascadeLogin.objects.count() == 0
    assert rows(NullLogin.objects.values_list("user_agent", "session_id")) == [("live", None)]
    assert (
        "With the sessions, by on_delete: deleted 1 row of login_records.CascadeLogin (CASCADE); "
        "set login_records.NullLogin.session in 1 row (SET_NULL)."
    ) in outcome.notes


@pytest.mark.skipif("vendor() != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_batches_commit_without_waiting_for_the_disk_and_the_record_waits(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch's COMMIT returns before its log is flushed; the final transaction, which
    records the logout, flushes it all, so a crash cannot leave a record without its batches."""
    release()
    keys = sessions(2 * BATCH + 1)
    CascadeLogin.objects.bulk_create(CascadeLogin(session_id=key) for key in keys[::10])
    seen: list[tuple[str, str]] = []
    lock_next_batch, remove_remaining = SessionTable._lock_next_batch, SessionTable.remove_remaining

    def synchronous_commit(phase: str) -> None:
        seen.append((phase, shown("synchronous_commit")))

    phase = "batch"

    def in_a_batch(table: SessionTable, last: Any) -> list[Any]:
        synchronous_commit(phase)
        return lock_next_batch(table, last)

    def in_the_final_transaction(table: SessionTable, **kwargs: Any) -> Cleared:
        nonlocal phase
        phase = "final"
        synchronous_commit(phase)
        cleared = remove_remaining(table, **kwargs)
        synchronous_commit(phase)
        return cleared

    monkeypatch.setattr(SessionTable, "_lock_next_batch", in_a_batch)
    monkeypatch.setattr(SessionTable, "remove_remaining", in_the_final_transaction)

    logout(settings)

    assert LoginSession.objects.count() == CascadeLogin.objects.count() == 0
    batches = [value for step, value in seen if step == "batch"]
    assert len(batches) >= 3
    assert set(batches) == {"off"}
    final = [value for step, value in seen if step == "final"]
    assert len(final) >= 2
    assert set(final) == {"on"}


def vacuums(table: str) -> int:
    """How many times `table` was vacuumed by hand, as a connection of its own sees it."""
    with open_connection() as other, other.cursor() as cursor:
        cursor.execute("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = %s", [table])
        return int(cursor.fetchone()[0])


@pytest.mark.skipif("vendor() != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_deleted_rows_are_vacuumed_before_the_final_transaction(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final pass reads the table by key from the start: the rows the batches deleted are
    gone from it and its indexes first, or it would read them all again inside the transaction
    that records the logout."""
    release()
    keys = sessions(2 * BATCH + 1)
    CascadeLogin.objects.bulk_create(CascadeLogin(session_id=key) for key in keys[::10])
    before = vacuums(TABLE)
    at_the_final_transaction: list[int] = []
    remove_remaining = SessionTable.remove_remaining

    def in_the_final_transaction(table: SessionTable, **kwargs: Any) -> Cleared:
        at_the_final_transaction.append(vacuums(TABLE))
        return remove_remaining(table, **kwargs)

    monkeypatch.setattr(SessionTable, "remove_remaining", in_the_final_transaction)
    paces: list[str] = []

    def noting_the_pace(execute: Any, sql: str, *args: Any) -> Any:
        if sql.startswith("VACUUM"):
            paces.append(shown("vacuum_cost_delay"))
        return execute(sql, *args)

    with connection.execute_wrapper(noting_the_pace):
        logout(settings)

    assert at_the_final_transaction == [before + 1]
    assert paces == ["2ms"]
    assert shown("vacuum_cost_delay") == "0"
    assert LoginSession.objects.count() == CascadeLogin.objects.count() == 0


@contextmanager
def holding_the_vacuum_lock() -> Iterator[Callable[[], None]]:
    """Another connection holding the lock a VACUUM of the session table needs, as autovacuum or
    another VACUUM does, until the function given is called (or the block ends)."""
    with open_connection() as other:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {TABLE} IN SHARE UPDATE EXCLUSIVE MODE")
        other.inc_thread_sharing()  # let go from a timer's thread
        try:
            yield other.rollback
        finally:
            other.rollback()
            other.dec_thread_sharing()


@pytest.mark.skipif("vendor() != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_the_vacuum_waits_for_the_table_a_bounded_time_then_goes_without(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    release()
    keys = sessions(BATCH + 1)
    CascadeLogin.objects.bulk_create(CascadeLogin(session_id=key) for key in keys[::10])
    monkeypatch.setattr(PostgreSQL, "VACUUM_LOCK_TIMEOUT_MS", 200)
    before, logouts = vacuums(TABLE), len(recorded())

    with holding_the_vacuum_lock():
        output = logout(settings)

    assert (
        "The deleted rows were not vacuumed: another VACUUM or maintenance command held the table "
        "for 0.2 s, so the final pass read them again." in " ".join(output.split())
    )
    assert vacuums(TABLE) == before
    assert LoginSession.objects.count() == CascadeLogin.objects.count() == 0
    assert len(recorded()) == logouts + 1
    assert shown("lock_timeout") == "0"


@pytest.mark.skipif("vendor() != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_the_vacuum_waits_for_a_lock_that_ends_in_time(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    release()
    sessions(BATCH + 1)
    before = vacuums(TABLE)
    clean_up_deleted = PostgreSQL.clean_up_deleted
    waited: list[float] = []

    with holding_the_vacuum_lock() as let_go:

        def after_a_while(db: PostgreSQL, table: str) -> str | None:
            timer = threading.Timer(0.3, let_go)
            timer.start()
            started = time.monotonic()
            not_cleaned_up = clean_up_deleted(db, table)
            waited.append(time.monotonic() - started)
            timer.join()
            return not_cleaned_up

        monkeypatch.setattr(PostgreSQL, "clean_up_deleted", after_a_while)
        output = logout(settings)

    assert "not vacuumed" not in output
    assert vacuums(TABLE) == before + 1
    assert len(waited) == 1
    assert waited[0] >= 0.3
    assert LoginSession.objects.count() == 0
