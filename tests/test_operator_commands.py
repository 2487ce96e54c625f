"""release_status and force_logout, and the system checks."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings

from release.checks import check_code_marker, check_session_engine
from release.models import AppliedMarker, Logout
from tests.conftest import make_sessions, release


def status() -> str:
    out = StringIO()
    call_command("release_status", stdout=out)
    return out.getvalue()


def force(*args: str) -> str:
    out = StringIO()
    call_command("force_logout", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
class TestStatus:
    def test_before_the_first_release(self) -> None:
        output = status()

        assert "History on database 'default', newest first:" in output
        assert "(empty: no release with the tool has run here yet)" in output
        assert "Decision: record the markers; this is the first release" in output

    def test_lists_history_newest_first_with_dyno_metadata(
        self, installed: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HEROKU_RELEASE_VERSION", "v7")
        monkeypatch.setenv("HEROKU_SLUG_COMMIT", "abcdef0123456789")
        make_sessions(3)
        settings.FORCE_LOGOUT_VERSION = 2
        release()
        settings.FORCE_LOGOUT_VERSION = 3

        output = status()

        second, first = output.index("epoch 1 "), output.index("epoch 0 ")
        assert second < first
        assert "A marker changed  FORCE_LOGOUT_VERSION='2'" in output
        assert "logged out 3 sessions  in " in output
        assert "release v7 commit abcdef012345" in output
        assert "why: FORCE_LOGOUT_VERSION is '2', which this database has never applied" in output
        assert "nobody logged out" in output
        assert "Next release, with the markers of this process:" in output
        assert "FORCE_LOGOUT_VERSION: '2' -> '3', new: never applied here" in output
        assert "Dry run: would remove 0 sessions. Nothing was changed." in output

    def test_limit(self, installed: None, settings: Settings) -> None:
        settings.FORCE_LOGOUT_VERSION = 2
        release()
        out = StringIO()

        call_command("release_status", "--limit", "1", stdout=out)

        assert "epoch 1 " in out.getvalue()
        assert "epoch 0 " not in out.getvalue()

    def test_invalid_marker(self, installed: None, settings: Settings) -> None:
        settings.FORCE_LOGOUT_VERSION = None

        with pytest.raises(CommandError, match="FORCE_LOGOUT_VERSION must be an int"):
            call_command("release_status", skip_checks=True, stdout=StringIO())


@pytest.mark.django_db
class TestForceLogout:
    def test_logs_everyone_out_and_records_the_reason(
        self, installed: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DYNO", "run.4321")
        make_sessions(6)

        output = force("--reason", "leaked admin cookie", "--no-input")

        assert Session.objects.count() == 0
        record = Logout.objects.get(epoch=1)
        assert record.kind == "forced"
        assert record.reason == "an operator forced it: 'leaked admin cookie'"
        assert record.sessions_removed == 6
        assert record.triggered_by == "force_logout run.4321"
        assert "removed 6 sessions, recorded in the history as epoch 1" in output
        assert "Restart the web dynos now (`heroku ps:restart`)" in output

    def test_leaves_markers_alone(self, installed: None, settings: Settings) -> None:
        settings.FORCE_LOGOUT_VERSION = 2

        force("--reason", "x", "--no-input")

        assert set(AppliedMarker.objects.values_list("value", flat=True)) == {"1"}
        make_sessions(1)
        release()  # the new code marker still logs out on the next release
        assert Session.objects.count() == 0

    def test_other_marker_values_do_not_change_what_status_calls_previous(
        self, installed: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """From a laptop with other values: the markers the last release ran with stay the
        previous ones."""
        with monkeypatch.context() as laptop:
            laptop.setenv("FORCE_LOGOUT_ON_DEPLOY", "laptop")
            settings.FORCE_LOGOUT_VERSION = 99
            force("--reason", "x", "--no-input")
        settings.FORCE_LOGOUT_VERSION = 1

        output = status()

        assert "FORCE_LOGOUT_VERSION: '1' (unchanged)" in output
        assert "FORCE_LOGOUT_ON_DEPLOY: unset (unchanged)" in output

    def test_asks_for_confirmation(self, installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
        make_sessions(2)
        monkeypatch.setattr("builtins.input", lambda prompt: "no")

        with pytest.raises(CommandError, match=r"Cancelled: nobody was logged out\."):
            force("--reason", "x")

        assert Session.objects.count() == 2
        monkeypatch.setattr("builtins.input", lambda prompt: "yes")
        force("--reason", "x")
        assert Session.objects.count() == 0

    def test_needs_a_reason(self, installed: None) -> None:
        with pytest.raises(CommandError, match="Give a reason, for the history"):
            force("--reason", "   ", "--no-input")
        with pytest.raises(CommandError, match="--reason"):
            force("--no-input")

    def test_before_the_first_release(self, db: None) -> None:
        make_sessions(1)

        with pytest.raises(CommandError, match="release --logout-on-install"):
            force("--reason", "x", "--no-input")

        assert Session.objects.count() == 1
        assert not Logout.objects.exists()

    def test_unsupported_engine(self, installed: None, settings: Settings) -> None:
        settings.RELEASE_SESSION_ENGINE = "tests.unknown_engine"

        with pytest.raises(CommandError, match=r"tests\.unknown_engine"):
            force("--reason", "x", "--no-input")

        assert Logout.objects.count() == 1


class TestChecks:
    @pytest.mark.parametrize("value", [1, "2026-11", " x "])
    def test_valid_code_marker(self, settings: Settings, value: object) -> None:
        settings.FORCE_LOGOUT_VERSION = value

        assert check_code_marker() == []

    def test_absent_code_marker(self, settings: Settings) -> None:
        del settings.FORCE_LOGOUT_VERSION

        assert check_code_marker() == []

    @pytest.mark.parametrize("value", [None, True, 1.5, [1], "", "  "])
    def test_invalid_code_marker(self, settings: Settings, value: object) -> None:
        settings.FORCE_LOGOUT_VERSION = value

        errors = check_code_marker()

        assert [error.id for error in errors] == ["release.E001"]
        assert repr(value) in errors[0].msg
        assert errors[0].hint is not None
        assert "FORCE_LOGOUT_VERSION to an int" in errors[0].hint

    def test_supported_engine(self) -> None:
        assert check_session_engine() == []

    def test_unsupported_engine(self, settings: Settings) -> None:
        settings.RELEASE_SESSION_ENGINE = "tests.unknown_engine"

        warnings = check_session_engine()

        assert [warning.id for warning in warnings] == ["release.W001"]
        assert "'tests.unknown_engine'" in warnings[0].msg

    def test_checks_run_with_the_command(self, db: None, settings: Settings) -> None:
        settings.FORCE_LOGOUT_VERSION = [1]

        with pytest.raises(CommandError, match=r"release\.E001"):
            call_command("release", "--skip-migrate", skip_checks=False, stdout=StringIO())
