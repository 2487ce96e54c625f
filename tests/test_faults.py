"""Faults injected for real: processes killed mid-clear, busy tables, locked rows, a cache
that is down. Whatever happens, nothing is recorded that was not done."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import DatabaseError, OperationalError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.utils import timezone
from pytest_django.fixtures import Settings

from release.clearing.tables import (
    EXACT_COUNT_UP_TO,
    FINAL_PASSES,
    WAITING_ATTEMPTS,
    SessionTable,
)
from release.models import AppliedMarker, Logout
from release.vendors import database
from tests.conftest import (
    CACHE,
    ROOT,
    child_env,
    emptied_with,
    make_sessions,
    only_with_session_lock,
    release,
    run_manage,
    vendor,
)

needs_session_lock = only_with_session_lock("a clear in steps happens on PostgreSQL and MariaDB")
DATA = "eyJfYXV0aF91c2VyX2lkIjoiMSJ9:1tTest:signature"


def fill_sessions(count: int) -> None:
    """`count` session rows, written by the database itself in one statement."""
    with connection.cursor() as cursor:
        if vendor() == "postgresql":
            cursor.execute(
                "INSERT INTO django_session (session_key, session_data, expire_date) "
                "SELECT md5(i::text) || 'x', %s, now() + interval '1 day' "
                "FROM generate_series(1, %s) AS i",
                [DATA, count],
            )
        elif vendor() == "mysql":
            cursor.execute(
                "INSERT INTO django_session (session_key, session_data, expire_date) "
                f"SELECT CONCAT(MD5(seq), 'x'), %s, NOW() + INTERVAL 1 DAY FROM seq_1_to_{count}",
                [DATA],
            )
        else:
            make_sessions(count)


@contextmanager
def open_connection() -> Iterator[BaseDatabaseWrapper]:
    other = connections.create_connection("default")
    try:
        yield other
    finally:
        other.close()


@contextmanager
def reading_in_a_long_transaction() -> Iterator[None]:
    """Another connection inside a transaction that has read the session table, as an old
    dyno in ATOMIC_REQUESTS or a slow report: TRUNCATE cannot have the table meanwhile."""
    with open_connection() as other:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM django_session")
        try:
            yield
        finally:
            other.rollback()
            other.set_autocommit(True)


@contextmanager
def locking_a_session_row(key: str) -> Iterator[None]:
    """Another connection holding one session row's lock in an open transaction."""
    with open_connection() as other:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute(
                "UPDATE django_session SET session_data = session_data WHERE session_key = %s",
                [key],
            )
        try:
            yield
        finally:
            other.rollback()
            other.set_autocommit(True)


def recorded() -> list[tuple[int, str]]:
    """The history's kinds in order, each with its epoch: 0 for the install, 1 for a logout
    (whose epoch, from a child process's clock, is only known to be later)."""
    return [
        (min(epoch, 1), kind)
        for epoch, kind in Logout.objects.order_by("epoch").values_list("epoch", "kind")
    ]


@needs_session_lock
@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "SIGTERM"])
def test_stopped_mid_clear_records_nothing_and_the_next_release_finishes(
    signum: signal.Signals,
) -> None:
    release()
    fill_sessions(200_000)
    env = child_env(FORCE_LOGOUT_ON_DEPLOY="deploy-2")
    command = [sys.executable, "manage.py", "release", "--skip-migrate"]

    with reading_in_a_long_transaction():  # so that the clear goes in batches, and takes time
        child = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while Session.objects.count() > 190_000:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the clear never started"
            time.sleep(0.02)
        child.send_signal(signum)
        _, stderr = child.communicate(timeout=60)

    left = Session.objects.count()
    assert 0 < left < 200_000, "stopped part-way"
    assert recorded() == [(0, "install")]
    assert set(AppliedMarker.objects.values_list("value", flat=True)) == {"1"}
    if signum == signal.SIGTERM:
        assert child.returncode == 1
        assert "Stopped by SIGTERM before the logout was recorded" in stderr
    else:
        assert child.returncode == -signal.SIGKILL

    again = run_manage("release", "--skip-migrate", FORCE_LOGOUT_ON_DEPLOY="deploy-2")

    assert again.returncode == 0, again.stderr
    assert f"removed {left:,} sessions" in again.stdout
    assert Session.objects.count() == 0
    assert recorded() == [(0, "install"), (1, "markers")]


