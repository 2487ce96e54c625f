from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from release.apply import force_logout
from release.exceptions import ReleaseError
from release.management.base import ReleaseCommand
from release.management.termination import stopping_on_sigterm
from release.report import ProgressReport


class Command(ReleaseCommand):
    retry = "Fix the cause and run the command again."

    help = "Log everyone out now, without changing a marker, and record the reason in the history."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--reason", required=True, help="Why, for the history (required).")
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print the summary as one JSON document on stdout (progress goes to stderr).",
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["interactive"]:
            answer = input("This logs every user out now. Type 'yes' to continue: ")
            if answer.strip().lower() != "yes":
                raise CommandError("Cancelled: nobody was logged out.")
        self.connect_and_check(options)
        try:
            with stopping_on_sigterm():
                chatter = self.stderr if options["json"] else self.stdout
                outcome = force_logout(options["reason"], progress=ProgressReport(chatter.write))
        except ReleaseError as error:
            raise CommandError(self.failure(error)) from error
        self.emit(outcome, as_json=options["json"])
        if not options["json"]:
            self.stdout.write(
                "Restart the web dynos now (`heroku ps:restart`): until a process restarts, it "
                "still accepts the sessions from before this logout that could not be removed, "
                "and the sessions it makes meanwhile are refused after the restart."
            )
