"""The files in docs/platforms, read as each platform reads them: commands, environment, host names.

tests/test_platforms.py checks what the files say; tests/test_platform_runs.py runs them.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.procfile import ROOT, procfile

SETTINGS = ROOT / "example_project" / "settings.py"
PLATFORMS = ROOT / "docs" / "platforms"
PLATFORMS_README = PLATFORMS / "README.md"
RENDER = PLATFORMS / "render" / "render.yaml"
FLY = PLATFORMS / "fly" / "fly.toml"
RAILWAY = PLATFORMS / "railway" / "railway.json"
RAILWAY_VARIABLES = PLATFORMS / "railway" / "variables.env"
DOKKU = PLATFORMS / "dokku.md"
HELM = PLATFORMS / "kubernetes" / "helm"
HELM_VALUES = HELM / "values.yaml"
RELEASE_JOB = HELM / "templates" / "release-job.yaml"
WEB = HELM / "templates" / "web.yaml"
EB = PLATFORMS / "elastic-beanstalk"
EB_EXTENSIONS = EB / ".ebextensions"
EB_CONFIG = EB_EXTENSIONS / "release.config"
EB_PROCFILE = EB / "Procfile"
DOCKERFILE = PLATFORMS / "Dockerfile"
IMAGE_SH = PLATFORMS / "image.sh"

TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
DURATION_PART = re.compile(r"(\d+)([hms])")
EB_VENV = "source /var/app/venv/*/bin/activate && "
RAILWAY_REFERENCE = re.compile(r"\$\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
SHELL_SUBSTITUTION = re.compile(r"^\$\(.*\)$")

# The platforms whose recipe runs the example; "image" is the Dockerfile's own image.
RUN_PLATFORMS = ("render", "fly", "railway", "dokku", "kubernetes", "elastic-beanstalk")
IMAGE_PLATFORMS = ("fly", "kubernetes")

# The host name each platform's router sends in the Host header, where no recipe names one: the
# service's default domain. Elastic Beanstalk's load balancer also sends health checks with the
# instance's own address as the Host header.
DEFAULT_HOSTS = {
    "render": "django-release-logout.onrender.com",
    "railway": "django-release-logout.up.railway.app",
    "elastic-beanstalk": "django-release-logout.eu-west-1.elasticbeanstalk.com",
}
EB_HEALTH_CHECK_HOST = "172.31.18.40"

# What the operator sets by hand, as each platform's section of docs/platforms/README.md (or
# dokku.md) says, and the tests supply: the database URL the platform hands out, a secret key.
DATABASE_URL = "DATABASE_URL"
SECRET_KEY = "DJANGO_SECRET_KEY"
MARKER = "FORCE_LOGOUT_ON_DEPLOY"


def is_on(value: str | None) -> bool:
    """As the example settings' env_flag reads a variable."""
    return value is not None and value.strip().lower() in {"1", "true", "yes", "on"}


def settings_variables() -> set[str]:
    """The environment variables example_project/settings.py reads (as tests/test_readme.py)."""
    source = SETTINGS.read_text(encoding="utf-8")
    read = set(re.findall(r'os\.environ(?:\.get)?[\[(]"([A-Z_]+)"', source))
    return read | set(re.findall(r'env_flag\("([A-Z_]+)"', source))


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


def railway() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(RAILWAY.read_text(encoding="utf-8"))
    return config


def railway_deploy() -> dict[str, Any]:
    deploy: dict[str, Any] = railway()["deploy"]
    return deploy


def railway_variables() -> dict[str, str]:
    """variables.env, as the Raw Editor of a service's Variables tab reads it: NAME=value lines."""
    variables: dict[str, str] = {}
    for line in RAILWAY_VARIABLES.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        assert sep, line
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), line
        assert name not in variables, line
        variables[name] = value
    return variables


def helm_values(**overrides: str) -> dict[str, Any]:
    """values.yaml with `helm upgrade --set name=value` overrides."""
    values: dict[str, Any] = load_yaml(HELM_VALUES)
    assert set(overrides) <= set(values), overrides
    return {**values, **overrides}


