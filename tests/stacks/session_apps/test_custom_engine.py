"""A custom engine whose store has no get_model_class() and whose module holds no session model
(`custom_engine`), guarded, with Django's SessionMiddleware: RELEASE_SESSION_MODEL names its
model. Runs in the default `pytest` run (tests.settings), and in `pytest tests/stacks/session_apps`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session as DjangoSession
from django.core.management import CommandError
from django.db.models import Model
from django.utils import timezone
from pytest_django.fixtures import Settings

from release.checks import check_session_engine
from tests.custom_sessions.models import UserSession
from tests.stacks.session_apps import custom_engine
from tests.stacks.session_apps.lifecycle import (
    LOGOUT,
    LifecycleTests,
    Site,
    make_people,
    rows,
)

ENGINE = "tests.stacks.session_apps.custom_engine"
MODEL = "custom_sessions.UserSession"
ORPHAN = "tests.stacks.session_apps.orphan_engine"


@pytest.fixture
def engine(settings: Settings) -> str:
    settings.RELEASE_SESSION_ENGINE = ENGINE
    settings.RELEASE_SESSION_MODEL = MODEL
    return ENGINE


@pytest.fixture
def model() -> type[Model]:
    return UserSession


class TestLifecycle(LifecycleTests):
    pass


def test_the_engine_gives_no_way_to_its_model() -> None:
    assert not hasattr(custom_engine.SessionStore, "get_model_class")
    assert not [value for value in vars(custom_engine).values() if value is UserSession]


@pytest.mark.django_db
def test_without_the_setting_its_sessions_cannot_be_found(settings: Settings) -> None:
    settings.RELEASE_SESSION_ENGINE = ENGINE
    site = Site(settings)
    alice = make_people()["alice"]
    site.release_phase(1)
    alice.sign_in(site.boot(1))

    warnings = check_session_engine()

    assert [warning.id for warning in warnings] == ["release.W001"]
    assert f"'{ENGINE}'" in warnings[0].msg
    assert "RELEASE_SESSION_MODEL" in warnings[0].msg
    with pytest.raises(CommandError, match="RELEASE_SESSION_MODEL"):
        site.release_phase(2)
    assert rows(UserSession) == 1


@pytest.mark.django_db
def test_the_setting_names_the_table_the_release_empties(engine: str, settings: Settings) -> None:
    """Django's own session table, still installed, is not the one this engine uses: the
    release leaves it alone."""
    assert check_session_engine() == []
    site = Site(settings)
    people = make_people()
    site.release_phase(1)
    web = site.boot(1)
    for visitor in people.values():
        visitor.sign_in(web)
    DjangoSession.objects.create(
        session_key="x" * 32, session_data="", expire_date=timezone.now() + timedelta(days=1)
    )

    output = site.release_phase(2)

    assert LOGOUT in output
    assert f"{ENGINE}, table 'custom_sessions_usersession' on database 'default'" in output
    assert "Done: removed 4 sessions," in output, output
    assert rows(UserSession) == 0
    assert rows(DjangoSession) == 1


@pytest.mark.django_db
def test_a_setting_that_names_no_installed_model_is_an_error(
    engine: str, settings: Settings
) -> None:
    site = Site(settings)
    site.release_phase(1)
    settings.RELEASE_SESSION_MODEL = "custom_sessions.Missing"

    errors = check_session_engine()

    assert [error.id for error in errors] == ["release.E005"]
    assert "App 'custom_sessions' doesn't have a 'Missing' model" in errors[0].msg
    with pytest.raises(CommandError, match="doesn't have a 'Missing' model"):
        site.release_phase(2)


@pytest.mark.django_db
@pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "unguarded"])
def test_an_engine_whose_model_is_in_no_installed_app_is_one_error(
    settings: Settings, guarded: bool
) -> None:
    site = Site(settings)
    site.release_phase(1)
    if guarded:
        settings.RELEASE_SESSION_ENGINE = ORPHAN
    else:
        settings.SESSION_ENGINE = ORPHAN
        del settings.RELEASE_SESSION_ENGINE

    errors = check_session_engine()

    assert [error.id for error in errors] == ["release.E005"]
    assert errors[0].msg.startswith(
        f"The session engine '{ORPHAN}' cannot be imported: its session model is not in an "
        "installed app (Model class tests.stacks.session_apps.orphan_engine.OrphanSession "
    )
    with pytest.raises(CommandError, match="its session model is not in an installed app"):
        site.release_phase(2)
