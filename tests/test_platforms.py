"""The deployment files in docs/platforms run the release step where each platform runs it before
the new version serves, and the root Procfile's web command (parsed, not copied)."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from release.locking import LOCK_WAIT_SECONDS
from tests.conftest import ROOT
from tests.procfile import procfile

PLATFORMS = ROOT / "docs" / "platforms"
RENDER = PLATFORMS / "render" / "render.yaml"
FLY = PLATFORMS / "fly" / "fly.toml"
RAILWAY = PLATFORMS / "railway" / "railway.json"
DOKKU = PLATFORMS / "dokku.md"
HELM = PLATFORMS / "kubernetes" / "helm"
RELEASE_JOB = HELM / "templates" / "release-job.yaml"
WEB = HELM / "templates" / "web.yaml"
EB_CONFIG = PLATFORMS / "elastic-beanstalk" / ".ebextensions" / "release.config"
EB_PROCFILE = PLATFORMS / "elastic-beanstalk" / "Procfile"
DOCKERFILE = PLATFORMS / "Dockerfile"

TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
DURATION_PART = re.compile(r"(\d+)([hms])")
EB_VENV = "source /var/app/venv/*/bin/activate && "


def argv(command: str | list[str]) -> list[str]:
    """A command as its words, whether a platform takes a string or a list."""
    return shlex.split(command) if isinstance(command, str) else list(command)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_all(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


def render_web() -> dict[str, Any]:
    webs = [s for s in load_yaml(RENDER)["services"] if s["type"] == "web"]
    assert len(webs) == 1
    service: dict[str, Any] = webs[0]
    return service


def fly() -> dict[str, Any]:
    with FLY.open("rb") as file:
        return tomllib.load(file)


def railway_deploy() -> dict[str, Any]:
    deploy: dict[str, Any] = json.loads(RAILWAY.read_text(encoding="utf-8"))["deploy"]
    return deploy


def helm_kind(path: Path, kind: str) -> dict[str, Any]:
    documents = [d for d in load_yaml_all(path) if d["kind"] == kind]
    assert len(documents) == 1
    document: dict[str, Any] = documents[0]
    return document


def only_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def eb_release() -> dict[str, Any]:
    command: dict[str, Any] = load_yaml(EB_CONFIG)["container_commands"]["01_release"]
    return command


def eb_command(command: str) -> str:
    """The command after the platform's virtualenv activation."""
    assert command.startswith(EB_VENV), command
    return command.removeprefix(EB_VENV)


def dockerfile_cmd() -> list[str]:
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD ")]
    assert len(lines) == 1
    cmd: list[str] = json.loads(lines[0].removeprefix("CMD "))
    return cmd


def seconds(duration: str) -> int:
    """A Go duration such as "15m" or "1h30m", as flyctl reads it."""
    parts = DURATION_PART.findall(duration)
    assert "".join(n + unit for n, unit in parts) == duration, duration
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in parts)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


# Where each platform keeps the command it runs after the build and before the new version serves.
RELEASE_STEPS: dict[str, Callable[[], str | list[str]]] = {
    "render": lambda: render_web()["preDeployCommand"],
    "fly": lambda: fly()["deploy"]["release_command"],
    "railway": lambda: railway_deploy()["preDeployCommand"][0],
    "dokku": lambda: procfile()["release"],
    "kubernetes": lambda: only_container(helm_kind(RELEASE_JOB, "Job"))["command"],
    "elastic-beanstalk": lambda: eb_command(eb_release()["command"]),
}

# Where each platform keeps the web process's command.
WEB_COMMANDS: dict[str, Callable[[], str | list[str]]] = {
    "render": lambda: render_web()["startCommand"],
    "fly": lambda: fly()["processes"]["app"],
    "railway": lambda: railway_deploy()["startCommand"],
    "kubernetes": lambda: only_container(helm_kind(WEB, "Deployment"))["command"],
    "elastic-beanstalk": lambda: procfile(EB_PROCFILE)["web"],
    "image": dockerfile_cmd,
}

