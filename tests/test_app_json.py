"""The Heroku deployment files at the root: app.json, Procfile, and what the buildpack reads."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # no types-jsonschema

from tests.conftest import ROOT
from tests.procfile import procfile

SCHEMA_PATH = ROOT / "tests" / "schemas" / "heroku-app-json.schema.json"


def load_json(name: str) -> dict[str, Any]:
    data = json.loads((ROOT / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def app_json() -> dict[str, Any]:
    return load_json("app.json")


def addon_plans(addons: list[str | dict[str, Any]]) -> list[str]:
    """The plan of each add-on, written either as a string or as {"plan": ...}."""
    return [addon if isinstance(addon, str) else addon["plan"] for addon in addons]


class TestAppJson:
    def test_schema_is_valid_draft7(self) -> None:
        Draft7Validator.check_schema(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))

    def test_validates_against_heroku_schema(self, app_json: dict[str, Any]) -> None:
        validator = Draft7Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))

        errors = [
            f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in validator.iter_errors(app_json)
        ]

        assert errors == [], "app.json does not match the schema:\n" + "\n".join(errors)

    def test_schema_rejects_what_heroku_rejects(self, app_json: dict[str, Any]) -> None:
        """The validation above has teeth: the strict schema catches typical mistakes."""
        validator = Draft7Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
        bad_env = {**app_json, "env": {"DJANGO_SECRET_KEY": "plain string"}}
        bad_script = {
            **app_json,
            "environments": {"test": {"scripts": {"test-setup": "true", "test": "pytest"}}},
        }
        unknown_key = {**app_json, "repositry": "https://example.com"}

        for document in (bad_env, bad_script, unknown_key):
            assert list(validator.iter_errors(document)), document

    def test_secret_key_is_generated(self, app_json: dict[str, Any]) -> None:
        secret = app_json["env"]["DJANGO_SECRET_KEY"]

        assert secret["generator"] == "secret"
        assert "value" not in secret

    def test_force_logout_variable_is_documented_and_optional(
        self, app_json: dict[str, Any]
    ) -> None:
        variable = app_json["env"]["FORCE_LOGOUT_ON_DEPLOY"]

        assert variable["description"].strip()
        assert variable["required"] is False
        # No value: a value here would be the first marker, set before any release has run.
        assert "value" not in variable
        assert "generator" not in variable

    def test_env_names_are_ones_the_code_reads(self, app_json: dict[str, Any]) -> None:
        settings_source = (ROOT / "example_project" / "settings.py").read_text(encoding="utf-8")
        conf_source = (ROOT / "release" / "conf.py").read_text(encoding="utf-8")

        assert '"DJANGO_SECRET_KEY"' in settings_source
        assert '"FORCE_LOGOUT_ON_DEPLOY"' in conf_source
        assert set(app_json["env"]) == {"DJANGO_SECRET_KEY", "FORCE_LOGOUT_ON_DEPLOY"}

    def test_postgres_addon(self, app_json: dict[str, Any]) -> None:
        plans = addon_plans(app_json["addons"])

        assert any(plan.split(":")[0] == "heroku-postgresql" for plan in plans), plans

    def test_python_buildpack_and_one_web_dyno(self, app_json: dict[str, Any]) -> None:
        assert app_json["buildpacks"] == [{"url": "heroku/python"}]
        assert app_json["formation"]["web"]["quantity"] == 1

    def test_ci_runs_pytest_on_postgres(self, app_json: dict[str, Any]) -> None:
        test_env = app_json["environments"]["test"]
        command = test_env["scripts"]["test"]

        assert "pytest" in command
        assert "tests/requirements.txt" in command
        assert any(
            plan.split(":")[0] == "heroku-postgresql" for plan in addon_plans(test_env["addons"])
        )


class TestProcfile:
    def test_has_exactly_release_and_web(self) -> None:
        assert set(procfile()) == {"release", "web"}

    def test_release_runs_release_command(self) -> None:
        assert procfile()["release"] == "python manage.py release"

    def test_web_runs_gunicorn_with_config(self) -> None:
        command = procfile()["web"].split()

        assert command[0] == "gunicorn"
        config = command[command.index("--config") + 1]
        assert config == "example_project/gunicorn.conf.py"
        assert (ROOT / config).is_file()
        assert "example_project.wsgi" in command


class TestBuildpackInputs:
    @pytest.mark.parametrize("name", ["uv.lock", "poetry.lock", "Pipfile.lock"])
    def test_only_requirements_txt_as_package_manager_file(self, name: str) -> None:
        assert (ROOT / "requirements.txt").is_file()
        assert not (ROOT / name).exists()

    def test_python_version(self) -> None:
        version = (ROOT / ".python-version").read_text(encoding="utf-8").strip()

        assert re.fullmatch(r"3\.\d+(\.\d+)?", version), version
