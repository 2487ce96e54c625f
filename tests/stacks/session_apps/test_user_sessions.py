"""django-user-sessions 2.0, guarded: run with
`pytest tests/stacks/session_apps --ds tests.stacks.user_sessions_settings`.

Its SessionStore has no get_model_class(); the release finds user_sessions.models.Session in
the store's module.
"""

from __future__ import annotations

import pytest
from django.db.models import Model
from pytest_django.fixtures import Settings
from user_sessions.models import Session

from tests.stacks.session_apps.lifecycle import ColumnTests, LifecycleTests, ManageTests

ENGINE = "user_sessions.backends.db"


@pytest.fixture
def engine(settings: Settings) -> str:
    settings.RELEASE_SESSION_ENGINE = ENGINE
    return ENGINE


@pytest.fixture
def model() -> type[Model]:
    session: type[Model] = Session
    return session


def test_its_store_has_no_get_model_class() -> None:
    from user_sessions.backends.db import SessionStore

    assert not hasattr(SessionStore, "get_model_class")


class TestLifecycle(LifecycleTests):
    pass


class TestColumns(ColumnTests):
    pass


class TestManage(ManageTests):
    pass
