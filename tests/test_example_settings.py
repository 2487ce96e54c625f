"""The example settings' own switches, each from a variable of its own: production mode
(DJANGO_PRODUCTION), allowed hosts (DJANGO_ALLOWED_HOSTS) and TLS to PostgreSQL
(DATABASE_SSL_REQUIRE). Where DYNO is set and nothing else is, Heroku's behaviour as it was."""

from __future__ import annotations

import runpy
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.recipes import settings_variables

SETTINGS = ROOT / "example_project" / "settings.py"
POSTGRES = "postgres://u:p@db.example.com:5432/d"
LOCAL_HOSTS = [".localhost", "127.0.0.1", "[::1]", "0.0.0.0"]


def read_variables() -> set[str]:
    return settings_variables() | {"DYNO", "CI"}


@pytest.fixture
def settings_with(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example settings module's values, as a process with only these variables reads it."""

    def read(**env: str) -> dict[str, Any]:
        for name in read_variables():
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS))

    return read


def sslmode(values: dict[str, Any]) -> str | None:
    options: dict[str, str] = values["DATABASES"]["default"].get("OPTIONS", {})
    return options.get("sslmode")


def is_production(values: dict[str, Any]) -> bool:
    secure = (
        values.get("SECURE_SSL_REDIRECT") is True,
        values.get("SESSION_COOKIE_SECURE") is True,
        values.get("CSRF_COOKIE_SECURE") is True,
        values.get("SECURE_PROXY_SSL_HEADER") == ("HTTP_X_FORWARDED_PROTO", "https"),
        not values["DEBUG"],
        not values["SECRET_KEY"],  # none given: required, not the development key
    )
    assert len(set(secure)) == 1, secure
    return secure[0]


def test_the_variables_are_the_ones_read() -> None:
    assert {"DJANGO_PRODUCTION", "DJANGO_ALLOWED_HOSTS", "DATABASE_SSL_REQUIRE"} <= read_variables()


def test_heroku_as_it_was(settings_with: Any) -> None:
    values = settings_with(DYNO="web.1", DATABASE_URL=POSTGRES)

    assert is_production(values)
    assert values["ALLOWED_HOSTS"] == ["*"]
    assert sslmode(values) == "require"


def test_local_as_it_was(settings_with: Any) -> None:
    values = settings_with(DATABASE_URL=POSTGRES)

    assert not is_production(values)
    assert values["ALLOWED_HOSTS"] == LOCAL_HOSTS
    assert sslmode(values) is None


def test_production_without_dyno(settings_with: Any) -> None:
    """Production mode alone: TLS to the database stays a switch of its own."""
    values = settings_with(DJANGO_PRODUCTION="1", DATABASE_URL=POSTGRES)

    assert is_production(values)
    assert values["ALLOWED_HOSTS"] == ["*"]
    assert sslmode(values) is None


def test_production_turned_off_on_heroku(settings_with: Any) -> None:
    values = settings_with(DYNO="web.1", DJANGO_PRODUCTION="0", DATABASE_URL=POSTGRES)

    assert not is_production(values)
    assert values["ALLOWED_HOSTS"] == LOCAL_HOSTS
    assert sslmode(values) == "require"


@pytest.mark.parametrize("production", ["1", "0"])
def test_allowed_hosts_in_either_mode(settings_with: Any, production: str) -> None:
    values = settings_with(
        DJANGO_PRODUCTION=production, DJANGO_ALLOWED_HOSTS=" a.example.com, .b.example.com ,,"
    )

    assert values["ALLOWED_HOSTS"] == ["a.example.com", ".b.example.com"]


@pytest.mark.parametrize("blank", ["", " ", " , "])
def test_blank_allowed_hosts_are_unset(settings_with: Any, blank: str) -> None:
    assert settings_with(DYNO="web.1", DJANGO_ALLOWED_HOSTS=blank)["ALLOWED_HOSTS"] == ["*"]
    assert settings_with(DJANGO_ALLOWED_HOSTS=blank)["ALLOWED_HOSTS"] == LOCAL_HOSTS


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({"DATABASE_SSL_REQUIRE": "1"}, POSTGRES, "require"),
        ({"DATABASE_SSL_REQUIRE": "on", "DJANGO_PRODUCTION": "1"}, POSTGRES, "require"),
        ({"DATABASE_SSL_REQUIRE": "0", "DYNO": "web.1"}, POSTGRES, None),
        ({"DATABASE_SSL_REQUIRE": " ", "DYNO": "web.1"}, POSTGRES, "require"),
        # The URL's own sslmode is kept: no downgrade of verify-full to require.
        ({"DYNO": "web.1"}, f"{POSTGRES}?sslmode=verify-full", "verify-full"),
        ({"DATABASE_SSL_REQUIRE": "1"}, f"{POSTGRES}?sslmode=disable", "disable"),
        # TLS applies to PostgreSQL only.
        ({"DATABASE_SSL_REQUIRE": "1"}, "sqlite:////tmp/example.sqlite3", None),
        ({"DYNO": "web.1"}, "mysql://root@127.0.0.1:3306/release", None),
    ],
)
def test_database_tls(
    settings_with: Any, env: dict[str, str], url: str, expected: str | None
) -> None:
    assert sslmode(settings_with(DATABASE_URL=url, **env)) == expected


def test_heroku_ci_is_not_production(settings_with: Any) -> None:
    values = settings_with(DYNO="run.1", CI="true", DATABASE_URL=POSTGRES)

    assert not is_production(values)
    assert sslmode(values) is None