# Each file's copy of the example settings' switch to production (see test_dyno_*).
DYNO_VALUES: dict[str, Callable[[], str]] = {
    "render": lambda: {e["key"]: e for e in render_web()["envVars"]}["DYNO"]["value"],
    "fly": lambda: fly()["env"]["DYNO"],
    "kubernetes-job": lambda: env_of(only_container(helm_kind(RELEASE_JOB, "Job")))["DYNO"],
    "kubernetes-web": lambda: env_of(only_container(helm_kind(WEB, "Deployment")))["DYNO"],
    "elastic-beanstalk": lambda: load_yaml(EB_CONFIG)["option_settings"][
        "aws:elasticbeanstalk:application:environment"
    ]["DYNO"],
}


def test_root_procfile_has_the_release_and_web_lines() -> None:
    processes = procfile()

    assert argv(processes["release"]) == ["python", "manage.py", "release"]
    assert argv(processes["web"])[0] == "gunicorn"


@pytest.mark.parametrize("platform", RELEASE_STEPS)
def test_release_step_runs_the_procfile_release_command(platform: str) -> None:
    assert argv(RELEASE_STEPS[platform]()) == argv(procfile()["release"])


@pytest.mark.parametrize("platform", WEB_COMMANDS)
def test_web_process_runs_the_procfile_web_command(platform: str) -> None:
    assert argv(WEB_COMMANDS[platform]()) == argv(procfile()["web"])


@pytest.mark.parametrize("platform", DYNO_VALUES)
def test_dyno_is_set_for_the_example_settings(platform: str) -> None:
    assert DYNO_VALUES[platform]().strip()


def test_dyno_is_what_the_example_settings_switch_on() -> None:
    """The reason the files set DYNO; if the settings change, so must the files and README."""
    settings = (ROOT / "example_project" / "settings.py").read_text()

    assert 'IS_HEROKU_APP = "DYNO" in os.environ' in settings


class TestRender:
    def test_pre_deploy_needs_a_paid_instance_type(self) -> None:
        assert render_web()["plan"] != "free"

    def test_environment(self) -> None:
        env = {entry["key"]: entry for entry in render_web()["envVars"]}
        databases = {database["name"] for database in load_yaml(RENDER)["databases"]}

        assert env["DATABASE_URL"]["fromDatabase"]["name"] in databases
        assert env["DATABASE_URL"]["fromDatabase"]["property"] == "connectionString"
        assert env["DJANGO_SECRET_KEY"] == {"key": "DJANGO_SECRET_KEY", "generateValue": True}
        assert env["FORCE_LOGOUT_ON_DEPLOY"] == {"key": "FORCE_LOGOUT_ON_DEPLOY", "sync": False}

    def test_build_collects_static_files(self) -> None:
        assert "collectstatic --no-input" in render_web()["buildCommand"]


class TestFly:
    def test_release_timeout_outlasts_the_lock_wait(self) -> None:
        timeout = seconds(fly()["deploy"]["release_command_timeout"])

        assert timeout > LOCK_WAIT_SECONDS
        assert timeout > 5 * 60  # Fly's default

    def test_http_service_reaches_gunicorn(self) -> None:
        config = fly()

        assert config["http_service"]["internal_port"] == int(config["env"]["PORT"])
        assert config["http_service"]["processes"] == list(config["processes"])

    def test_builds_the_shared_dockerfile_from_the_root(self) -> None:
        assert ROOT / fly()["build"]["dockerfile"] == DOCKERFILE


class TestRailway:
    def test_schema_and_shape(self) -> None:
        config = json.loads(RAILWAY.read_text(encoding="utf-8"))

        assert config["$schema"] == "https://railway.com/railway.schema.json"
        # A list of strings, as Railway's config-as-code reference writes it.
        assert isinstance(config["deploy"]["preDeployCommand"], list)
        assert len(config["deploy"]["preDeployCommand"]) == 1


class TestDokku:
    def test_uses_the_root_procfile_and_app_json(self) -> None:
        """No file of its own: the commands say so, and use config:set for the config marker."""
        text = DOKKU.read_text()

        assert not (PLATFORMS / "dokku").exists()
        assert "root `Procfile`" in text
        assert "dokku config:set django-release-logout FORCE_LOGOUT_ON_DEPLOY=" in text
        assert (ROOT / "app.json").exists()


