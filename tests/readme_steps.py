"""The README's "Add it to your project" steps, read out of README.md and applied to a project.

`python tests/readme_steps.py settings README.md mysite/settings.py` adds the app to
`INSTALLED_APPS` as the README says and appends the README's settings blocks to the file;
`python tests/readme_steps.py release-command README.md` prints the command of the README's
Procfile release line. Either fails with a message when the README no longer says it.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

SECTION = "## Add it to your project"
ADD_APP = re.compile(r'^\d+\. Add `"([\w.]+)"` to `INSTALLED_APPS`\.$', re.MULTILINE)
PYTHON_BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)
TEXT_BLOCK = re.compile(r"^( *)```text\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)
RELEASE_LINE = "release: "
INSTALLED_APPS = re.compile(r"^INSTALLED_APPS = \[\n(.*?)^\]$", re.MULTILINE | re.DOTALL)


class NotInReadme(Exception):
    """The README does not say what the steps need."""


@dataclass(frozen=True)
class Steps:
    app: str
    settings: list[str]
    release_command: str


def section(readme: str) -> str:
    start = readme.find(f"\n{SECTION}\n")
    if start < 0:
        raise NotInReadme(f'There is no "{SECTION}" section.')
    body = readme[start + len(SECTION) + 2 :]
    following = re.search(r"^## ", body, re.MULTILINE)
    return body[: following.start()] if following else body


def steps(readme: str) -> Steps:
    text = section(readme)
    app = ADD_APP.search(text)
    if app is None:
        raise NotInReadme(
            f'The "{SECTION}" section has no step "Add `"<app>"` to `INSTALLED_APPS`."'
        )
    blocks = [textwrap.dedent(block) for _, block in PYTHON_BLOCK.findall(text)]
    if not blocks:
        raise NotInReadme(f'The "{SECTION}" section has no ```python block.')
    release_lines = [
        line.strip()
        for _, block in TEXT_BLOCK.findall(text)
        for line in block.splitlines()
        if line.strip().startswith(RELEASE_LINE)
    ]
    if not release_lines:
        raise NotInReadme(f'The "{SECTION}" section has no Procfile "{RELEASE_LINE}..." line.')
    return Steps(app.group(1), blocks, release_lines[0].removeprefix(RELEASE_LINE))


def add_app(settings: str, app: str) -> str:
    """Insert `app` as the last entry of the settings' `INSTALLED_APPS` list."""
    found = INSTALLED_APPS.search(settings)
    if found is None:
        raise NotInReadme("The settings file has no `INSTALLED_APPS = [...]` list to add to.")
    return f'{settings[: found.end(1)]}    "{app}",\n{settings[found.end(1) :]}'


def apply(readme: str, settings: str) -> tuple[str, str]:
    """The settings with the README's steps applied, and what was added, to show."""
    found = steps(readme)
    added = "\n".join(found.settings)
    shown = f'Added "{found.app}" to INSTALLED_APPS, then appended:\n{added}'
    return add_app(settings, found.app) + "\n" + added, shown


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="The README's steps to add the app to a project.")
    commands = parser.add_subparsers(dest="command", required=True)
    settings_command = commands.add_parser("settings", help="apply the steps to a settings file")
    settings_command.add_argument("readme", type=Path)
    settings_command.add_argument("settings", type=Path)
    release_command = commands.add_parser("release-command", help="print the release command")
    release_command.add_argument("readme", type=Path)
    arguments = parser.parse_args(argv)
    readme = arguments.readme.read_text()
    try:
        if arguments.command == "settings":
            settings, added = apply(readme, arguments.settings.read_text())
            arguments.settings.write_text(settings)
            print(added, end="")
        else:
            print(steps(readme).release_command)
    except NotInReadme as error:
        print(f"{arguments.readme}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
