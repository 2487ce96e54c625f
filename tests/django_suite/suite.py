"""The command: fetch Django's tests, run them in each mode, compare (see `tests.django_suite`)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django

from tests.django_suite.modes import GUARDED, GUARDED_MODES, MODES, PLAIN

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_CACHE = ROOT / ".cache" / "django-suite"
APP = "sessions_tests"
RUN_TIMEOUT = 600.0
# What the environment must not steer: the settings, the databases, the markers.
CLEARED_ENV = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "FORCE_LOGOUT_ON_DEPLOY")
ORDER = ("passed", "failed", "error", "skipped", "expected failure", "unexpected success")


def say(text: str) -> None:
    print(text, flush=True)


def django_tests(version: str, cache: Path) -> Path:
    """Django's `tests/` directory of `version`, from its sdist, downloaded once into `cache`."""
    home = cache / version
    tests = home / "tests"
    if (home / "complete").exists():
        return tests
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    say(f"Downloading the source distribution of Django {version} into {home}")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-binary",
            ":all:",
            "--no-deps",
            f"Django=={version}",
            "--dest",
            str(home),
        ],
        check=True,
        timeout=600,
    )
    (sdist,) = home.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = archive.getmembers()
        top = members[0].name.split("/")[0]
        wanted = [m for m in members if m.name.startswith(f"{top}/tests/")]
        for member in wanted:
            member.name = member.name.removeprefix(f"{top}/")
        archive.extractall(home, members=wanted, filter="data")
    if not (tests / "runtests.py").exists():
        raise RuntimeError(f"{sdist.name} has no tests/runtests.py")
    (home / "complete").write_text(f"{sdist.name}\n")
    return tests


@dataclass
class Run:
    mode: str
    label: str  # the app, or one test class
    seconds: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def outcomes(self) -> dict[str, str]:
        outcomes: dict[str, str] = self.report.get("outcomes", {})
        return outcomes

    def counts(self) -> str:
        counted = Counter(self.outcomes.values())
        parts = [f"{counted[name]} {name}" for name in ORDER if counted[name]]
        return f"{', '.join(parts)} ({len(self.outcomes)} tests)"


