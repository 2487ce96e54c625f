"""The third-party session stacks: django-qsessions and django-user-sessions, installed as their
documentation says (their app and middleware in place of Django's sessions), and guarded.

Each stack has settings of its own, since INSTALLED_APPS differ, and runs on its own:

    pip install -r tests/requirements-stacks.txt
    pytest tests/stacks/session_apps --ds tests.stacks.qsessions_settings
    pytest tests/stacks/session_apps --ds tests.stacks.user_sessions_settings

`pytest.ini` here keeps tests/conftest.py out of those runs (it imports django.contrib.sessions'
model). Which test modules a run collects follows its settings: a plain `pytest` at the root
(tests.settings) collects test_custom_engine.py only, which needs no extra package.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from pytest_django.fixtures import Settings

from release.guard import forget_process_stamp
from tests.stacks.session_apps.lifecycle import RELEASE_ENV

# The test modules each settings module runs; the others are not collected.
MODULES = {
    "tests.settings": "test_custom_engine.py",
    "tests.stacks.qsessions_settings": "test_qsessions.py",
    "tests.stacks.user_sessions_settings": "test_user_sessions.py",
}
collect_ignore = [
    module for name, module in MODULES.items() if name != django_settings.SETTINGS_MODULE
]


@pytest.fixture(autouse=True)
def stack_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path) -> None:
    """As tests/conftest.py has it: no release variables from the shell, and static files
    uncollected (no manifest to hash names by)."""
    for name in RELEASE_ENV:
        monkeypatch.delenv(name, raising=False)
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def fresh_processes() -> Iterator[None]:
    """No stamp read by an earlier test: each test starts its processes itself."""
    forget_process_stamp()
    yield
    forget_process_stamp()
