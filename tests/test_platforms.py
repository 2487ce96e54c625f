"""The deployment files in docs/platforms run the release step where each platform runs it before
the new version serves, and the root Procfile's web command (parsed, not copied), with the example
settings' own variables for production mode, allowed hosts and TLS to the database: none of them
pretends to be Heroku. tests/test_platform_runs.py runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from release.locking import LOCK_WAIT_SECONDS
from tests.conftest import ROOT
from tests.procfile import procfile
from tests.recipes import (
    DATABASE_URL,
    DOCKERFILE,
    DOKKU,
    EB_CONFIG,
    EB_PROCFILE,
    HELM,
    MARKER,
    PLATFORMS,
    RAILWAY,
    RELEASE_ENV,
    RELEASE_JOB,
    RELEASE_STEPS,
    RENDER,
    RUN_PLATFORMS,
    SECRET_KEY,
    WEB,
    WEB_COMMANDS,
    WEB_ENV,
    Secrets,
    argv,
    dockerfile_instructions,
    dokku_config_sets,
    eb_command,
    eb_config,
    eb_release,
    env_of,
    fly,
    helm_kind,
    helm_values,
    is_on,
    load_yaml,
    only_container,
    railway_variables,
    render_template,
    render_web,
    requires_tls,
    seconds,
    section,
    settings_variables,
)

SECRETS = Secrets(database_url="postgres://u:p@db.internal:5432/d", secret_key="s" * 50)
# What a platform sets by itself, or what the release command reads, rather than the settings.
NOT_SETTINGS = {"PORT", "RAILWAY_PUBLIC_DOMAIN", MARKER}
# The recipes whose database requires TLS: RDS for PostgreSQL (Elastic Beanstalk) and, by the
# chart's default, the Kubernetes one. Render, Fly.io and Railway reach theirs on a private
# network that does not require it; dokku-postgres offers none.
REQUIRE_TLS = {"kubernetes", "elastic-beanstalk"}
# The section of docs/platforms/README.md for each platform.
SECTIONS = {
    "render": "Render",
    "fly": "Fly.io",
    "railway": "Railway",
    "dokku": "Dokku",
    "kubernetes": "Kubernetes (Helm)",
    "elastic-beanstalk": "Elastic Beanstalk",
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


class TestEnvironment:
    """What each recipe sets for the example settings, with the operator's secrets."""

    @pytest.mark.parametrize("platform", RUN_PLATFORMS)
    @pytest.mark.parametrize("step", ["release", "web"])
    def test_production_mode_without_dyno(self, platform: str, step: str) -> None:
        env = {"release": RELEASE_ENV, "web": WEB_ENV}[step][platform](SECRETS, None)

        assert "DYNO" not in env
        assert is_on(env["DJANGO_PRODUCTION"])
        assert env[DATABASE_URL] == SECRETS.database_url
        assert env[SECRET_KEY] == SECRETS.secret_key

    @pytest.mark.parametrize("platform", RUN_PLATFORMS)
    def test_every_variable_is_one_the_settings_read(self, platform: str) -> None:
        names = set(RELEASE_ENV[platform](SECRETS, "m")) | set(WEB_ENV[platform](SECRETS, "m"))

        assert names - NOT_SETTINGS - settings_variables() == set()

    @pytest.mark.parametrize("platform", RUN_PLATFORMS)
    def test_the_config_marker_reaches_both_steps(self, platform: str) -> None:
        marker = "2026-11-25-incident"

        assert RELEASE_ENV[platform](SECRETS, marker)[MARKER] == marker
        assert WEB_ENV[platform](SECRETS, marker)[MARKER] == marker
        assert not RELEASE_ENV[platform](SECRETS, None).get(MARKER, "").strip()

    def test_tls_to_the_database_where_the_platform_requires_it(self) -> None:
        requiring = {platform for platform in RUN_PLATFORMS if requires_tls(platform)}

        assert requiring == REQUIRE_TLS
        for platform in RUN_PLATFORMS:
            release = RELEASE_ENV[platform](SECRETS, None).get("DATABASE_SSL_REQUIRE")
            assert WEB_ENV[platform](SECRETS, None).get("DATABASE_SSL_REQUIRE") == release

    def test_no_file_sets_dyno(self) -> None:
        """Not even in a form the parsers above do not read: DYNO is Heroku's alone."""
        for path in PLATFORMS.rglob("*"):
            if path.is_file() and path.suffix != ".md":
                assert "DYNO" not in path.read_text(encoding="utf-8"), path
        for path in PLATFORMS.rglob("*.md"):
            assert not re.search(r"\bDYNO=", path.read_text(encoding="utf-8")), path


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
        assert env["DJANGO_PRODUCTION"] == {"key": "DJANGO_PRODUCTION", "value": "1"}
        # Render's proxy routes only the service's own domains to it; the internal database URL
        # is on Render's private network, where TLS is not required.
        assert "DJANGO_ALLOWED_HOSTS" not in env
        assert "DATABASE_SSL_REQUIRE" not in env

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

    def test_allows_the_apps_own_host(self) -> None:
        assert fly()["env"]["DJANGO_ALLOWED_HOSTS"] == f"{fly()['app']}.fly.dev"

    def test_readme_sets_the_secrets(self) -> None:
        assert "fly secrets set DATABASE_URL=... DJANGO_SECRET_KEY=..." in section("Fly.io")