def child_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in CLEARED_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(tests: Path, mode: str, label: str, workdir: Path) -> Run:
    result = Run(mode, label)
    out = workdir / f"{mode}-{label}.json"
    argv = [sys.executable, "-m", "tests.django_suite.child", str(tests), mode, str(out), label]
    started = time.monotonic()
    try:
        process = subprocess.run(
            argv,
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        result.problem = f"timed out after {RUN_TIMEOUT:.0f} s"
        return result
    result.seconds = time.monotonic() - started
    if not out.exists():
        tail = (process.stderr.strip() or process.stdout.strip()).splitlines()[-15:]
        result.problem = f"no results (exit code {process.returncode}):\n    " + "\n    ".join(tail)
        return result
    result.report = json.loads(out.read_text())
    result.problem = guard_problem(result)
    return result


def guard_problem(result: Run) -> str | None:
    """Why a run did not test what its mode says, if it did not."""
    report = result.report
    if not result.outcomes:
        return "no test ran"
    if result.mode == PLAIN:
        if report["session_engine"] == "release.sessions" or report["guarded_classes"]:
            return "the plain run was guarded"
        return None
    if report["session_engine"] != "release.sessions":
        return f"SESSION_ENGINE is {report['session_engine']!r}, not the guard"
    classes_with_backend = {test_class(test_id) for test_id in result.outcomes} & set(
        report["guarded_classes"]
    )
    if result.label == APP and not classes_with_backend:
        return "no test class's backend was guarded"
    if result.mode == GUARDED and report["stamp_at_end"] in (None, "0.0"):
        return f"no stamp after the logout ({report['stamp_at_end']})"
    return None


def test_class(test_id: str) -> str:
    """The test class of a test id; for errors of a class's setup, "setUpClass (module.Class)"."""
    if " (" in test_id:
        return test_id.split(" (", 1)[1].rstrip(")")
    return test_id.rsplit(".", 1)[0]


def differences(plain: Run, guarded: Run) -> list[str]:
    lines = []
    for test_id in sorted(set(plain.outcomes) | set(guarded.outcomes)):
        expected = plain.outcomes.get(test_id, "not run")
        got = guarded.outcomes.get(test_id, "not run")
        if expected != got:
            detail = guarded.report.get("details", {}).get(test_id, "")
            lines.append(f"{test_id}: plain {expected}, {guarded.mode} {got}  {detail}".rstrip())
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.django_suite",
        description="Run Django's own sessions_tests plainly and through release.sessions, all "
        "classes together and each alone, and compare every test's outcome.",
    )
    p.add_argument("--jobs", type=int, default=2, help="runtests processes at once (default 2)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where sdists are kept")
    p.add_argument("--tests-dir", type=Path, help="a Django tests/ directory to use instead")
    p.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated, among {','.join(MODES)} (plain always runs)",
    )
    p.add_argument("--no-alone", action="store_true", help="skip the runs of each class alone")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    modes = [PLAIN, *(m for m in args.modes.split(",") if m in GUARDED_MODES)]
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser().error(f"unknown modes: {', '.join(sorted(unknown))}")
    version = django.get_version()
    started = time.monotonic()
    try:
        tests = args.tests_dir.resolve() if args.tests_dir else django_tests(version, args.cache)
    except (OSError, RuntimeError, subprocess.SubprocessError, tarfile.TarError) as error:
        say(f"Django {version} {APP}: no tests to run: {type(error).__name__}: {error}")
        return 1
    problems: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="django-suite-") as tmp,
        ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool,
    ):
        workdir = Path(tmp)
        runs = pool.map(lambda mode: run(tests, mode, APP, workdir), modes)
        together = dict(zip(modes, runs, strict=True))
        plain = together[PLAIN]
        for mode, result in together.items():
            if result.problem:
                problems.append(f"{mode}, {APP}: {result.problem}")
        if plain.problem:
            say(f"Django {version} {APP}: the plain run failed: {plain.problem}")
            return 1
        say(f"Django {version} {APP}, all classes together, {plain.seconds:.1f} s each:")
        say(f"  {PLAIN}: {plain.counts()}")
        for mode in modes[1:]:
            result = together[mode]
            if result.problem:
                say(f"  {mode}: {result.problem}")
                continue
            diff = differences(plain, result)
            problems += [f"{mode}, {APP}: {line}" for line in diff]
            verdict = "identical" if not diff else f"{len(diff)} DIFFERENT"
            stamp = result.report["stamp_at_end"]
            say(
                f"  {mode}: {verdict}: {result.counts()}; {len(result.report['guarded_classes'])}"
                f" backends guarded, stamp {stamp}"
            )

        classes = sorted({test_class(test_id) for test_id in plain.outcomes})
        alone_summary = "not run (--no-alone)"
        if not args.no_alone:
            jobs = [(mode, label) for label in classes for mode in modes]
            alone = {
                (r.mode, r.label): r
                for r in pool.map(lambda job: run(tests, job[0], job[1], workdir), jobs)
            }
            different = []
            for label in classes:
                base = alone[PLAIN, label]
                if base.problem:
                    problems.append(f"{PLAIN}, {label} alone: {base.problem}")
                    different.append(label)
                    continue
                for mode in modes[1:]:
                    result = alone[mode, label]
                    guarded = together[mode].report.get("guarded_classes", [])
                    if not result.problem and label not in result.report["guarded_classes"]:
                        result.problem = "its backend was not guarded" if label in guarded else None
                    diff = [] if result.problem else differences(base, result)
                    if result.problem:
                        problems.append(f"{mode}, {label} alone: {result.problem}")
                    problems += [f"{mode}, {label} alone: {line}" for line in diff]
                    if result.problem or diff:
                        different.append(label)
            total = sum(len(r.outcomes) for r in alone.values() if r.mode == PLAIN)
            alone_summary = (
                "identical" if not different else f"{len(set(different))} classes DIFFERENT"
            )
            alone_summary += f" ({total} tests, {len(jobs)} runs)"
        say(f"  {len(classes)} classes alone, in each mode: {alone_summary}")

    modes_text = ", ".join(modes[1:])
    verdict = "identical" if not problems else f"{len(problems)} PROBLEMS"
    say(
        f"Django {version} {APP}: {PLAIN} {plain.counts()}; {modes_text}: {verdict}; "
        f"{len(classes)} classes alone: {alone_summary} [{time.monotonic() - started:.0f} s]"
    )
    for problem in problems:
        say(f"  {problem}")
    return 1 if problems else 0