class LatencyProbe(threading.Thread):
    """Reads and saves sessions like a live site, on its own connection, and keeps the worst
    time one statement took."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(daemon=True)
        self.keys = keys
        self.worst = 0.0
        self.statements = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with open_connection() as own, own.cursor() as cursor:
            while not self.stop.is_set():
                key = self.keys[self.statements % len(self.keys)]
                for sql in (
                    "SELECT session_data FROM django_session WHERE session_key = %s",
                    "UPDATE django_session SET expire_date = expire_date WHERE session_key = %s",
                ):
                    started = time.monotonic()
                    cursor.execute(sql, [key])
                    self.worst = max(self.worst, time.monotonic() - started)
                    self.statements += 1
                time.sleep(0.005)


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_a_truncate_attempt_on_a_busy_table_gives_up_keeps_every_row_and_raises_nothing() -> None:
    """Neither kind of attempt waits past its bound, and a refusal is an answer, not an error:
    PostgreSQL would log each error that reached the client, and the release makes hundreds of
    attempts."""
    make_sessions(3)
    db = database("default")
    table = db.quote(Session._meta.db_table)

    with reading_in_a_long_transaction(), db.truncating(table) as truncate:
        started = time.monotonic()
        assert truncate(None) is False
        not_waiting = time.monotonic() - started
        started = time.monotonic()
        assert truncate(25) is False
        waiting = time.monotonic() - started

    assert not_waiting < 0.5, f"the attempt that may not wait waited {not_waiting:.3f} s"
    assert waiting < 0.5, f"the attempt that waits 25 ms waited {waiting:.3f} s"
    assert Session.objects.count() == 3
    # Once the transaction is gone an attempt that may not wait gets the table, though not always
    # the first: MariaDB's own background threads (purge, InnoDB's statistics) hold it for
    # moments, which the release's hundreds of attempts get past in the same way.
    with db.truncating(table) as truncate:
        for _attempt in range(100):
            if truncate(None):
                break
            time.sleep(0.01)
        else:
            pytest.fail("no attempt got the table within a second of the transaction's end")
    assert Session.objects.count() == 0


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_a_truncate_refused_for_another_reason_is_raised() -> None:
    db = database("default")
    with pytest.raises(DatabaseError), db.truncating(db.quote("no_such_table")) as truncate:
        truncate(None)


@contextmanager
def as_a_role_without_truncate() -> Iterator[None]:
    """This connection, and each one opened meanwhile, as a PostgreSQL role that may do anything
    to the tables but TRUNCATE the session table: a database user some teams give their app."""
    role = "release_no_truncate"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {role}")
        cursor.execute(f"CREATE ROLE {role}")
        cursor.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        cursor.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
        cursor.execute(f"REVOKE TRUNCATE ON django_session FROM {role}")
        cursor.execute(f"SET ROLE {role}")

    def as_the_role(**kwargs: Any) -> None:
        with kwargs["connection"].cursor() as cursor:
            cursor.execute(f"SET ROLE {role}")

    connection_created.connect(as_the_role)
    try:
        yield
    finally:
        connection_created.disconnect(as_the_role)
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
            cursor.execute(f"DROP OWNED BY {role}")
            cursor.execute(f"DROP ROLE {role}")


@pytest.mark.skipif("vendor() != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_a_role_that_may_not_truncate_gets_batches_and_is_told_why(settings: Settings) -> None:
    release()
    make_sessions(3)
    settings.FORCE_LOGOUT_VERSION = 2

    with as_a_role_without_truncate():
        output = release()

    assert Session.objects.count() == 0
    assert "TRUNCATE was refused (permission denied for table django_session" in output
    assert "so rows were deleted in batches of 5,000" in output
    assert recorded()[-1][1] == "markers"


@pytest.mark.skipif("vendor() != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_a_role_that_does_not_own_the_table_is_not_asked_to_vacuum_it(
    settings: Settings,
) -> None:
    """VACUUM by anyone but the owner logs a WARNING and does nothing: the release does not ask."""
    release()
    make_sessions(3)
    settings.FORCE_LOGOUT_VERSION = 2
    statements: list[str] = []

    def noting(execute: Any, sql: str, *args: Any) -> Any:
        statements.append(sql)
        return execute(sql, *args)

    with as_a_role_without_truncate(), connection.execute_wrapper(noting):
        release()

    assert Session.objects.count() == 0
    assert any("pg_has_role" in sql for sql in statements)
    assert not [sql for sql in statements if sql.startswith("VACUUM")]


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_a_long_transaction_on_the_table_neither_hangs_the_release_nor_stalls_the_site(
    settings: Settings,
) -> None:
    release()
    keys = make_sessions(2_000)
    fill_sessions(20_000)
    probe = LatencyProbe(keys)
    settings.FORCE_LOGOUT_VERSION = 2

    with reading_in_a_long_transaction():
        probe.start()
        started = time.monotonic()
        document = json.loads(release("--json"))
        took = time.monotonic() - started
        probe.stop.set()
        probe.join(10)

    output = " ".join(document["notes"])
    busy = re.search(
        r"kept the table busy through ([\d,]+) attempts at (TRUNCATE|RENAME TABLE to an empty "
        r"copy)",
        output,
    )
    assert busy is not None, output
    # A second of attempts that do not wait (hundreds), then every one of those that do.
    assert int(busy[1].replace(",", "")) > WAITING_ATTEMPTS + 10
    assert "so rows were deleted in batches of 5,000" in output
    assert document["sessions_removed"] == 22_000
    assert list(document["clear_steps"]) == ["count", "prepare", "wait", "batches", "vacuum"]
    # The waiting attempts alone pause 20-80 ms each.
    assert document["clear_steps"]["wait"] > WAITING_ATTEMPTS * 0.02
    assert took < 60
    assert probe.statements > 20
    assert probe.worst < 1.0, f"a session read or save waited {probe.worst:.3f} s"


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_a_locked_session_row_is_left_to_the_guard(settings: Settings) -> None:
    release()
    keys = make_sessions(10)
    settings.FORCE_LOGOUT_VERSION = 2

    with locking_a_session_row(keys[0]):
        output = release()

    assert (
        "1 session locked by other transactions or saved meanwhile was left; the session guard "
        "refuses it"
    ) in output
    assert "removed 9 sessions" in output
    assert list(Session.objects.values_list("session_key", flat=True)) == [keys[0]]
    assert recorded() == [(0, "install"), (1, "markers")]


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_a_site_that_keeps_saving_sessions_does_not_keep_the_final_passes_going(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pass of the final transaction finds what was saved behind the one before: here the
    site saves a session behind every pass, and the passes stop at FINAL_PASSES, leaving the
    last one to the guard."""
    release()
    make_sessions(10)
    settings.FORCE_LOGOUT_VERSION = 2
    remove_next_batch = SessionTable._remove_next_batch
    passes = 0

    def save(key: str) -> None:
        with open_connection() as other, other.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_session VALUES (%s, %s, %s)",
                [key, DATA, timezone.now() + timedelta(days=1)],
            )

    def saving_behind_each_pass(table: SessionTable, last: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal passes
        if not kwargs.get("final") or last != "":
            return remove_next_batch(table, last, *args, **kwargs)
        if passes == 0:
            save("f" * 32)  # between the clear and the final transaction
        result = remove_next_batch(table, last, *args, **kwargs)
        passes += 1
        save(f"{passes:032d}")  # before every key: behind this pass, which has read past it
        return result

    monkeypatch.setattr(SessionTable, "_remove_next_batch", saving_behind_each_pass)
    output = release()

    assert passes == FINAL_PASSES
    assert list(Session.objects.values_list("session_key", flat=True)) == [f"{FINAL_PASSES:032d}"]
    assert (
        "1 session locked by other transactions or saved meanwhile was left; the session guard "
        "refuses it at the next request."
    ) in output
    assert recorded() == [(0, "install"), (1, "markers")]


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_a_locked_session_row_without_the_guard_fails_in_bounded_time(
    settings: Settings,
) -> None:
    release()
    keys = make_sessions(10)
    settings.SESSION_ENGINE = settings.RELEASE_SESSION_ENGINE  # unguarded
    settings.FORCE_LOGOUT_VERSION = 2

    started = time.monotonic()
    with locking_a_session_row(keys[0]), pytest.raises(CommandError) as excinfo:
        release()

    assert time.monotonic() - started < 30
    assert "stayed locked by another transaction through 5 waits of 1 s" in str(excinfo.value)
    assert "End that transaction, or set SESSION_ENGINE to 'release.sessions'" in str(excinfo.value)
    assert recorded() == [(0, "install")]


@pytest.fixture
def cache_down(settings: Settings) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }
    settings.RELEASE_SESSION_ENGINE = CACHE
    settings.SESSION_CACHE_ALIAS = "down"


