"""The release command, in this process, on whichever database the suite runs against."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection
from django.db.models.signals import post_delete, pre_delete
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings

from release.locking import has_session_lock
from release.models import AppliedMarker, Logout, ReleaseEpoch
from tests.conftest import make_sessions, release, vendor


def history() -> list[tuple[str, int, bool]]:
    return list(Logout.objects.order_by("epoch").values_list("kind", "epoch", "logged_out"))


def applied(kind: str) -> set[str]:
    return set(AppliedMarker.objects.filter(kind=kind).values_list("value", flat=True))


@pytest.mark.django_db
class TestFirstInstall:
    def test_records_markers_and_logs_nobody_out(self) -> None:
        make_sessions(3)

        output = release()

        assert Session.objects.count() == 3
        assert history() == [("install", 0, False)]
        assert applied("code") == {"1"}
        assert applied("config") == set()
        assert "FORCE_LOGOUT_VERSION: unset -> '1', recorded as applied by the first" in output
        assert "Decision: record the markers; this is the first release" in output
        assert "--logout-on-install would" in output

    def test_records_config_marker_present_at_install(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("FORCE_LOGOUT_ON_DEPLOY", "2026-11-25")
        make_sessions(2)

        release()
        again = release()

        assert Session.objects.count() == 2
        assert applied("config") == {"2026-11-25"}
        assert "Decision: nobody is logged out" in again

    def test_logout_on_install(self) -> None:
        make_sessions(4)

        output = release("--logout-on-install")

        assert Session.objects.count() == 0
        assert history() == [("install", 1, True)]
        assert "removed 4 sessions" in output
        assert Logout.objects.get().sessions_removed == 4

    def test_logout_on_install_has_no_effect_later(self, installed: None) -> None:
        make_sessions(2)

        release("--logout-on-install")

        assert Session.objects.count() == 2
        assert history() == [("install", 0, False)]

    def test_without_code_marker(self, settings: Settings) -> None:
        del settings.FORCE_LOGOUT_VERSION

        output = release()

        assert applied("code") == set()
        assert "FORCE_LOGOUT_VERSION: unset (unchanged), unset: never triggers" in output


@pytest.mark.django_db
class TestCodeMarker:
    def test_bump_logs_everyone_out_once(self, installed: None, settings: Settings) -> None:
        make_sessions(5)
        settings.FORCE_LOGOUT_VERSION = 2

        output = release()

        assert Session.objects.count() == 0
        assert history() == [("install", 0, False), ("markers", 1, True)]
        assert "FORCE_LOGOUT_VERSION: '1' -> '2', new: never applied here" in output
        assert "FORCE_LOGOUT_VERSION is '2', which this database has never applied" in output
        assert "Sessions: django.contrib.sessions.backends.db, table 'django_session'" in output
        assert "removed 5 sessions, recorded in the history as epoch 1" in output

        make_sessions(2)
        redeploy = release()

        assert Session.objects.count() == 2
        assert len(history()) == 2
        assert "FORCE_LOGOUT_VERSION: '2' (unchanged), already applied here" in redeploy
        assert "Done: nothing recorded" in redeploy

    def test_rollback_to_applied_value_logs_nobody_out(
        self, installed: None, settings: Settings
    ) -> None:
        settings.FORCE_LOGOUT_VERSION = 2
        release()
        make_sessions(3)
        settings.FORCE_LOGOUT_VERSION = 1

        output = release()

        assert Session.objects.count() == 3
        assert "FORCE_LOGOUT_VERSION: '2' -> '1', already applied here" in output
        assert [kind for kind, _, _ in history()] == ["install", "markers"]

    def test_int_and_str_are_the_same_value(self, installed: None, settings: Settings) -> None:
        make_sessions(1)
        settings.FORCE_LOGOUT_VERSION = " 1 "

        release()

        assert Session.objects.count() == 1

    def test_removing_the_setting_logs_nobody_out(
        self, installed: None, settings: Settings
    ) -> None:
        make_sessions(1)
        del settings.FORCE_LOGOUT_VERSION

        output = release()

        assert Session.objects.count() == 1
        assert "FORCE_LOGOUT_VERSION: '1' -> unset, unset: never triggers" in output

    def test_invalid_value_fails_with_what_to_do(self, installed: None, settings: Settings) -> None:
        make_sessions(1)
        settings.FORCE_LOGOUT_VERSION = [2]

        with pytest.raises(CommandError) as excinfo:
            call_command("release", "--skip-migrate", skip_checks=True, stdout=StringIO())

        assert "FORCE_LOGOUT_VERSION must be an int or a non-empty str, not [2]" in str(
            excinfo.value
        )
        assert excinfo.value.returncode == 1
        assert Session.objects.count() == 1
        assert len(history()) == 1


@pytest.mark.django_db
class TestConfigMarker:
    def test_new_value_logs_out_once(
        self, installed: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        make_sessions(3)
        monkeypatch.setenv("FORCE_LOGOUT_ON_DEPLOY", "incident-42")

        output = release()

        assert Session.objects.count() == 0
        assert "FORCE_LOGOUT_ON_DEPLOY: unset -> 'incident-42', new" in output
        make_sessions(1)
        release()
        assert Session.objects.count() == 1

    def test_surrounding_white_space_is_ignored(
        self, installed: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("FORCE_LOGOUT_ON_DEPLOY", "incident-42")
        release()
        make_sessions(2)
        monkeypatch.setenv("FORCE_LOGOUT_ON_DEPLOY", "  incident-42\n")

        release()

        assert Session.objects.count() == 2
        assert applied("config") == {"incident-42"}

    @pytest.mark.parametrize("value", ["", "   ", "\n\t"])
    def test_empty_never_triggers(
        self, installed: None, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        make_sessions(2)
        monkeypatch.setenv("FORCE_LOGOUT_ON_DEPLOY", value)

        output = release()

        assert Session.objects.count() == 2
        assert "FORCE_LOGOUT_ON_DEPLOY: unset (unchanged), unset: never triggers" in output

    def test_unset_then_old_value_again_logs_nobody_out(
        self, installed: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("FORCE_LOGOUT_ON_DEPLOY", "a")
        release()
        monkeypatch.delenv("FORCE_LOGOUT_ON_DEPLOY")
        release()
        make_sessions(2)
        monkeypatch.setenv("FORCE_LOGOUT_ON_DEPLOY", "a")

        release()

        assert Session.objects.count() == 2
        assert [kind for kind, _, _ in history()] == ["install", "markers"]

    def test_both_markers_at_once_log_out_once(
        self, installed: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        make_sessions(2)
        settings.FORCE_LOGOUT_VERSION = "2"
        monkeypatch.setenv("FORCE_LOGOUT_ON_DEPLOY", "b")

        output = release()

        assert history() == [("install", 0, False), ("markers", 1, True)]
        assert applied("code") == {"1", "2"}
        assert applied("config") == {"b"}
        assert (
            "FORCE_LOGOUT_VERSION is '2', which this database has never applied and "
            "FORCE_LOGOUT_ON_DEPLOY is 'b', which this database has never applied"
        ) in output


@pytest.mark.django_db
class TestReleaseEpochs:
    """Which epoch each release's processes enforce, for the session guard."""

    def epochs(self) -> dict[tuple[str | None, str | None], int]:
        return {
            (row.code_marker, row.config_marker): row.epoch for row in ReleaseEpoch.objects.all()
        }

    def test_old_release_keeps_its_epoch_until_it_is_released_again(
        self, installed: None, settings: Settings
    ) -> None:
        settings.FORCE_LOGOUT_VERSION = 2
        release()
        assert self.epochs() == {("1", None): 0, ("2", None): 1}

        settings.FORCE_LOGOUT_VERSION = 1
        release()  # a rollback to the first release
        assert self.epochs() == {("1", None): 1, ("2", None): 1}


