"""What the commands and the admin say, in one place: lines people read in
`heroku releases:output`, JSON for pipelines, and the same events through the `release` logger."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from release import conf
from release.apply import Outcome
from release.decision.markers import describe
from release.decision.plan import MarkerState, Plan
from release.models import Logout
from release.text import counted, duration

logger = logging.getLogger("release")

# The version of the JSON documents below; it changes only when a key changes meaning or goes.
JSON_VERSION = 1


def guard_note() -> str:
    return f", guarded by {conf.GUARD_ENGINE}" if conf.is_guarded() else ""


def plan_lines(plan: Plan) -> Iterator[str]:
    yield "Markers:"
    for state in plan.states:
        yield f"  {state.line()}"
    if plan.kind is Logout.Kind.INSTALL:
        verdict = (
            "record the markers and log everyone out" if plan.logs_out else "record the markers"
        )
    elif plan.logs_out:
        verdict = "log everyone out"
    else:
        verdict = "nobody is logged out"
    yield f"Decision: {verdict}; {plan.reason}."


def decision_lines(outcome: Outcome) -> Iterator[str]:
    """The markers, the decision and, where it logs out, the sessions it removes."""
    yield from plan_lines(outcome.plan)
    if outcome.plan.logs_out:
        yield f"Sessions: {outcome.engine}, {outcome.store}{guard_note()}."


def outcome_lines(outcome: Outcome, *, dry_run: bool = False) -> Iterator[str]:
    yield from decision_lines(outcome)
    if outcome.plan.logs_out:
        for note in outcome.notes:
            yield f"  {note}"
    if dry_run:
        if outcome.plan.logs_out:
            count = (
                "an unknown number of sessions"
                if outcome.removed is None
                else counted(outcome.removed, "session")
            )
            yield f"Dry run: would remove {count}. Nothing was changed."
        else:
            yield "Dry run: nothing was changed."
        return
    removed = "" if outcome.removed is None else f"removed {counted(outcome.removed, 'session')}, "
    if outcome.record is None:
        done = "nothing recorded"
    else:
        done = f"recorded in the history as epoch {outcome.record.epoch}"
    if outcome.plan.logs_out:
        yield f"Done: {removed}{done}, in {outcome.seconds:.2f} s."
    else:
        yield f"Done: {done}, in {outcome.seconds:.2f} s."


def history_line(record: Logout) -> str:
    removed = (
        "an unknown number of sessions"
        if record.sessions_removed is None
        else counted(record.sessions_removed, "session")
    )
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
        f"{'logged out ' + removed if record.logged_out else 'nobody logged out'}  "
        f"in {duration(record.duration_seconds)}  by {record.triggered_by or '?'}"
        f"{'  ' + where if where else ''}\n    why: {record.reason}"
    )


def marker_json(state: MarkerState) -> dict[str, Any]:
    return {
        "previous": state.previous,
        "current": state.current,
        "status": state.status.value,
        "applied_by_epoch": None if state.applied_by is None else state.applied_by.epoch,
    }


def outcome_json(outcome: Outcome, *, dry_run: bool = False) -> dict[str, Any]:
    """The release summary as a JSON document (`release --json`); keys as the README lists."""
    plan = outcome.plan
    return {
        "version": JSON_VERSION,
        "dry_run": dry_run,
        "decision": plan.decision,
        "logs_out": plan.logs_out,
        "reason": plan.reason,
        "epoch": plan.epoch,
        "markers": {state.name: marker_json(state) for state in plan.states},
        "session_engine": outcome.engine,
        "store": outcome.store or None,
        "sessions_removed": outcome.removed if plan.logs_out else 0,
        "notes": list(outcome.notes),
        "seconds": None if dry_run else round(outcome.seconds, 3),
        "recorded_epoch": None if outcome.record is None else outcome.record.epoch,
        "steps": {step: round(seconds, 4) for step, seconds in outcome.steps.items()},
        "clear_steps": {part: round(seconds, 4) for part, seconds in outcome.cleared.parts},
    }


def history_json(record: Logout) -> dict[str, Any]:
    return {
        "epoch": record.epoch,
        "applied_at": record.applied_at.isoformat(),
        "kind": record.kind,
        "logged_out": record.logged_out,
        "reason": record.reason,
        "code_marker": record.code_marker,
        "config_marker": record.config_marker,
        "session_engine": record.session_engine,
        "sessions_removed": record.sessions_removed,
        "duration_seconds": record.duration_seconds,
        "release_version": record.release_version or None,
        "slug_commit": record.slug_commit or None,
        "triggered_by": record.triggered_by,
    }


def log_outcome(outcome: Outcome, *, dry_run: bool = False) -> None:
    """One log record per release or forced logout, with the JSON document as `extra`."""
    document = outcome_json(outcome, dry_run=dry_run)
    logger.info(
        "%s: decision=%s logs_out=%s removed=%s epoch=%s engine=%s reason=%s",
        "dry run" if dry_run else "release",
        document["decision"],
        document["logs_out"],
        document["sessions_removed"],
        document["epoch"],
        document["session_engine"],
        document["reason"],
        extra={"release": document},
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
        line = f"Progress: removed {counted(removed, 'session')} so far, {rate:,.0f} a second"
        if total and rate > 0 and total > removed:
            line += f", about {(total - removed) / rate:,.0f} s left"
        self.write(line + ".")
        logger.info(line, extra={"removed": removed, "total": total, "rate": rate})


class _FromRelease(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == logger.name or record.name.startswith(logger.name + "."))


def _console_handlers() -> list[logging.Handler]:
    """The handlers that would write the `release` logger's records to this process's own
    stdout or stderr, where the commands print the same events."""
    consoles = {id(stream) for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    if not found and logging.lastResort is not None:
        found.append(logging.lastResort)
    return [
        handler
        for handler in found
        if isinstance(handler, logging.StreamHandler)
        and id(getattr(handler, "stream", None)) in consoles
    ]


@contextmanager
def printed_once() -> Iterator[None]:
    """While a command prints its events, handlers that write to the same console skip the
    `release` logger's records of them, so that each event shows once in a release log whatever
    the project's LOGGING. Every other handler (a file, a log service) still gets them all."""
    handlers = _console_handlers()
    quiet = _FromRelease()
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
