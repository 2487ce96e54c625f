from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import timedelta
from importlib import import_module
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connections
from django.db.models import Model
from django.utils import timezone
from pytest_django.fixtures import Settings

ROOT = Path(__file__).resolve().parent.parent

DB = "django.contrib.sessions.backends.db"
CACHED_DB = "django.contrib.sessions.backends.cached_db"
CACHE = "django.contrib.sessions.backends.cache"
FILE = "django.contrib.sessions.backends.file"
COOKIES = "django.contrib.sessions.backends.signed_cookies"
CUSTOM = "tests.custom_sessions.backend"

needs_redis = pytest.mark.skipif(
    not getattr(django_settings, "REDIS_URL", None), reason="REDIS_URL is not set"
)

RELEASE_ENV = (
    "FORCE_LOGOUT_ON_DEPLOY",
    "HEROKU_RELEASE_VERSION",
    "HEROKU_SLUG_COMMIT",
    "DYNO",
)


@pytest.fixture(autouse=True)
def clean_release_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in RELEASE_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def clock_at_1970(monkeypatch: pytest.MonkeyPatch) -> None:
    """Epochs come from the clock, and are always greater than the newest one recorded: with
    the clock at 0, this process numbers them 1, 2, 3 as logouts happen. Tests of the clock
    itself set it otherwise; child processes use the real one."""
    monkeypatch.setattr("release.decision.plan.clock", lambda: 0)


@pytest.fixture(autouse=True)
def uncollected_static(settings: Settings, tmp_path: Path) -> None:
    """Static files as a test run has them: nothing collected, so no manifest to hash names by.

    Django's own advice for ManifestStaticFilesStorage, whose {% static %} fails without the
    manifest that collectstatic writes; and an existing, empty STATIC_ROOT, so that WhiteNoise
    has no missing directory to warn about.
    """
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def vendor(alias: str = "default") -> str:
    return connections[alias].vendor


def emptied_with() -> str:
    """How the summary says a session table that nothing else ties to was emptied at once."""
    return "RENAME TABLE to an empty copy" if vendor() == "mysql" else "TRUNCATE"


def only_with_session_lock(reason: str) -> pytest.MarkDecorator:
    """Skipped but on PostgreSQL and MariaDB, whose release holds a lock across transactions. By
    vendor, which needs no connection (the release refuses Oracle's MySQL anyway)."""
    return pytest.mark.skipif(vendor() not in ("postgresql", "mysql"), reason=reason)


def database_url(alias: str = "default") -> str:
    """A DATABASE_URL for a child process that points at the test database `alias`."""
    conn = connections[alias].settings_dict
    if conn["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conn['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[connections[alias].vendor]
    password = f":{conn['PASSWORD']}" if conn.get("PASSWORD") else ""
    port = f":{conn['PORT']}" if conn.get("PORT") else ""
    return f"{scheme}://{conn['USER']}{password}@{conn['HOST']}{port}/{conn['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in RELEASE_ENV}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["DATABASE_URL"] = database_url()
    # As in an activated virtualenv: `python` is the interpreter running the tests.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run_manage(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def release(*args: str) -> str:
    """Run the release command in this process, without its migrate step; return its output."""
    out = StringIO()
    call_command("release", "--skip-migrate", *args, stdout=out)
    return out.getvalue()


def make_sessions(
    count: int, model: type[Model] = Session, alias: str = "default", **data: object
) -> list[str]:
    """`count` real sessions, as SessionStore would save them; returns their keys."""
    encoded = SessionStore().encode({"_auth_user_id": "1", **data})
    expires = timezone.now() + timedelta(days=14)
    keys = [secrets.token_hex(16) for _ in range(count)]
    model._base_manager.using(alias).bulk_create(
        model(session_key=key, session_data=encoded, expire_date=expires) for key in keys
    )
    return keys


def save_sessions(engine: str, count: int, **data: object) -> list[str]:
    """`count` sessions saved through `engine`'s own store; returns their keys."""
    store_class = import_module(engine).SessionStore
    keys = []
    for _ in range(count):
        store = store_class()
        store.update({"n": 1, **data})
        store.save()
        keys.append(store.session_key)
    return keys


@pytest.fixture
def installed(db: None) -> None:
    """A database where the first release with the tool, FORCE_LOGOUT_VERSION = 1, has run."""
    release()
