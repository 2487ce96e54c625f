"""The lines people read in `heroku releases:output` and on their terminal."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from release.apply import Outcome
from release.markers import describe
from release.models import Logout
from release.plan import Action, Plan


def plan_lines(plan: Plan) -> Iterator[str]:
    yield "Markers:"
    for state in plan.states:
        yield f"  {state.line()}"
    if plan.action is Action.INSTALL:
        verdict = (
            "record the markers and log everyone out" if plan.logs_out else "record the markers"
        )
    elif plan.logs_out:
        verdict = "log everyone out"
    else:
        verdict = "nobody is logged out"
    yield f"Decision: {verdict}; {plan.reason}."


def outcome_lines(outcome: Outcome, *, dry_run: bool = False) -> Iterator[str]:
    yield from plan_lines(outcome.plan)
    if outcome.plan.logs_out:
        yield f"Sessions: {outcome.engine}, {outcome.store}."
        for note in outcome.notes:
            yield f"  {note}"
    if dry_run:
        if outcome.plan.logs_out:
            count = "an unknown number of" if outcome.removed is None else f"{outcome.removed:,}"
            yield f"Dry run: would remove {count} sessions. Nothing was changed."
        else:
            yield "Dry run: nothing was changed."
        return
    removed = "" if outcome.removed is None else f"removed {outcome.removed:,} sessions, "
    if outcome.record is None:
        done = "nothing recorded"
    else:
        done = f"recorded in the history as epoch {outcome.record.epoch}"
    if outcome.plan.logs_out:
        yield f"Done: {removed}{done}, in {outcome.seconds:.2f} s."
    else:
        yield f"Done: {done}, in {outcome.seconds:.2f} s."


def history_line(record: Logout) -> str:
    removed = "?" if record.sessions_removed is None else f"{record.sessions_removed:,}"
    where = " ".join(
        part
        for part in (
            record.release_version and f"release {record.release_version}",
            record.slug_commit and f"commit {record.slug_commit[:12]}",
        )
        if part
    )
    return (
        f"  epoch {record.epoch}  {record.applied_at:%Y-%m-%d %H:%M:%S %Z}  "
        f"{record.get_kind_display()}  "
        f"FORCE_LOGOUT_VERSION={describe(record.code_marker, 40)}  "
        f"FORCE_LOGOUT_ON_DEPLOY={describe(record.config_marker, 40)}  "
        f"{'logged out ' + removed + ' sessions' if record.logged_out else 'nobody logged out'}  "
        f"{record.duration_seconds:.2f} s  by {record.triggered_by or '?'}"
        f"{'  ' + where if where else ''}\n    why: {record.reason}"
    )


class ProgressReport:
    """Prints how a long clear goes, every `interval` seconds, never per row."""

    def __init__(self, write: Callable[[str], None], interval: float = 5.0) -> None:
        self.write = write
        self.interval = interval
        self.started = time.monotonic()
        self.last = self.started

    def __call__(self, removed: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        rate = removed / max(now - self.started, 1e-9)
        line = f"Progress: removed {removed:,} sessions so far, {rate:,.0f} a second"
        if total and rate > 0 and total > removed:
            line += f", about {(total - removed) / rate:,.0f} s left"
        self.write(line + ".")