@pytest.mark.django_db
def test_cache_down_fails_the_release_and_records_nothing(
    installed: None, settings: Settings, cache_down: None
) -> None:
    settings.FORCE_LOGOUT_VERSION = 2

    started = time.monotonic()
    with pytest.raises(CommandError) as excinfo:
        release()

    message = str(excinfo.value)
    assert time.monotonic() - started < 30
    assert "\n" not in message
    assert message.startswith("Removing sessions from cache 'down' (RedisCache)")
    assert "Connection refused" in message
    assert "Check that it is reachable (REDIS_URL, SESSION_FILE_PATH)." in message
    assert recorded() == [(0, "install")]


@pytest.mark.django_db
def test_fail_open_lets_the_release_out_with_a_loud_warning(
    installed: None, settings: Settings, cache_down: None
) -> None:
    settings.FORCE_LOGOUT_VERSION = 2
    settings.FORCE_LOGOUT_FAIL_OPEN = True
    out, err = StringIO(), StringIO()

    call_command("release", "--skip-migrate", stdout=out, stderr=err)

    warning = "WARNING: THE LOGOUT FAILED AND THIS RELEASE GOES OUT ANYWAY"
    assert out.getvalue().count(warning) == 1
    assert warning not in err.getvalue()  # once in the release log, not twice
    assert "The markers stay unapplied, so the next release tries again" in out.getvalue()
    assert recorded() == [(0, "install")]
    assert set(AppliedMarker.objects.values_list("value", flat=True)) == {"1"}

    settings.SESSION_CACHE_ALIAS = "locmem"  # the cache is back
    assert "Decision: log everyone out" in release()
    assert recorded() == [(0, "install"), (1, "markers")]


