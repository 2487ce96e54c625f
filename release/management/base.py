"""What the three commands share: connect first, then the system checks, so that a database
that is down gets one line and not the traceback of a check that queried it; one way to turn a
failure into the command's error; one way to print an outcome."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from release import conf
from release.apply import Outcome
from release.decision.history import history_alias
from release.exceptions import ReleaseError
from release.report import log_outcome, outcome_json, outcome_lines, printed_once
from release.text import folded, one_line

RETRY = "Fix the cause, then deploy again or run `heroku releases:retry`."


class ReleaseCommand(BaseCommand):
    # Run by `connect_and_check()` once the database answers (MariaDB's own checks query it).
    requires_system_checks: list[str] = []
    retry = RETRY

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument("--skip-checks", action="store_true", help="Skip system checks.")
        return parser

    def execute(self, *args: Any, **options: Any) -> Any:
        with printed_once():
            return super().execute(*args, **options)

    def connect_and_check(self, options: dict[str, Any]) -> str:
        """Connect to the app's database, then run every system check against it; its alias."""
        conf.limit_connect_wait()
        alias = history_alias()
        try:
            connections[alias].ensure_connection()
        except DatabaseError as error:
            raise CommandError(
                f"Cannot connect to database {alias!r}: {one_line(error)}. Check DATABASE_URL "
                f"and that the database is running. Nobody was logged out and nothing was "
                f"recorded. {self.retry}"
            ) from error
        if not options.get("skip_checks"):
            self.check(databases=[alias])
        return alias

    def failure(self, error: ReleaseError | DatabaseError) -> str:
        """The one-line message of a failed release or logout, with what to do next."""
        if isinstance(error, ReleaseError):
            return f"{folded(error)} {self.retry}"
        return (
            f"The release step failed: {one_line(error)}. Nobody was logged out and nothing "
            f"was recorded. {self.retry}"
        )

    def emit(self, outcome: Outcome, *, as_json: bool, dry_run: bool = False) -> None:
        """The outcome: one log record, and the summary as lines or as one JSON document."""
        log_outcome(outcome, dry_run=dry_run)
        if as_json:
            self.stdout.write(json.dumps(outcome_json(outcome, dry_run=dry_run), indent=2))
            return
        for line in outcome_lines(outcome, dry_run=dry_run):
            self.stdout.write(line)
