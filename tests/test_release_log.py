"""The release log reads like Django's: `migrate`'s own lines, and each event once, whatever the
project's LOGGING."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, child_env

pytestmark = pytest.mark.subprocess

CONSOLE = {"class": "logging.StreamHandler", "formatter": "simple"}
FORMATTERS = {"simple": {"format": "[{levelname}] {name}: {message}", "style": "{"}}
LOGGING = {
    "root at INFO": {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": FORMATTERS,
        "handlers": {"console": CONSOLE},
        "root": {"handlers": ["console"], "level": "INFO"},
    },
    "root at DEBUG, on stdout": {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": FORMATTERS,
        "handlers": {"console": {**CONSOLE, "stream": "ext://sys.stdout"}},
        "root": {"handlers": ["console"], "level": "DEBUG"},
    },
    # heroku/python-getting-started's gettingstarted/settings.py
    "Heroku's Python sample app": {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"simple": {"format": "[{levelname}] {message}", "style": "{"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "simple"}},
        "root": {"handlers": ["console"], "level": "INFO"},
        "loggers": {
            "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "django.request": {"level": "ERROR"},
        },
    },
    "none: Python's last resort": None,
}


def manage(
    *args: str, cwd: Path, settings: str = "example_project.settings", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=cwd,
        env=child_env(DJANGO_SETTINGS_MODULE=settings, PYTHONPATH=f"{cwd}:{ROOT}", **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrate_prints_inside_release_what_it_prints_alone(tmp_path: Path) -> None:
    alone = manage("migrate", "--no-input", cwd=tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/a")
    inside = manage("release", cwd=tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/b")

    assert alone.returncode == inside.returncode == 0, alone.stderr + inside.stderr
    assert "  Applying contenttypes.0001_initial... OK\n" in alone.stdout
    assert inside.stdout.startswith(alone.stdout)
    assert inside.stdout[len(alone.stdout) :].startswith("Markers:\n")


@pytest.mark.parametrize("logging", LOGGING.values(), ids=LOGGING.keys())
def test_each_event_shows_once_whatever_the_logging(
    tmp_path: Path, logging: dict[str, object] | None
) -> None:
    (tmp_path / "with_logging.py").write_text(
        "from example_project.settings import *  # noqa: F403\n"
        f"LOGGING = {logging!r}\n"
        f"LOGGING_CONFIG = {'logging.config.dictConfig' if logging else None!r}\n"
    )
    url = f"sqlite:///{tmp_path}/db.sqlite3"

    def release(**env: str) -> str:
        env.setdefault("DATABASE_URL", url)
        result = manage("release", cwd=tmp_path, settings="with_logging", **env)
        return result.stdout + result.stderr

    first = release()
    logout = release(FORCE_LOGOUT_ON_DEPLOY="once")
    failed = release(DATABASE_URL="postgres://postgres@127.0.0.1:1/none")

    for log in (first, logout):
        assert log.count("Decision: ") == 1, log
        assert log.count("Done: ") == 1, log
        assert "decision=" not in log  # the record of the same event
    assert "Done: removed" in logout
    assert failed.count("Cannot connect to database 'default'") == 1, failed
