"""The README says what the code does: settings, commands, options, check IDs, Procfile line."""

from __future__ import annotations

import re

import pytest
from django.core.management import load_command_class
from django.core.management.base import BaseCommand

from release import conf
from release.clearing import dependents as rules
from release.clearing import keys as cache_keys
from release.clearing import tables
from release.vendors import PostgreSQL
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
COMMANDS = ["release", "release_status", "force_logout"]


def section(heading: str) -> str:
    start = README.index(f"\n{heading}\n")
    level = heading.split(" ")[0]
    following = re.search(rf"\n#{{2,{len(level)}}} ", README[start + len(heading) + 2 :])
    end = start + len(heading) + 2 + following.start() if following else len(README)
    return README[start:end]


def first_column(text: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)`", text, flags=re.MULTILINE))


def own_options(name: str) -> set[str]:
    """The options a command adds to those every Django command has."""
    common = {
        option
        for action in BaseCommand().create_parser("manage.py", "x")._actions
        for option in action.option_strings
    }
    parser = load_command_class("release", name).create_parser("manage.py", name)
    return {
        action.option_strings[0]
        for action in parser._actions
        if action.option_strings and action.option_strings[0] not in common
    }


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_documented(name: str) -> None:
    documented = {option.split(" ")[0] for option in first_column(section(f"### `{name}`"))}

    assert documented == own_options(name)


def test_check_ids_are_documented() -> None:
    source = (ROOT / "release" / "checks.py").read_text()
    in_code = set(re.findall(r"release\.[EW]\d{3}", source))

    assert in_code
    assert first_column(section("## System checks")) == in_code


def test_settings_are_documented() -> None:
    assert first_column(section("## Settings")) >= {
        conf.CODE_MARKER_SETTING,
        conf.CONFIG_MARKER_VAR,
        conf.FAIL_OPEN_SETTING,
        conf.STORAGE_ENGINE_SETTING,
        conf.SESSION_MODEL_SETTING,
        conf.LOGOUT_MESSAGE_SETTING,
    }


def test_example_environment_is_documented() -> None:
    settings_source = (ROOT / "example_project" / "settings.py").read_text()
    read = set(re.findall(r'os\.environ(?:\.get)?[\[(]"([A-Z_]+)"', settings_source))
    read |= set(re.findall(r'env_flag\("([A-Z_]+)"', settings_source))
    read.discard("DYNO")  # set by Heroku, described in prose
    read.discard("CI")

    documented = first_column(section("## Settings")) - {
        conf.CODE_MARKER_SETTING,
        conf.CONFIG_MARKER_VAR,
        conf.STORAGE_ENGINE_SETTING,
        conf.SESSION_MODEL_SETTING,
        conf.LOGOUT_MESSAGE_SETTING,
    }

    assert documented == read


def test_procfile_release_line_is_the_documented_one() -> None:
    procfile = (ROOT / "Procfile").read_text().splitlines()
    release_line = next(line for line in procfile if line.startswith("release:"))

    assert re.search(rf"^ *{re.escape(release_line)}$", README, flags=re.MULTILINE)
    assert "release: python manage.py release --logout-on-install" in README


def test_exit_codes_are_documented() -> None:
    codes = re.findall(r"^\| (\d) \|", section("### Exit codes"), flags=re.MULTILINE)
    assert codes == ["0", "1", "2"]


STACK_REQUIREMENTS = ["memcached", "channels", "stacks", "package"]


def requirements(path: str) -> set[str]:
    lines = (ROOT / path).read_text().splitlines()
    return {
        re.split(r"[<>=\[ ]", line)[0]
        for line in lines
        if line.strip() and not line.startswith(("#", "-r"))
    }


def test_dependencies_are_documented() -> None:
    packages = requirements("requirements.txt") - {"Django"}
    for stack in STACK_REQUIREMENTS:
        packages |= requirements(f"tests/requirements-{stack}.txt")
    named = re.findall(r"^\| ((?:`[^`]+`(?:, )?)+) \|", section("## Dependencies"), re.MULTILINE)
    documented = {name.split("[")[0] for cell in named for name in re.findall(r"`([^`]+)`", cell)}

    assert documented == packages


def test_quickstart_has_two_commands() -> None:
    blocks = re.findall(r"^```sh\n(.*?)\n```$", section("## Quickstart"), re.DOTALL | re.MULTILINE)

    assert len(blocks) == 2
    assert all("\n" not in block for block in blocks)
    assert "manage.py release" in blocks[0]
    assert "pytest" in blocks[1]


