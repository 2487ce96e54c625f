"""`pip install` of this repository gives any Django project the `release` app."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.subprocess

SETTINGS = """
SECRET_KEY = "a project that is not the example"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "release",
]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
SESSION_ENGINE = "release.sessions"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "project.sqlite3"}}
USE_TZ = True
FORCE_LOGOUT_VERSION = "2026-11"
"""


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "project_settings"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_a_wheel_of_the_repository_installs_a_working_app(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ROOT, cwd=tmp_path)
    (wheel,) = wheels.glob("django_release_logout-*.whl")
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "project_settings.py").write_text(SETTINGS)

    located = run(python, "-c", "import release; print(release.__file__)", cwd=project)
    migrated = run(python, "-m", "django", "release", cwd=project)
    status = run(python, "-m", "django", "release_status", cwd=project)

    assert located.stdout.startswith(str(environment)), "imported from the install, not the repo"
    assert "Applying release.0001_initial..." in migrated.stdout
    assert "FORCE_LOGOUT_VERSION: unset -> '2026-11', recorded as applied" in migrated.stdout
    assert "Decision: nobody is logged out" in status.stdout