class TestHelm:
    def test_hooks_run_before_install_upgrade_and_rollback(self) -> None:
        annotations = helm_kind(RELEASE_JOB, "Job")["metadata"]["annotations"]

        assert set(annotations["helm.sh/hook"].split(",")) == {
            "pre-install",
            "pre-upgrade",
            "pre-rollback",
        }
        assert int(annotations["helm.sh/hook-weight"]) == 0
        assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {
            "before-hook-creation",
            "hook-succeeded",
        }

    def test_a_failed_release_fails_the_upgrade(self) -> None:
        job = helm_kind(RELEASE_JOB, "Job")

        assert job["spec"]["backoffLimit"] == 0
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert job["spec"]["activeDeadlineSeconds"] == 3600 > LOCK_WAIT_SECONDS

    def test_job_and_web_share_image_secret_and_markers(self) -> None:
        job = only_container(helm_kind(RELEASE_JOB, "Job"))
        web = only_container(helm_kind(WEB, "Deployment"))

        assert job["image"] == web["image"]
        assert job["envFrom"] == web["envFrom"]
        assert env_of(job)["FORCE_LOGOUT_ON_DEPLOY"] == env_of(web)["FORCE_LOGOUT_ON_DEPLOY"]

    @pytest.mark.parametrize("path", [RELEASE_JOB, WEB], ids=lambda path: path.name)
    def test_templates_are_yaml_as_they_are(self, path: Path) -> None:
        """Every {{ }} sits inside a double-quoted string, so PyYAML reads the template as is."""
        for line in path.read_text().splitlines():
            if "{{" in line and not line.lstrip().startswith("#"):
                assert re.search(r'"[^"]*\{\{[^"]*\}\}[^"]*"', line), line

    @pytest.mark.parametrize("path", [RELEASE_JOB, WEB], ids=lambda path: path.name)
    def test_templates_render_from_values(self, path: Path) -> None:
        """The expressions are plain lookups, of values that values.yaml has."""
        values = load_yaml(HELM / "values.yaml")

        def lookup(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression == ".Release.Name":
                return "demo"
            assert expression.startswith(".Values."), expression
            return str(values[expression.removeprefix(".Values.")])

        rendered = TEMPLATE.sub(lookup, path.read_text())
        documents = list(yaml.safe_load_all(rendered))

        assert "{{" not in rendered
        for document in documents:
            if document["kind"] in {"Job", "Deployment"}:
                assert only_container(document)["image"] == values["image"]

    def test_chart_metadata(self) -> None:
        chart = load_yaml(HELM / "Chart.yaml")

        assert chart["apiVersion"] == "v2"
        assert chart["type"] == "application"


class TestElasticBeanstalk:
    def test_release_runs_on_one_instance(self) -> None:
        assert eb_release()["leader_only"] is True

    def test_other_commands_run_on_every_instance(self) -> None:
        commands = load_yaml(EB_CONFIG)["container_commands"]

        for name, command in commands.items():
            if name != "01_release":
                assert not command.get("leader_only", False), name
                eb_command(command["command"])

    def test_command_timeout_outlasts_the_lock_wait(self) -> None:
        timeout = load_yaml(EB_CONFIG)["option_settings"]["aws:elasticbeanstalk:command"]["Timeout"]

        assert LOCK_WAIT_SECONDS < int(timeout) <= 3600

    def test_procfile_has_no_release_line(self) -> None:
        """Elastic Beanstalk runs every Procfile line as a long-running process."""
        assert procfile(EB_PROCFILE) == {"web": procfile()["web"]}


class TestDockerfile:
    def test_python_matches_the_repository(self) -> None:
        base = DOCKERFILE.read_text().splitlines()
        version = (ROOT / ".python-version").read_text().strip()

        assert f"FROM python:{version}-slim" in base

    def test_copies_what_the_example_runs(self) -> None:
        copied = {
            line.split()[1]
            for line in DOCKERFILE.read_text().splitlines()
            if line.startswith("COPY ")
        }

        assert copied == {"requirements.txt", "manage.py", "release", "example_project"}
        assert all((ROOT / path).exists() for path in copied)


def test_readme_has_a_section_per_platform() -> None:
    readme = (PLATFORMS / "README.md").read_text()
    headings = set(re.findall(r"^## (.+)$", readme, flags=re.MULTILINE))

    assert {
        "Render",
        "Fly.io",
        "Railway",
        "Dokku",
        "Kubernetes (Helm)",
        "Elastic Beanstalk",
        "Upsun",
    } <= headings
