from __future__ import annotations

import json
import time
from argparse import ArgumentParser
from dataclasses import replace
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import DatabaseError

from release.apply import apply_release, preview_release
from release.conf import FAIL_OPEN_SETTING, fail_open
from release.exceptions import ReleaseError, Terminated
from release.management.base import RETRY, ReleaseCommand
from release.management.termination import stopping_on_sigterm
from release.report import JSON_VERSION, ProgressReport, logger
from release.text import one_line


class Command(ReleaseCommand):
    help = (
        "The release phase: migrate, then log everyone out if FORCE_LOGOUT_VERSION or "
        "FORCE_LOGOUT_ON_DEPLOY has a value this database has never applied."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--skip-migrate",
            action="store_true",
            help="Do not run `migrate --no-input` first.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Say what would happen and change nothing, migrations included.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print the summary as one JSON document on stdout (migrations and progress go "
            "to stderr).",
        )
        parser.add_argument(
            "--logout-on-install",
            action="store_true",
            help="On the first release with the tool, log everyone out instead of only "
            "recording the markers. Has no effect on later releases.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        self.as_json: bool = options["json"]
        # With --json, stdout holds the document alone.
        self.chatter = self.stderr if self.as_json else self.stdout
        try:
            with stopping_on_sigterm():
                self.connect_and_check(options)
                self.migrate_seconds: float | None = None
                if not options["skip_migrate"]:
                    started = time.monotonic()
                    self.migrate(dry_run=dry_run, verbosity=options["verbosity"])
                    self.migrate_seconds = time.monotonic() - started
                self.run_release_step(
                    dry_run=dry_run, logout_on_install=options["logout_on_install"]
                )
        except SystemCheckError:
            raise  # Django prints the checks' own report
        except CommandError as error:
            logger.error("%s", error)
            raise
        except Terminated as error:
            logger.error("%s", error)
            raise CommandError(str(error)) from error

    def migrate(self, *, dry_run: bool, verbosity: int) -> None:
        try:
            # migrate's own output, byte for byte: the stream, not this command's wrapper of it
            # (which would end each of migrate's `ending=""` writes with a line break).
            stream = self.chatter._out
            if dry_run:
                call_command("migrate", plan=True, verbosity=verbosity, stdout=stream)
            else:
                call_command("migrate", interactive=False, verbosity=verbosity, stdout=stream)
        except (DatabaseError, CommandError) as error:
            raise CommandError(
                f"`migrate` failed: {one_line(error)}. Nobody was logged out and nothing was "
                f"recorded. {RETRY}"
            ) from error

    def run_release_step(self, *, dry_run: bool, logout_on_install: bool) -> None:
        try:
            if dry_run:
                outcome = preview_release(logout_on_install=logout_on_install, refusals=True)
            else:
                outcome = apply_release(
                    logout_on_install=logout_on_install,
                    progress=ProgressReport(self.chatter.write),
                )
        except Terminated:
            raise
        except (ReleaseError, DatabaseError) as error:
            message = self.failure(error)
            if dry_run or not fail_open():
                raise CommandError(message) from error
            self.fail_open(message)
            return
        if self.migrate_seconds is not None:
            outcome = replace(outcome, steps={"migrate": self.migrate_seconds, **outcome.steps})
        self.emit(outcome, as_json=self.as_json, dry_run=dry_run)

    def fail_open(self, message: str) -> None:
        warning = (
            f"WARNING: THE LOGOUT FAILED AND THIS RELEASE GOES OUT ANYWAY, because "
            f"{FAIL_OPEN_SETTING} is True. The markers stay unapplied, so the next release "
            f"tries again. {message}"
        )
        logger.warning("%s", warning)
        if self.as_json:
            self.stderr.write(warning)
            document = {"version": JSON_VERSION, "failed_open": True, "error": message}
            self.stdout.write(json.dumps(document, indent=2))
        else:
            self.stdout.write(self.style.ERROR(warning))
