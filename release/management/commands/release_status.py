from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from release.exceptions import ReleaseError
from release.management.base import ReleaseCommand
from release.status import Status


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
        status = Status.collect(options["limit"])
        try:
            if options["json"]:
                self.stdout.write(json.dumps(status.json(), indent=2))
                return
            for line in status.history_lines():
                self.stdout.write(line)
            self.stdout.write("Next release, with the markers of this process:")
            for line in status.next_release_lines():
                self.stdout.write(line)
        except ReleaseError as error:
            raise CommandError(str(error)) from error
