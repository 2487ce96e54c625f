"""A database that is down, or cannot be written, fails the release with one line that says so,
whatever the database, even where Django's own system checks would query it first."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_manage

pytestmark = pytest.mark.subprocess

UNREACHABLE = {
    "PostgreSQL": "postgres://postgres@127.0.0.1:1/release",
    "MariaDB": "mysql://root@127.0.0.1:1/release",
    "SQLite in a directory that does not exist": "sqlite:////nonexistent-directory/db.sqlite3",
}


def one_clear_line(stderr: str, expected: str) -> None:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("CommandError: ")]
    assert len(errors) == 1, stderr
    assert expected in errors[0]
    assert "Nobody was logged out and nothing was recorded." in errors[0]


@pytest.mark.parametrize("url", UNREACHABLE.values(), ids=UNREACHABLE.keys())
@pytest.mark.parametrize("command", ["release", "force_logout", "release_status"])
def test_an_unreachable_database_is_one_line(url: str, command: str) -> None:
    args = ["--reason", "test", "--no-input"] if command == "force_logout" else []
    if url.startswith("mysql"):
        pytest.importorskip("MySQLdb", reason="the MariaDB driver is not installed")

    result = run_manage(command, *args, DATABASE_URL=url, FORCE_LOGOUT_ON_DEPLOY="new")

    assert result.returncode == 1
    one_clear_line(result.stderr, "Cannot connect to database 'default'")


def test_an_unwritable_sqlite_database_is_one_line(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    url = f"sqlite:///{database}"
    assert run_manage("release", DATABASE_URL=url).returncode == 0
    # Immutable, so that not even root can write it (file permissions do not stop root).
    if subprocess.run(["chattr", "+i", str(database)], check=False).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        result = run_manage("release", DATABASE_URL=url, FORCE_LOGOUT_ON_DEPLOY="new")
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=True)

    assert result.returncode == 1
    one_clear_line(result.stderr, "attempt to write a readonly database")