@pytest.mark.django_db
class TestFailures:
    # Renaming a table commits on MariaDB, so this test runs outside the test transaction.
    @pytest.mark.django_db(transaction=True)
    def test_failed_delete_records_nothing(self, installed: None, settings: Settings) -> None:
        make_sessions(2)
        settings.FORCE_LOGOUT_VERSION = 2
        with connection.schema_editor() as editor:
            editor.alter_db_table(Session, "django_session", "django_session_elsewhere")
        try:
            with pytest.raises(CommandError) as excinfo:
                release()
        finally:
            with connection.schema_editor() as editor:
                editor.alter_db_table(Session, "django_session_elsewhere", "django_session")

        message = str(excinfo.value)
        assert message.startswith("The database failed:")
        assert "Nobody was logged out and nothing was recorded." in message
        assert "heroku releases:retry" in message
        assert history() == [("install", 0, False)]
        assert applied("code") == {"1"}
        assert Session.objects.count() == 2

        release()  # the next good release applies it
        assert Session.objects.count() == 0
        assert applied("code") == {"1", "2"}

    def test_failure_after_the_delete_records_nothing(
        self, installed: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        make_sessions(3)
        settings.FORCE_LOGOUT_VERSION = 2

        def fail(*args: object, **kwargs: object) -> None:
            raise DatabaseError("disk full")

        # The last write of the transaction, after the delete and the history record.
        with monkeypatch.context() as patched:
            patched.setattr("release.apply._record_markers_epoch", fail)
            with pytest.raises(CommandError, match="disk full"):
                release()

        assert history() == [("install", 0, False)]
        assert applied("code") == {"1"}
        if has_session_lock("default"):
            # The bulk of the clear committed in steps before the final transaction.
            assert Session.objects.count() == 0
        else:
            assert Session.objects.count() == 3
        make_sessions(1)
        assert "removed" in release()  # the next release logs out again, and records it
        assert history() == [("install", 0, False), ("markers", 1, True)]

    def test_no_row_by_row_delete_with_a_senderless_receiver(
        self, installed: None, settings: Settings
    ) -> None:
        """A receiver connected without a sender makes QuerySet.delete() load every row."""
        seen: list[object] = []

        def receiver(sender: object, **kwargs: object) -> None:
            seen.append(sender)

        def session_statements(rows: int, version: int) -> list[str]:
            make_sessions(rows)
            settings.FORCE_LOGOUT_VERSION = version
            with CaptureQueriesContext(connection) as queries:
                release()
            assert Session.objects.count() == 0
            return [q["sql"] for q in queries.captured_queries if "django_session" in q["sql"]]

        pre_delete.connect(receiver)
        post_delete.connect(receiver)
        try:
            few = session_statements(20, 2)
            many = session_statements(400, 3)
        finally:
            pre_delete.disconnect(receiver)
            post_delete.disconnect(receiver)

        assert seen == []
        assert len(few) == len(many) <= 6
        assert not [sql for sql in many if "session_data" in sql]


@pytest.mark.django_db(databases=["default", "pipeline"])
def test_pipeline_each_database_applies_each_value_once(settings: Settings) -> None:
    """Staging and production share the code but not the database."""
    settings.TEST_ROUTE_TO = "default"
    release()
    settings.TEST_ROUTE_TO = "pipeline"
    release()
    make_sessions(2, alias="default")
    make_sessions(3, alias="pipeline")
    settings.FORCE_LOGOUT_VERSION = 2

    settings.TEST_ROUTE_TO = "default"
    staging = release()
    assert "removed 2 sessions" in staging
    assert Session.objects.using("pipeline").count() == 3

    settings.TEST_ROUTE_TO = "pipeline"
    production = release()
    assert "removed 3 sessions" in production
    assert "removed" not in release()

    assert Logout.objects.using("default").count() == 2
    assert Logout.objects.using("pipeline").count() == 2


@pytest.mark.django_db
class TestCustomEngine:
    @pytest.fixture(autouse=True)
    def engine(self, settings: Settings) -> None:
        settings.RELEASE_SESSION_ENGINE = "tests.custom_sessions.backend"

    def test_removes_rows_of_the_custom_model(self, installed: None, settings: Settings) -> None:
        from tests.custom_sessions.models import UserSession

        make_sessions(4, model=UserSession)
        make_sessions(1)
        settings.FORCE_LOGOUT_VERSION = 2

        output = release()

        assert UserSession.objects.count() == 0
        assert Session.objects.count() == 1  # not this engine's table
        assert "tests.custom_sessions.backend, table 'custom_sessions_usersession'" in output
        assert "removed 4 sessions" in output


@pytest.mark.django_db
class TestUnsupportedEngines:
    def test_refuses_a_logout_it_cannot_do(self, installed: None, settings: Settings) -> None:
        make_sessions(1)
        settings.RELEASE_SESSION_ENGINE = "tests.unknown_engine"
        settings.FORCE_LOGOUT_VERSION = 2

        with pytest.raises(CommandError) as excinfo:
            release()

        assert "The session engine 'tests.unknown_engine' is not one of Django's engines" in str(
            excinfo.value
        )
        assert "heroku releases:retry" in str(excinfo.value)
        assert history() == [("install", 0, False)]
        assert applied("code") == {"1"}
        assert Session.objects.count() == 1

    def test_nothing_to_do_is_fine(self, installed: None, settings: Settings) -> None:
        settings.RELEASE_SESSION_ENGINE = "tests.unknown_engine"

        assert "Decision: nobody is logged out" in release()

    def test_engine_that_does_not_import(self, installed: None, settings: Settings) -> None:
        settings.RELEASE_SESSION_ENGINE = "no.such.engine"
        settings.FORCE_LOGOUT_VERSION = 2

        with pytest.raises(CommandError, match=r"'no\.such\.engine' cannot be imported"):
            release()


@pytest.mark.django_db
class TestDryRun:
    def test_changes_nothing(self, installed: None, settings: Settings) -> None:
        make_sessions(3)
        settings.FORCE_LOGOUT_VERSION = 2

        output = release("--dry-run")

        assert "Dry run: would remove 3 sessions. Nothing was changed." in output
        assert Session.objects.count() == 3
        assert len(history()) == 1
        assert ReleaseEpoch.objects.count() == 1

    def test_plans_migrations_without_applying_them(self) -> None:
        out = StringIO()
        call_command("release", "--dry-run", stdout=out)

        assert "Planned operations:" in out.getvalue()
        assert "Dry run: nothing was changed." in out.getvalue()
        assert history() == []

    def test_nothing_to_do(self, installed: None) -> None:
        assert "Dry run: nothing was changed." in release("--dry-run")


@pytest.mark.django_db
def test_migrates_first() -> None:
    out = StringIO()
    call_command("release", stdout=out)

    assert out.getvalue().startswith("Operations to perform:")
    assert history() == [("install", 0, False)]


@pytest.mark.django_db
def test_failing_migrate_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_migrate(*args: object, **kwargs: object) -> None:
        raise DatabaseError("could not connect to server")

    monkeypatch.setattr("release.management.commands.release.call_command", broken_migrate)

    with pytest.raises(CommandError) as excinfo:
        call_command("release", stdout=StringIO())

    assert str(excinfo.value).startswith("`migrate` failed: could not connect to server.")
    assert history() == []


@pytest.mark.django_db
def test_records_dyno_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEROKU_RELEASE_VERSION", "v42")
    monkeypatch.setenv("HEROKU_SLUG_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("DYNO", "release.1234")

    release()

    record = Logout.objects.get()
    assert record.release_version == "v42"
    assert record.slug_commit == "0123456789abcdef0123456789abcdef01234567"
    assert record.triggered_by == "release release.1234"


@pytest.mark.skipif(vendor() != "mysql", reason="needs MariaDB, to be taken for Oracle's MySQL")
@pytest.mark.django_db
def test_oracle_mysql_is_refused_before_anything_is_removed(
    installed: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No MySQL server is packaged here: MariaDB stands for one, as Django tells them apart."""
    monkeypatch.setattr(connection, "mysql_is_mariadb", False)
    make_sessions(2)
    settings.FORCE_LOGOUT_VERSION = 2

    with pytest.raises(CommandError, match=r"release\.E006") as checked:
        call_command("release", "--skip-migrate", skip_checks=False, stdout=StringIO())
    with pytest.raises(CommandError) as released:
        release()

    assert "is MySQL" in str(checked.value)
    assert "not MariaDB" in str(released.value)
    assert "Nobody was logged out and nothing was recorded." in str(released.value)
    assert Session.objects.count() == 2
    assert history() == [("install", 0, False)]