class TestRailway:
    def test_schema_and_shape(self) -> None:
        config = json.loads(RAILWAY.read_text(encoding="utf-8"))

        assert config["$schema"] == "https://railway.com/railway.schema.json"
        # A list of strings, as Railway's config-as-code reference writes it.
        assert isinstance(config["deploy"]["preDeployCommand"], list)
        assert len(config["deploy"]["preDeployCommand"]) == 1

    def test_variables_reference_the_database_and_the_public_domain(self) -> None:
        assert railway_variables() == {
            "DATABASE_URL": "${{Postgres.DATABASE_URL}}",
            "DJANGO_PRODUCTION": "1",
            "DJANGO_ALLOWED_HOSTS": "${{RAILWAY_PUBLIC_DOMAIN}}",
        }

    def test_readme_points_at_the_variables_and_sets_the_secret_key(self) -> None:
        text = section("Railway")

        assert "[`railway/variables.env`](railway/variables.env)" in text
        assert 'railway variables --set "DJANGO_SECRET_KEY=' in text


class TestDokku:
    def test_uses_the_root_procfile_and_app_json(self) -> None:
        """No file of its own: the commands say so, and use config:set for the config marker."""
        text = DOKKU.read_text()

        assert not (PLATFORMS / "dokku").exists()
        assert "root `Procfile`" in text
        assert "dokku config:set django-release-logout FORCE_LOGOUT_ON_DEPLOY=" in text
        assert (ROOT / "app.json").exists()

    def test_config_at_creation(self) -> None:
        """Production mode and the app's domain; no TLS to dokku-postgres, which offers none."""
        create = dokku_config_sets()[0]

        assert create["DJANGO_SECRET_KEY"] == "$(openssl rand -base64 48)"
        assert create["DJANGO_PRODUCTION"] == "1"
        assert create["DJANGO_ALLOWED_HOSTS"] == "django-release-logout.dokku.example.com"
        assert "DATABASE_SSL_REQUIRE" not in create


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
        for name in ("FORCE_LOGOUT_ON_DEPLOY", "DJANGO_PRODUCTION", "DATABASE_SSL_REQUIRE"):
            assert env_of(job)[name] == env_of(web)[name], name

    def test_web_answers_to_the_ingress_hosts(self) -> None:
        values = helm_values(allowedHosts="a.example.com,b.example.com")
        web = only_container(helm_kind(WEB, "Deployment", values))

        assert env_of(web)["DJANGO_ALLOWED_HOSTS"] == "a.example.com,b.example.com"

    @pytest.mark.parametrize("path", [RELEASE_JOB, WEB], ids=lambda path: path.name)
    def test_templates_are_yaml_as_they_are(self, path: Path) -> None:
        """Every {{ }} sits inside a double-quoted string, so PyYAML reads the template as is."""
        for line in path.read_text().splitlines():
            if "{{" in line and not line.lstrip().startswith("#"):
                assert re.search(r'"[^"]*\{\{[^"]*\}\}[^"]*"', line), line

    @pytest.mark.parametrize("path", [RELEASE_JOB, WEB], ids=lambda path: path.name)
    def test_templates_render_from_values(self, path: Path) -> None:
        """The expressions are plain lookups, of values that values.yaml has."""
        values = helm_values()

        rendered = render_template(path, values)
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

    def test_environment(self) -> None:
        """Any host: the load balancer's health checks send the instance's address as Host."""
        env = eb_config()["option_settings"]["aws:elasticbeanstalk:application:environment"]

        assert env == {"DJANGO_PRODUCTION": "1", "DATABASE_SSL_REQUIRE": "1"}

    def test_readme_sets_the_secrets(self) -> None:
        assert "eb setenv DATABASE_URL=... DJANGO_SECRET_KEY=..." in section("Elastic Beanstalk")


class TestDockerfile:
    def test_python_matches_the_repository(self) -> None:
        base = DOCKERFILE.read_text().splitlines()
        version = (ROOT / ".python-version").read_text().strip()

        assert f"FROM python:{version}-slim" in base

    def test_copies_what_the_example_runs(self) -> None:
        copied = {line.split()[1] for line in dockerfile_instructions() if line.startswith("COPY ")}

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


@pytest.mark.parametrize("platform", RUN_PLATFORMS)
def test_readme_says_what_the_tests_run_and_what_they_cannot(platform: str) -> None:
    text = section(SECTIONS[platform])

    assert "- **Run by the tests:**" in text
    assert "- **Not run here:**" in text
