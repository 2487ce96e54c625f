from __future__ import annotations

import json
import os
from argparse import ArgumentParser
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from release.apply import apply_release, preview_release
from release.conf import FAIL_OPEN_SETTING, fail_open
from release.exceptions import ReleaseError
from release.plan import history_alias
from release.report import (
    JSON_VERSION,
    ProgressReport,
    log_outcome,
    logger,
    outcome_json,
    outcome_lines,
)
from release.termination import Terminated, stopping_on_sigterm
from release.text import one_line

RETRY = "Fix the cause, then deploy again or run `heroku releases:retry`."
# Seconds libpq waits for a PostgreSQL connection, unless the environment says otherwise: a
# database that does not answer fails the release in seconds, not in the dyno's hour.
CONNECT_TIMEOUT = 10


class Command(BaseCommand):
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
        os.environ.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT))
        dry_run: bool = options["dry_run"]
        self.as_json: bool = options["json"]
        # With --json, stdout holds the document alone.
        self.chatter = self.stderr if self.as_json else self.stdout
        try:
            with stopping_on_sigterm():
                self.connect()
                if not options["skip_migrate"]:
                    self.migrate(dry_run=dry_run, verbosity=options["verbosity"])
                self.release(dry_run=dry_run, logout_on_install=options["logout_on_install"])
        except CommandError as error:
            logger.error("%s", error)
            raise
        except Terminated as error:
            logger.error("%s", error)
            raise CommandError(str(error)) from error

    def connect(self) -> None:
        alias = history_alias()
        try:
            connections[alias].ensure_connection()
        except DatabaseError as error:
            raise CommandError(
                f"Cannot connect to database {alias!r}: {one_line(error)}. Check DATABASE_URL "
                f"and that the database is running. Nobody was logged out and nothing was "
                f"recorded. {RETRY}"
            ) from error

    def migrate(self, *, dry_run: bool, verbosity: int) -> None:
        try:
            if dry_run:
                call_command("migrate", plan=True, verbosity=verbosity, stdout=self.chatter)
            else:
                call_command("migrate", interactive=False, verbosity=verbosity, stdout=self.chatter)
        except (DatabaseError, CommandError) as error:
            raise CommandError(
                f"`migrate` failed: {one_line(error)}. Nobody was logged out and nothing was "
                f"recorded. {RETRY}"
            ) from error

    def release(self, *, dry_run: bool, logout_on_install: bool) -> None:
        try:
            if dry_run:
                outcome = preview_release(logout_on_install=logout_on_install)
            else:
                outcome = apply_release(
                    logout_on_install=logout_on_install,
                    progress=ProgressReport(self.chatter.write),
                )
        except Terminated:
            raise
        except (ReleaseError, DatabaseError) as error:
            if isinstance(error, ReleaseError):
                message = f"{one_line(error)} {RETRY}"
            else:
                message = (
                    f"The release step failed and was rolled back: {one_line(error)}. Nobody "
                    f"was logged out and nothing was recorded. {RETRY}"
                )
            if dry_run or not fail_open():
                raise CommandError(message) from error
            self.fail_open(message)
            return
        log_outcome(outcome, dry_run=dry_run)
        if self.as_json:
            self.stdout.write(json.dumps(outcome_json(outcome, dry_run=dry_run), indent=2))
            return
        for line in outcome_lines(outcome, dry_run=dry_run):
            self.stdout.write(line)

    def fail_open(self, message: str) -> None:
        warning = (
            f"WARNING: THE LOGOUT FAILED AND THIS RELEASE GOES OUT ANYWAY, because "
            f"{FAIL_OPEN_SETTING} is True. Nobody was logged out; the markers stay unapplied, "
            f"so the next release tries again. {message}"
        )
        logger.warning("%s", warning)
        self.stderr.write(warning)
        if self.as_json:
            document = {"version": JSON_VERSION, "failed_open": True, "error": message}
            self.stdout.write(json.dumps(document, indent=2))
        else:
            self.stdout.write(self.style.ERROR(warning))
