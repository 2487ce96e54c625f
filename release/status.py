"""The status of a database, as `release_status` and the admin show it: the history, newest
first, and what the next release with this process's markers would do. Collected once, rendered
as text or JSON."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from release.apply import Outcome, preview_release
from release.decision.history import history_alias, is_installed
from release.exceptions import ReleaseError
from release.models import Logout
from release.report import JSON_VERSION, history_json, history_line, outcome_json, outcome_lines


@dataclass(frozen=True)
class Status:
    database: str
    installed: bool
    history: list[Logout] = field(default_factory=list)
    # What the next release would do, or why it would fail.
    next_release: Outcome | None = None
    problem: ReleaseError | None = None

    @classmethod
    def collect(cls, limit: int) -> Status:
        """`limit` history entries, and the next release with the sessions it would remove."""
        alias = history_alias()
        installed = is_installed(alias)
        history = list(Logout.objects.using(alias).order_by("-epoch")[:limit]) if installed else []
        try:
            outcome = preview_release()
        except ReleaseError as error:
            return cls(alias, installed, history, problem=error)
        return cls(alias, installed, history, next_release=outcome)

    def history_lines(self) -> Iterator[str]:
        if not self.installed:
            yield (
                "No history: the release app's tables do not exist on database "
                f"{self.database!r} yet."
            )
            return
        yield f"History on database {self.database!r}, newest first:"
        if not self.history:
            yield "  (empty: no release with the tool has run here yet)"
        for record in self.history:
            yield history_line(record)

    def next_release_lines(self) -> Iterator[str]:
        """Raises the problem, if the next release would fail."""
        if self.problem is not None:
            raise self.problem
        assert self.next_release is not None
        for line in outcome_lines(self.next_release, dry_run=True):
            yield f"  {line}"

    def json(self) -> dict[str, Any]:
        """Raises the problem, if the next release would fail."""
        if self.problem is not None:
            raise self.problem
        assert self.next_release is not None
        return {
            "version": JSON_VERSION,
            "database": self.database,
            "installed": self.installed,
            "history": [history_json(record) for record in self.history],
            "next_release": outcome_json(self.next_release, dry_run=True),
        }