def render_template(path: Path, values: Mapping[str, Any], release: str = "demo") -> str:
    """A template with its expressions filled in: plain lookups of values and the release name."""

    def lookup(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression == ".Release.Name":
            return release
        assert expression.startswith(".Values."), expression
        return str(values[expression.removeprefix(".Values.")])

    return TEMPLATE.sub(lookup, path.read_text(encoding="utf-8"))


def helm_kind(path: Path, kind: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The one document of `kind` in a template: as it is, or rendered with `values`."""
    if values is None:
        documents = load_yaml_all(path)
    else:
        documents = list(yaml.safe_load_all(render_template(path, values)))
    matching = [d for d in documents if d["kind"] == kind]
    assert len(matching) == 1
    document: dict[str, Any] = matching[0]
    return document


def only_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def eb_config() -> dict[str, Any]:
    config: dict[str, Any] = load_yaml(EB_CONFIG)
    return config


def eb_release() -> dict[str, Any]:
    command: dict[str, Any] = eb_config()["container_commands"]["01_release"]
    return command


def eb_command(command: str) -> str:
    """The command after the platform's virtualenv activation."""
    assert command.startswith(EB_VENV), command
    return command.removeprefix(EB_VENV)


def eb_environment() -> dict[str, str]:
    settings = eb_config()["option_settings"]["aws:elasticbeanstalk:application:environment"]
    return {name: str(value) for name, value in settings.items()}


def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, one a line: comments dropped, continuation lines joined."""
    instructions, joined = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            joined += line.rstrip()[:-1]
            continue
        instructions.append(joined + line)
        joined = ""
    assert not joined
    return instructions


def dockerfile_cmd() -> list[str]:
    commands = [line for line in dockerfile_instructions() if line.startswith("CMD ")]
    assert len(commands) == 1
    cmd: list[str] = json.loads(commands[0].removeprefix("CMD "))
    return cmd


def dockerfile_env() -> dict[str, str]:
    """What the image's ENV instructions set, for its RUN steps and every container run from it."""
    env: dict[str, str] = {}
    for line in dockerfile_instructions():
        if line.startswith("ENV "):
            for pair in shlex.split(line.removeprefix("ENV ")):
                name, sep, value = pair.partition("=")
                assert sep, line
                env[name] = value
    return env


def seconds(duration: str) -> int:
    """A Go duration such as "15m" or "1h30m", as flyctl reads it."""
    parts = DURATION_PART.findall(duration)
    assert "".join(n + unit for n, unit in parts) == duration, duration
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in parts)


def markdown_shell(path: Path) -> list[str]:
    """The commands of a Markdown file's ```sh blocks, backslash continuations joined."""
    blocks = re.findall(r"^ *```sh\n(.*?)\n *```$", path.read_text(encoding="utf-8"), re.S | re.M)
    commands = []
    for block in blocks:
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            if command.strip():
                commands.append(command.split("  #")[0].strip())
    return commands


def dokku_config_sets() -> list[dict[str, str]]:
    """The `dokku config:set` commands of dokku.md, in order: the NAME=value pairs of each."""
    sets = []
    for command in markdown_shell(DOKKU):
        words = shlex.split(command)
        if words[:2] != ["dokku", "config:set"]:
            continue
        words = [word for word in words[2:] if not word.startswith("--")]
        assert words[0] == "django-release-logout", command
        pairs = dict(word.split("=", 1) for word in words[1:])
        sets.append(pairs)
    return sets


def section(heading: str) -> str:
    """A `## heading` section of docs/platforms/README.md."""
    text = PLATFORMS_README.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


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
    "dokku": lambda: procfile()["web"],
    "kubernetes": lambda: only_container(helm_kind(WEB, "Deployment"))["command"],
    "elastic-beanstalk": lambda: procfile(EB_PROCFILE)["web"],
    "image": dockerfile_cmd,
}


@dataclass(frozen=True)
class Secrets:
    """What the operator hands each platform by hand: the database's URL and a secret key."""

    database_url: str
    secret_key: str


# A platform's environment for these secrets and, when given, a config marker set as it says.
EnvOf = Callable[[Secrets, str | None], dict[str, str]]


def _render_env(secrets: Secrets, marker: str | None) -> dict[str, str]:
    env = {}
    for variable in render_web()["envVars"]:
        key = variable["key"]
        if "value" in variable:
            env[key] = str(variable["value"])
        elif variable.get("fromDatabase", {}).get("property") == "connectionString":
            env[key] = secrets.database_url
        elif variable.get("generateValue") is True:
            env[key] = secrets.secret_key
        elif variable.get("sync") is False:
            # Set in the Dashboard: the config marker is the only one the Blueprint leaves open.
            assert key == MARKER, variable
            if marker is not None:
                env[key] = marker
        else:
            raise AssertionError(f"render.yaml: a variable of no known kind: {variable}")
    return env


