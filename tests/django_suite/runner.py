"""The TEST_RUNNER of a run of Django's `runtests.py` (see `tests.django_suite`).

Django's DiscoverRunner, which also:
- installs the `release` app (its tables: the guard reads its stamp from them), after runtests
  has chosen the apps of the run;
- in the guarded modes, replaces the `backend` of every test class that has one (the session
  store class the test case exercises) with `release.sessions.guarded_store_class(backend)`;
- sets up the default database in every run, so that each class, run alone or with the others,
  finds the same release history;
- after a logout (mode GUARDED), runs the release command twice in the test database (the
  install with FORCE_LOGOUT_VERSION = 1, then a release with the settings' 2, which logs
  everyone out) and reads the process's stamp before the first test, as a web process does;
- writes every test's outcome, by test id, to the JSON file named by DJANGO_SUITE_OUT.
"""

from __future__ import annotations

import json
import os
import unittest
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.management import call_command
from django.test.runner import DiscoverRunner
from django.test.utils import override_settings

from tests.django_suite.modes import (
    FIRST_MARKER,
    GUARDED,
    GUARDED_MODES,
    MODE_VARIABLE,
    OUT_VARIABLE,
    PLAIN,
)

# The worst outcome of a test wins (a test with a failed subtest failed, whatever came after).
RANK = {
    "passed": 0,
    "skipped": 1,
    "expected failure": 1,
    "unexpected success": 2,
    "failed": 3,
    "error": 4,
}


class RecordingResult(unittest.TextTestResult):
    """unittest's text result, which also keeps each test's outcome and the last line of what
    went wrong."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, str] = {}
        self.details: dict[str, str] = {}

    def record(self, test: unittest.TestCase, outcome: str, err: Any = None) -> None:
        test_id = test.id()
        previous = self.outcomes.get(test_id)
        if previous is None or RANK[outcome] > RANK[previous]:
            self.outcomes[test_id] = outcome
            if err is not None:
                error = err[1]
                self.details[test_id] = f"{type(error).__name__}: {error}".splitlines()[0]

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self.record(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self.record(test, "failed", err)

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self.record(test, "error", err)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self.record(test, "skipped")

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self.record(test, "expected failure")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self.record(test, "unexpected success")

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self.record(test, "failed" if failed else "error", err)


def test_cases(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for test in suite:
            yield from test_cases(test)
    else:
        yield suite


def install_release_app() -> None:
    """Add `release` to the apps runtests installed for this run."""
    if apps.is_installed("release"):
        return
    installed = [*settings.INSTALLED_APPS, "release"]
    apps.unset_installed_apps()
    settings.INSTALLED_APPS = installed
    apps.set_installed_apps(installed)
    # Unguarded, the app's check warns that sessions are not guarded: true, and wanted here.
    settings.SILENCED_SYSTEM_CHECKS = [*settings.SILENCED_SYSTEM_CHECKS, "release.W002"]


class SuiteRunner(DiscoverRunner):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = os.environ.get(MODE_VARIABLE, PLAIN)
        self.guarded_classes: list[str] = []
        self.stamp: str | None = None
        install_release_app()

    def build_suite(self, *args: Any, **kwargs: Any) -> Any:
        suite = super().build_suite(*args, **kwargs)
        if self.mode in GUARDED_MODES:
            from release.sessions import guarded_store_class

            for test in test_cases(suite):
                case = type(test)
                backend = getattr(case, "backend", None)
                if isinstance(backend, type) and issubclass(backend, SessionBase):
                    setattr(case, "backend", guarded_store_class(backend))  # noqa: B010
                    name = f"{case.__module__}.{case.__qualname__}"
                    if name not in self.guarded_classes:
                        self.guarded_classes.append(name)
        return suite

    def get_databases(self, suite: Any) -> Any:
        # {alias: serialized}, where django-stubs still has the set of Django < 4.0.
        databases: Any = super().get_databases(suite)
        return {"default": False, **databases}

    def setup_databases(self, **kwargs: Any) -> Any:
        from release.guard import BLANK, forget_process_stamp, process_stamp

        old_config = super().setup_databases(**kwargs)
        forget_process_stamp()
        if self.mode == GUARDED:
            # R1 installs the tool; R2, with the settings' marker, logs everyone out. This
            # process is one of R2's: it reads its stamp before the first request.
            out = StringIO()
            with override_settings(FORCE_LOGOUT_VERSION=FIRST_MARKER):
                call_command("release", "--skip-migrate", stdout=out, stderr=out)
            call_command("release", "--skip-migrate", stdout=out, stderr=out)
            stamp = process_stamp()
            if stamp == BLANK:
                raise RuntimeError(f"No stamp after a logout: {out.getvalue()}")
            self.stamp = stamp.as_text()
        return old_config

    def get_resultclass(self) -> Any:
        return RecordingResult

    def run_suite(self, suite: Any, **kwargs: Any) -> Any:
        from release.guard import known_stamp

        result: Any = super().run_suite(suite, **kwargs)
        out = os.environ.get(OUT_VARIABLE)
        if out:
            stamp = known_stamp()
            report = {
                "mode": self.mode,
                "session_engine": settings.SESSION_ENGINE,
                "guarded_classes": self.guarded_classes,
                "stamp_set_up": self.stamp,
                "stamp_at_end": None if stamp is None else stamp.as_text(),
                "outcomes": result.outcomes,
                "details": result.details,
            }
            Path(out).write_text(json.dumps(report, indent=1, sort_keys=True))
        return result
