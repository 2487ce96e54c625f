from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from release.apply import preview_release
from release.exceptions import ReleaseError
from release.management.base import ReleaseCommand
from release.models import Logout
from release.plan import history_alias, is_installed
from release.report import (
    JSON_VERSION,
    history_json,
    history_line,
    outcome_json,
    outcome_lines,
)


class Command(ReleaseCommand):
    help = "Show the logouts this database has applied and what the next release would do."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--limit", type=int, default=20, help="How many history entries to show (20)."
        )
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON document on stdout."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.connect_and_check(options)
        if options["json"]:
            self.stdout.write(json.dumps(self.document(options["limit"]), indent=2))
            return
        alias = history_alias()
        if not is_installed(alias):
            self.stdout.write(
                f"No history: the release app's tables do not exist on database {alias!r} yet."
            )
        else:
            records = list(Logout.objects.using(alias).order_by("-epoch")[: options["limit"]])
            self.stdout.write(f"History on database {alias!r}, newest first:")
            if not records:
                self.stdout.write("  (empty: no release with the tool has run here yet)")
            for record in records:
                self.stdout.write(history_line(record))
        self.stdout.write("Next release, with the markers of this process:")
        try:
            outcome = preview_release()
        except ReleaseError as error:
            raise CommandError(str(error)) from error
        for line in outcome_lines(outcome, dry_run=True):
            self.stdout.write(f"  {line}")

    def document(self, limit: int) -> dict[str, Any]:
        alias = history_alias()
        installed = is_installed(alias)
        records = Logout.objects.using(alias).order_by("-epoch")[:limit] if installed else []
        try:
            outcome = preview_release()
        except ReleaseError as error:
            raise CommandError(str(error)) from error
        return {
            "version": JSON_VERSION,
            "database": alias,
            "installed": installed,
            "history": [history_json(record) for record in records],
            "next_release": outcome_json(outcome, dry_run=True),
        }
