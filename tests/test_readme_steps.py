"""The README's "Add it to your project" steps, as tests/package_check.sh reads them, make a new
project's settings use the app; a README that no longer says them fails loudly."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

from tests.conftest import ROOT
from tests.readme_steps import SECTION, NotInReadme, apply, steps

README = (ROOT / "README.md").read_text()


def test_the_steps_make_a_startproject_use_the_guard(tmp_path: Path) -> None:
    call_command("startproject", "mysite", str(tmp_path))
    settings_file = tmp_path / "mysite" / "settings.py"
    before = settings_file.read_text()

    after, _ = apply(README, before)
    settings: dict[str, object] = {"__file__": str(settings_file)}
    exec(compile(after, str(settings_file), "exec"), settings)

    assert "release" not in before
    assert settings["INSTALLED_APPS"] == [
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.staticfiles",
        "release",
    ]
    assert settings["FORCE_LOGOUT_VERSION"] == 1
    assert settings["SESSION_ENGINE"] == "release.sessions"
    assert settings["RELEASE_SESSION_ENGINE"] == "django.contrib.sessions.backends.db"


def test_the_release_command_is_the_procfiles() -> None:
    procfile = (ROOT / "Procfile").read_text().splitlines()
    release_line = next(line for line in procfile if line.startswith("release:"))

    assert steps(README).release_command == release_line.removeprefix("release: ")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (SECTION, "## Use it"),
        ('Add `"release"` to `INSTALLED_APPS`', "Add the app"),
        ("```python", "```py"),
        ("release: python", "web: python"),
    ],
    ids=["section", "app", "settings", "release line"],
)
def test_a_readme_without_a_step_is_refused(old: str, new: str) -> None:
    changed = README.replace(old, new)

    assert changed != README
    with pytest.raises(NotInReadme):
        steps(changed)