@pytest.mark.django_db
def test_fail_open_does_not_cover_a_failed_migrate(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import DatabaseError

    settings.FORCE_LOGOUT_FAIL_OPEN = True

    def broken_migrate(*args: object, **kwargs: object) -> None:
        raise DatabaseError("relation does not exist")

    monkeypatch.setattr("release.management.commands.release.call_command", broken_migrate)
    with pytest.raises(CommandError, match="`migrate` failed"):
        call_command("release", stdout=StringIO(), stderr=StringIO())


@pytest.mark.subprocess
def test_a_database_that_does_not_answer_fails_within_the_connect_timeout() -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections and never says a word
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        result = run_manage(
            "release",
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/none",
            PGCONNECT_TIMEOUT="2",
        )
        took = time.monotonic() - started
    finally:
        silent.close()

    assert result.returncode == 1
    assert "CommandError: Cannot connect to database 'default'" in result.stderr
    assert took < 20


def test_the_command_sets_a_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)

    def unreachable(self: object) -> None:
        raise OperationalError("stop here")

    monkeypatch.setattr(
        "django.db.backends.base.base.BaseDatabaseWrapper.ensure_connection", unreachable
    )

    with pytest.raises(CommandError, match="Cannot connect to database 'default': stop here"):
        call_command("release", stdout=StringIO())

    import os

    assert os.environ["PGCONNECT_TIMEOUT"] == "10"


@pytest.mark.django_db
def test_a_logout_touches_nothing_but_sessions(installed: None, settings: Settings) -> None:
    from django.contrib.auth.models import Group, User

    User.objects.create_user("ada", password="x" * 12)
    Group.objects.create(name="staff")
    make_sessions(5)
    own = {
        "django_session",
        "release_logout",
        "release_appliedmarker",
        "release_releaseepoch",
        "release_releaselock",
    }

    def snapshot() -> dict[str, list[tuple[object, ...]]]:
        tables = sorted(set(connection.introspection.table_names()) - own)
        rows = {}
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)} ORDER BY 1")
                rows[table] = [tuple(row) for row in cursor.fetchall()]
        return rows

    before = snapshot()
    settings.FORCE_LOGOUT_VERSION = 2
    release()

    assert Session.objects.count() == 0
    assert snapshot() == before


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_a_big_table_goes_by_truncate(settings: Settings) -> None:
    release()
    fill_sessions(210_000)
    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE TABLE django_session" if vendor() == "mysql" else "ANALYZE django_session"
        )
    db = database("default")
    estimate = db.estimated_rows("django_session")
    settings.FORCE_LOGOUT_VERSION = 2

    output = release()

    assert Session.objects.count() == 0
    assert estimate is not None
    assert estimate > 0
    if estimate > EXACT_COUNT_UP_TO:
        # Counting millions of rows would cost more than emptying the table: the estimate.
        assert f"{emptied_with()} (about {estimate:,} rows, {db.name}'s estimate)." in output
    else:
        assert f"Emptied the table with {emptied_with()} (210,000 rows)." in output
        assert "removed 210,000 sessions" in output
