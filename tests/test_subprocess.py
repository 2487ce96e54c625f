"""The release phase as Heroku runs it: `manage.py` in a child process, on the test database."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from release.models import Logout, ReleaseLock
from tests.conftest import ROOT, child_env, make_sessions, release, run_manage, vendor

pytestmark = pytest.mark.subprocess


def procfile_command(process_type: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_-]+):\s*(.+)", line.strip())
        if match and match.group(1) == process_type:
            return match.group(2)
    raise AssertionError(f"The Procfile has no {process_type!r} line.")


@pytest.mark.django_db(transaction=True)
def test_procfile_release_line() -> None:
    command = procfile_command("release")
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
    assert "removed 2 sessions, recorded in the history as epoch 1" in bumped.stdout
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
    assert result.stderr.startswith("CommandError: `migrate` failed:")
    assert "Nobody was logged out and nothing was recorded." in result.stderr
    assert "heroku releases:retry" in result.stderr
    assert time.monotonic() - started < 60


def test_bad_usage_exits_2() -> None:
    result = run_manage("release", "--no-such-flag")

    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in result.stderr


def waiting_on_lock_row(observer: BaseDatabaseWrapper) -> int:
    """How many connections are waiting to update the release lock row right now.

    Asked on a connection of its own: inside a transaction, PostgreSQL's statistics views and
    MariaDB's process list can show a stale picture.
    """
    with observer.cursor() as cursor:
        if observer.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE \"release_releaselock\"%%'"
            )
        else:
            cursor.execute(
                "SELECT count(*) FROM information_schema.processlist "
                "WHERE info LIKE 'UPDATE `release_releaselock`%%'"
            )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.django_db(transaction=True)
def test_two_releases_at_once_log_out_once() -> None:
    if vendor() not in {"postgresql", "mysql"}:
        pytest.skip("row locks between processes are tested on PostgreSQL and MariaDB")
    release()
    make_sessions(5)
    env = child_env(FORCE_LOGOUT_ON_DEPLOY="incident-7")
    command = [sys.executable, "manage.py", "release", "--skip-migrate"]
    observer = connections.create_connection("default")

    with transaction.atomic():
        # Hold the release lock so that both commands are surely inside at once.
        ReleaseLock.objects.filter(pk=1).update(holder="test")
        children = [
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        deadline = time.monotonic() + 60
        while waiting_on_lock_row(observer) < 2:
            if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                for child in children:
                    child.kill()
                pytest.fail(
                    f"The commands never waited for the lock: {[c.communicate() for c in children]}"
                )
            time.sleep(0.05)

    observer.close()
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    stdouts = sorted(stdout for stdout, _ in outputs)
    assert sum("removed 5 sessions" in out for out in stdouts) == 1
    assert sum("Decision: nobody is logged out" in out for out in stdouts) == 1
    assert Logout.objects.count() == 2
    assert Session.objects.count() == 0
