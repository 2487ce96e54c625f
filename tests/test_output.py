"""What the commands say: JSON for pipelines, the `release` logger, progress on long clears."""

from __future__ import annotations

import json
import logging
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings

from release.report import ProgressReport
from tests.conftest import make_sessions, release, vendor
from tests.login_records.models import CascadeLogin, LoginSession

MARKER_KEYS = {"previous", "current", "status", "applied_by_epoch"}
OUTCOME_KEYS = {
    "version",
    "dry_run",
    "decision",
    "logs_out",
    "reason",
    "epoch",
    "markers",
    "session_engine",
    "store",
    "sessions_removed",
    "notes",
    "seconds",
    "recorded_epoch",
    "steps",
    "clear_steps",
}
HISTORY_KEYS = {
    "epoch",
    "applied_at",
    "kind",
    "logged_out",
    "reason",
    "code_marker",
    "config_marker",
    "session_engine",
    "sessions_removed",
    "duration_seconds",
    "release_version",
    "slug_commit",
    "triggered_by",
}


def run(*args: str) -> tuple[dict[str, Any], str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


@pytest.mark.django_db
def test_release_json_holds_the_summary_alone_on_stdout(settings: Settings) -> None:
    first, chatter = run("release", "--json")
    assert "Operations to perform:" in chatter  # migrate went to stderr

    make_sessions(3)
    settings.FORCE_LOGOUT_VERSION = "2"
    document, _ = run("release", "--json", "--skip-migrate")

    assert set(first) == set(document) == OUTCOME_KEYS
    assert first["decision"] == "install"
    assert document["version"] == 1
    assert document["decision"] == "logout"
    assert document["logs_out"] is True
    assert document["sessions_removed"] == 3
    assert document["recorded_epoch"] == document["epoch"] == 1
    assert document["markers"]["FORCE_LOGOUT_VERSION"] == {
        "previous": "1",
        "current": "2",
        "status": "new",
        "applied_by_epoch": None,
    }
    assert set(document["markers"]["FORCE_LOGOUT_ON_DEPLOY"]) == MARKER_KEYS
    assert document["store"] == "table 'django_session' on database 'default'"

    assert list(first["steps"]) == ["migrate", "lock", "decide", "record"]
    assert list(document["steps"]) == ["lock", "decide", "clear", "finish", "record"]
    assert all(seconds >= 0 for seconds in document["steps"].values())
    assert sum(document["steps"].values()) - document["steps"]["lock"] >= document["seconds"] - 1e-3

    again, _ = run("release", "--json", "--skip-migrate")
    assert again["decision"] == "nothing"
    assert again["recorded_epoch"] is None
    assert again["markers"]["FORCE_LOGOUT_VERSION"]["applied_by_epoch"] == 1


@pytest.mark.django_db(transaction=True)
def test_clear_steps_account_for_a_truncate(settings: Settings) -> None:
    release()
    make_sessions(3)
    settings.FORCE_LOGOUT_VERSION = "2"

    document, _ = run("release", "--json", "--skip-migrate")

    parts = document["clear_steps"]
    if vendor() == "sqlite":  # one DELETE inside the final transaction: no parts to time
        assert parts == {}
        return
    assert list(parts) == ["count", "prepare", "wait", "truncate", "drop"]
    assert all(seconds >= 0 for seconds in parts.values())
    assert sum(parts.values()) <= document["steps"]["clear"] + 1e-3


@pytest.mark.django_db(transaction=True)
def test_clear_steps_account_for_batches(settings: Settings) -> None:
    settings.RELEASE_SESSION_ENGINE = "tests.login_records.backend"
    release()
    keys = make_sessions(3, model=LoginSession)
    CascadeLogin.objects.create(session_id=keys[0])
    settings.FORCE_LOGOUT_VERSION = "2"

    document, _ = run("release", "--json", "--skip-migrate")

    assert document["sessions_removed"] == 3
    assert CascadeLogin.objects.count() == 0
    parts = document["clear_steps"]
    if vendor() == "sqlite":
        assert parts == {}
        return
    assert list(parts) == ["count", "batches", "vacuum"]
    assert sum(parts.values()) <= document["steps"]["clear"] + 1e-3


@pytest.mark.django_db
def test_dry_run_json(installed: None, settings: Settings) -> None:
    make_sessions(2)
    settings.FORCE_LOGOUT_VERSION = 2

    document, _ = run("release", "--json", "--dry-run", "--skip-migrate")

    assert document["dry_run"] is True
    assert document["sessions_removed"] == 2
    assert document["seconds"] is None
    assert document["recorded_epoch"] is None
    assert document["steps"] == {}


@pytest.mark.django_db
def test_status_json(installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEROKU_RELEASE_VERSION", "v9")
    monkeypatch.setenv("FORCE_LOGOUT_ON_DEPLOY", "x")
    call_command("release", "--skip-migrate", stdout=StringIO())

    document, _ = run("release_status", "--json")

    assert set(document) == {"version", "database", "installed", "history", "next_release"}
    assert document["installed"] is True
    assert [entry["epoch"] for entry in document["history"]] == [1, 0]
    assert all(set(entry) == HISTORY_KEYS for entry in document["history"])
    assert document["history"][0]["release_version"] == "v9"
    assert document["history"][1]["release_version"] is None
    assert document["next_release"]["decision"] == "nothing"


@pytest.mark.django_db
def test_force_logout_json(installed: None) -> None:
    document, _ = run("force_logout", "--reason", "why", "--no-input", "--json")

    assert document["decision"] == "logout"
    assert document["reason"] == "an operator forced it: 'why'"


@pytest.mark.django_db
def test_fail_open_json(installed: None, settings: Settings) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }
    settings.RELEASE_SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    settings.SESSION_CACHE_ALIAS = "down"
    settings.FORCE_LOGOUT_FAIL_OPEN = True
    settings.FORCE_LOGOUT_VERSION = 2

    document, warning = run("release", "--json", "--skip-migrate")

    assert document["failed_open"] is True
    assert document["error"].startswith("Removing sessions from cache 'down'")
    assert "THIS RELEASE GOES OUT ANYWAY" in warning


@pytest.mark.django_db
def test_everything_goes_through_the_release_logger(
    installed: None, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.FORCE_LOGOUT_VERSION = 2
    with caplog.at_level(logging.INFO, logger="release"):
        call_command("release", "--skip-migrate", stdout=StringIO())
        settings.FORCE_LOGOUT_VERSION = [2]
        with pytest.raises(Exception, match="must be an int"):
            call_command("release", "--skip-migrate", stdout=StringIO())

    records = [r for r in caplog.records if r.name == "release"]
    info, error = records[0], records[-1]
    assert info.levelname == "INFO"
    assert "decision=logout" in info.getMessage()
    assert info.release["recorded_epoch"] == 1  # type: ignore[attr-defined]
    assert error.levelname == "ERROR"
    assert "FORCE_LOGOUT_VERSION must be an int" in error.getMessage()


def test_progress_reports_at_a_steady_pace(caplog: pytest.LogCaptureFixture) -> None:
    lines: list[str] = []
    report = ProgressReport(lines.append, interval=3600)
    report(10, 100)
    assert lines == [], "nothing before the interval has passed"

    report.interval = 0
    with caplog.at_level(logging.INFO, logger="release"):
        report(50, 100)
        report(80, None)

    assert lines[0].startswith("Progress: removed 50 sessions so far, ")
    assert " a second, about " in lines[0]
    assert lines[0].endswith(" s left.")
    assert "left" not in lines[1]
    assert [r.removed for r in caplog.records] == [50, 80]  # type: ignore[attr-defined]
