from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from release.apply import apply_release, preview_release
from release.exceptions import ReleaseError
from release.report import outcome_lines

RETRY = "Fix the cause, then deploy again or run `heroku releases:retry`."


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
            "--logout-on-install",
            action="store_true",
            help="On the first release with the tool, log everyone out instead of only "
            "recording the markers. Has no effect on later releases.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        if not options["skip_migrate"]:
            self.migrate(dry_run=dry_run, verbosity=options["verbosity"])
        try:
            if dry_run:
                outcome = preview_release(logout_on_install=options["logout_on_install"])
            else:
                outcome = apply_release(logout_on_install=options["logout_on_install"])
        except ReleaseError as error:
            raise CommandError(f"{error} {RETRY}") from error
        except DatabaseError as error:
            raise CommandError(
                f"The release step failed and was rolled back: {error}. Nobody was logged out "
                f"and nothing was recorded. {RETRY}"
            ) from error
        for line in outcome_lines(outcome, dry_run=dry_run):
            self.stdout.write(line)

    def migrate(self, *, dry_run: bool, verbosity: int) -> None:
        try:
            if dry_run:
                call_command("migrate", plan=True, verbosity=verbosity, stdout=self.stdout)
            else:
                call_command("migrate", interactive=False, verbosity=verbosity, stdout=self.stdout)
        except (DatabaseError, CommandError) as error:
            raise CommandError(
                f"`migrate` failed: {error}. Nobody was logged out and nothing was recorded. "
                f"{RETRY}"
            ) from error
