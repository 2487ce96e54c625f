"""The release phase as Heroku runs it: `manage.py` in a child process, on the test database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from release import locking, vendors
from release.exceptions import ReleaseError
from release.models import Logout
from tests.conftest import (
    ROOT,
    child_env,
    make_sessions,
    only_with_session_lock,
    release,
    run_manage,
)
from tests.procfile import procfile

pytestmark = pytest.mark.subprocess


@pytest.mark.django_db(transaction=True)
def test_procfile_release_line() -> None:
    command = procfile()["release"]
    make_sessions(2)

    first = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert "Decision: record the markers" in first.stdout

    bumped = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=child_env(FORCE_LOGOUT_ON_DEPLOY="deploy-2"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bumped.returncode == 0, bumped.stderr
    epoch = Logout.objects.latest().epoch
    assert f"removed 2 sessions, recorded in the history as epoch {epoch}" in bumped.stdout
    assert Session.objects.count() == 0
    assert list(Logout.objects.order_by("epoch").values_list("kind", flat=True)) == [
        "install",
        "markers",
    ]


def test_dry_run_on_a_fresh_database_creates_nothing(tmp_path: Path) -> None:
    database = tmp_path / "fresh.sqlite3"
    url = f"sqlite:///{database}"

    result = run_manage("release", "--dry-run", DATABASE_URL=url)
    status = run_manage("release_status", DATABASE_URL=url)

    assert result.returncode == 0, result.stderr
    assert "Planned operations:" in result.stdout
    assert "Apply all migrations" not in result.stdout
    assert "Decision: record the markers; this is the first release" in result.stdout
    assert "Dry run: nothing was changed." in result.stdout
    tables = sqlite3.connect(database).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == []
    assert status.returncode == 0, status.stderr
    assert "the release app's tables do not exist on database 'default' yet" in status.stdout


def test_unreachable_database_fails_the_release_with_what_to_do() -> None:
    started = time.monotonic()

    result = run_manage("release", DATABASE_URL="postgres://postgres@127.0.0.1:1/none")

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("CommandError: ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("CommandError: Cannot connect to database 'default': ")
    assert result.stderr.count("Cannot connect to database") == 1  # once, not logged again
    assert "Check DATABASE_URL and that the database is running." in result.stderr
    assert "Nobody was logged out and nothing was recorded." in result.stderr
    assert "heroku releases:retry" in result.stderr
    assert time.monotonic() - started < 60


def test_bad_usage_exits_2() -> None:
    result = run_manage("release", "--no-such-flag")

    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in result.stderr


def waiting_for_release_lock(observer: BaseDatabaseWrapper) -> int:
    """How many connections wait for the release lock right now."""
    with observer.cursor() as cursor:
        if observer.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
        else:
            cursor.execute(
                "SELECT count(*) FROM information_schema.processlist "
                "WHERE info LIKE 'SELECT GET_LOCK(%%'"
            )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def holding_the_release_lock(observer: BaseDatabaseWrapper) -> Iterator[None]:
    with observer.cursor() as cursor:
        if observer.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_lock(%s)", [vendors.PostgreSQL.LOCK_KEY])
        else:
            cursor.execute("SELECT GET_LOCK(%s, 0)", [vendors.MariaDB("default").lock_name()])
    try:
        yield
    finally:
        with observer.cursor() as cursor:
            if observer.vendor == "postgresql":
                cursor.execute("SELECT pg_advisory_unlock(%s)", [vendors.PostgreSQL.LOCK_KEY])
            else:
                cursor.execute("SELECT RELEASE_LOCK(%s)", [vendors.MariaDB("default").lock_name()])


def start_all_at_once(
    commands: list[tuple[list[str], dict[str, str]]],
) -> list[tuple[int, str, str]]:
    """Start the commands while holding the release lock, so that all of them surely wait
    for it together; then let them go. Returns (exit code, stdout, stderr) of each."""
    observer = connections.create_connection("default")
    try:
        with holding_the_release_lock(observer):
            children = [
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for command, env in commands
            ]
            deadline = time.monotonic() + 90
            while waiting_for_release_lock(observer) < len(children):
                if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                    for child in children:
                        child.kill()
                    outputs = [child.communicate() for child in children]
                    pytest.fail(f"The commands never all waited for the lock: {outputs}")
                time.sleep(0.05)
    finally:
        observer.close()
    results = []
    for child in children:
        stdout, stderr = child.communicate(timeout=300)
        results.append((child.returncode, stdout, stderr))
    return results


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def on_dyno(name: str, **env: str) -> dict[str, str]:
    """A child's environment naming its dyno; CI keeps the example's Heroku-only TLS off."""
    return child_env(DYNO=name, CI="true", **env)


needs_session_lock = only_with_session_lock(
    "commands waiting for each other are tested on PostgreSQL and MariaDB"
)


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_eight_releases_at_once_log_out_once() -> None:
    release()
    make_sessions(50)
    commands = [
        (
            manage("release", "--skip-migrate"),
            on_dyno(f"release.{n}", FORCE_LOGOUT_ON_DEPLOY="incident-7"),
        )
        for n in range(1, 9)
    ]

    results = start_all_at_once(commands)

    assert [code for code, _, _ in results] == [0] * 8, results
    winners = [out for _, out, _ in results if "removed 50 sessions" in out]
    assert len(winners) == 1
    winner = Logout.objects.latest()
    assert winner.kind == "markers"
    for _, out, _ in results:
        if out not in winners:
            assert "Decision: nobody is logged out" in out
            line = next(x for x in out.splitlines() if "FORCE_LOGOUT_ON_DEPLOY:" in x)
            assert "'incident-7'" in line
            assert f"already applied here (epoch {winner.epoch}, " in line
            assert f"by {winner.triggered_by})" in out
    assert Logout.objects.count() == 2
    assert Session.objects.count() == 0


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_a_release_racing_a_forced_logout() -> None:
    release()
    make_sessions(20)
    commands = [
        (
            manage("release", "--skip-migrate"),
            on_dyno("release.1", FORCE_LOGOUT_ON_DEPLOY="new"),
        ),
        (
            manage("force_logout", "--reason", "incident", "--no-input"),
            on_dyno("run.1", FORCE_LOGOUT_ON_DEPLOY="new"),
        ),
    ]

    results = start_all_at_once(commands)

    assert [code for code, _, _ in results] == [0, 0], results
    records = list(Logout.objects.order_by("epoch").values_list("epoch", "kind"))
    assert sorted(kind for _, kind in records) == ["forced", "install", "markers"]
    epochs = [epoch for epoch, _ in records]
    assert epochs[0] == 0 < epochs[1] < epochs[2], "two logouts, two epochs, in order"
    assert sum("removed 20 sessions" in out for _, out, _ in results) == 1
    assert Session.objects.count() == 0


@needs_session_lock
@pytest.mark.django_db(transaction=True)
def test_waiting_too_long_for_the_release_lock_says_so() -> None:
    observer = connections.create_connection("default")
    try:
        with (
            holding_the_release_lock(observer),
            pytest.raises(ReleaseError) as excinfo,
            locking.one_at_a_time("default", "test", wait=0.3),
        ):
            pass
    finally:
        observer.close()

    assert "has held the release lock on database 'default' for over 0 s" in str(excinfo.value)
    with locking.one_at_a_time("default", "test", wait=0.3):
        pass  # free again
