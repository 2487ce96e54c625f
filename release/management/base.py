"""What the three commands share: connect first, then the system checks, so that a database
that is down gets one line and not the traceback of a check that queried it."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from release.plan import history_alias
from release.text import one_line

RETRY = "Fix the cause, then deploy again or run `heroku releases:retry`."
# Seconds libpq waits for a PostgreSQL connection, unless the environment says otherwise: a
# database that does not answer fails the command in seconds, not in the dyno's hour.
CONNECT_TIMEOUT = 10


class ReleaseCommand(BaseCommand):
    # Run by `connect_and_check()` once the database answers (MariaDB's own checks query it).
    requires_system_checks: list[str] = []
    retry = RETRY

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument("--skip-checks", action="store_true", help="Skip system checks.")
        return parser

    def connect_and_check(self, options: dict[str, Any]) -> str:
        """Connect to the app's database, then run every system check against it; its alias."""
        os.environ.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT))
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