def _fly_env(secrets: Secrets, marker: str | None) -> dict[str, str]:
    # `fly secrets set DATABASE_URL=... DJANGO_SECRET_KEY=...`, and the marker staged the same way.
    env = {name: str(value) for name, value in fly()["env"].items()}
    env.update({DATABASE_URL: secrets.database_url, SECRET_KEY: secrets.secret_key})
    if marker is not None:
        env[MARKER] = marker
    return env


def _railway_env(secrets: Secrets, marker: str | None) -> dict[str, str]:
    provided = {
        "RAILWAY_PUBLIC_DOMAIN": DEFAULT_HOSTS["railway"],
        "Postgres.DATABASE_URL": secrets.database_url,
    }

    def reference(match: re.Match[str]) -> str:
        assert match.group(1) in provided, f"variables.env: unknown reference {match.group(0)}"
        return provided[match.group(1)]

    env = {
        name: RAILWAY_REFERENCE.sub(reference, value) for name, value in railway_variables().items()
    }
    env["RAILWAY_PUBLIC_DOMAIN"] = provided["RAILWAY_PUBLIC_DOMAIN"]  # Railway sets it itself
    env[SECRET_KEY] = secrets.secret_key  # `railway variables --set`, as the README says
    if marker is not None:
        env[MARKER] = marker
    return env


def _dokku_env(secrets: Secrets, marker: str | None) -> dict[str, str]:
    create, *later = dokku_config_sets()
    env = {DATABASE_URL: secrets.database_url}  # `dokku postgres:link`
    for name, value in create.items():
        env[name] = secrets.secret_key if SHELL_SUBSTITUTION.match(value) else value
    assert [set(pairs) for pairs in later] == [{MARKER}], later
    if marker is not None:
        env[MARKER] = marker
    return env


def _kubernetes_env(container_of: Callable[[dict[str, Any]], dict[str, Any]]) -> EnvOf:
    def env(secrets: Secrets, marker: str | None) -> dict[str, str]:
        values = helm_values() if marker is None else helm_values(forceLogoutOnDeploy=marker)
        container = container_of(values)
        assert container["envFrom"] == [{"secretRef": {"name": values["secretName"]}}]
        # The Secret, created as values.yaml says: DATABASE_URL and DJANGO_SECRET_KEY.
        secret = {DATABASE_URL: secrets.database_url, SECRET_KEY: secrets.secret_key}
        return {**secret, **env_of(container)}

    return env


def _eb_env(secrets: Secrets, marker: str | None) -> dict[str, str]:
    # `eb setenv DATABASE_URL=... DJANGO_SECRET_KEY=...`, and the marker the same way.
    env = {**eb_environment(), DATABASE_URL: secrets.database_url, SECRET_KEY: secrets.secret_key}
    if marker is not None:
        env[MARKER] = marker
    return env


# The environment of each platform's release step, from its recipe and the operator's secrets.
RELEASE_ENV: dict[str, EnvOf] = {
    "render": _render_env,
    "fly": _fly_env,
    "railway": _railway_env,
    "dokku": _dokku_env,
    "kubernetes": _kubernetes_env(
        lambda values: only_container(helm_kind(RELEASE_JOB, "Job", values))
    ),
    "elastic-beanstalk": _eb_env,
}

# The environment of each platform's web processes (the same but on Kubernetes, where the
# Deployment has its own).
WEB_ENV: dict[str, EnvOf] = {
    **RELEASE_ENV,
    "kubernetes": _kubernetes_env(
        lambda values: only_container(helm_kind(WEB, "Deployment", values))
    ),
}


def host_of(platform: str, env: Mapping[str, str]) -> str:
    """The Host header the platform's router sends: the first allowed host, else its domain."""
    allowed = [host.strip() for host in env.get("DJANGO_ALLOWED_HOSTS", "").split(",")]
    return allowed[0] if allowed[0] else DEFAULT_HOSTS[platform]


def requires_tls(platform: str) -> bool:
    """Whether the platform's release step requires TLS to PostgreSQL, as its recipe sets it."""
    env = RELEASE_ENV[platform](Secrets("postgres://unused", "unused"), None)
    return is_on(env.get("DATABASE_SSL_REQUIRE"))