def test_the_layout_names_every_module_and_folder_of_the_app() -> None:
    block = README.split("## Layout", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    listed, folders = set(), ["release/"]
    for line in block.splitlines()[1:]:
        name = line.split()[0]
        depth = (len(line) - len(line.lstrip())) // 2  # under release/: 1
        del folders[depth:]
        listed.add("".join(folders) + name)
        if name.endswith("/"):
            folders.append(name)
    release = ROOT / "release"
    modules = {
        f"{path.relative_to(ROOT)}/" if path.is_dir() else str(path.relative_to(ROOT))
        for path in release.rglob("*")
        if (path.is_dir() or path.suffix == ".py")
        and "__pycache__" not in path.parts
        and path.parent.name not in {"migrations", "commands"}
        and not (path.name == "__init__.py" and path.parent != release / "clearing")
        and "templates" not in path.parts
    }
    assert listed == modules


def test_big_tables_gives_the_clear_s_own_numbers() -> None:
    text = " ".join(section("## Big tables and a busy site").split())
    assert (
        "`LOCK TABLE ... NOWAIT`, which queues nobody), one right after another for "
        f"{tables.FREE_SECONDS:g} s"
    ) in text
    assert f"attempts that wait up to {tables.LOCK_TIMEOUT_MS} ms each (`lock_timeout`)" in text
    low, high = (round(s * 1000) for s in tables.WAITING_PAUSE_S)
    assert f"{low} to {high} ms apart, up to {tables.WAITING_ATTEMPTS} of them" in text
    assert f"Above {tables.EXACT_COUNT_UP_TO:,} rows the summary gives PostgreSQL's" in text
    assert f"batches of {rules.BATCH_ROWS:,} rows" in text
    engines = " ".join(section("## Session engines").split())
    assert f"`SCAN` with a coarse `MATCH` ({cache_keys.SCAN_COUNT:,} keys a step)" in engines
    assert f"what each step found, {cache_keys.UNLINK_NAMES} keys at a time" in engines
    assert f"batches of {rules.BATCH_ROWS_WITH_DEPENDENTS:,} sessions in key order" in text
    assert f"(`vacuum_cost_delay` {PostgreSQL.VACUUM_COST_DELAY_MS} ms;" in text
    vacuum_wait = PostgreSQL.VACUUM_LOCK_TIMEOUT_MS / 1000
    assert f"waited for {vacuum_wait:g} s at most, then the release goes on without" in text


def test_benchmark_options_are_the_suites() -> None:
    """Every option of `python -m benchmarks` is in the README's Performance section, and every
    option that section gives the suite exists."""
    from benchmarks.cli import parser
    from benchmarks.config import ALL_METHODS_UP_TO

    suite = {
        action.option_strings[-1]
        for action in parser()._actions
        if action.option_strings and action.option_strings[-1] != "--help"
    }
    text = section("## Performance")
    intro = text[: text.index("#### Targets")]
    # The fs_stall helper's and the release command's own options are not the suite's.
    mentioned = set(re.findall(r"`(--[a-z][a-z-]+)", intro)) - {"--skip-migrate", "--json"}

    assert suite <= mentioned, suite - mentioned
    assert mentioned <= suite, mentioned - suite
    only_two = " ".join(intro.split())
    assert f"above {ALL_METHODS_UP_TO:,} sessions only the release and `delete()`" in only_two


def test_benchmark_run_splices_into_the_readme() -> None:
    """`python -m benchmarks.readme` finds what it replaces: the README's own run line and tables,
    given back as a run's results.md, leave it as it is; a new run's replace them."""
    from benchmarks.config import REPORT_TITLE
    from benchmarks.readme import RUN_LINE, spliced

    machine, command = RUN_LINE.search(README).group().split(" Command:\n")  # type: ignore[union-attr]
    tables = README[README.index("#### Targets") : README.index("\n## License")]
    own = "{}\n\n{}\n\nCommand: {}\n\n{}".format(
        REPORT_TITLE,
        machine.removeprefix("Measured with nothing else running: "),
        command,
        re.sub("^####", "###", tables, flags=re.MULTILINE),
    )
    new = "# Release logout benchmark\n\nA machine.\n\nCommand: `python -m benchmarks` (1 min).\n\n"
    new += "### Targets\n\n| target |\n"

    assert spliced(README, own) == README
    after = spliced(README, new)
    assert "running: A machine. Command:\n`python -m benchmarks` (1 min).\n" in after
    assert (
        after.split("#### Targets")[1]
        == "\n\n| target |\n\n## License" + README.split("\n## License")[1]
    )


TINY_RUN = "# Release logout benchmark\n\nM.\n\nCommand: `c`\n\n### Targets\n"


@pytest.mark.parametrize(
    ("readme", "results", "message"),
    [
        (README, "# Release logout benchmark\n\nno command", "does not start with the machine"),
        ("no run line", TINY_RUN, "no single line"),
        (
            "Measured with nothing else running: M. Command:\n`python -m benchmarks` (1 min).",
            TINY_RUN,
            "no '#### Targets' before '## License'",
        ),
    ],
)
def test_benchmark_splice_refuses_what_it_cannot_place(
    readme: str, results: str, message: str
) -> None:
    from benchmarks.readme import SpliceError, spliced

    with pytest.raises(SpliceError, match=re.escape(message)):
        spliced(readme, results)
