"""Deciding what a release or a forced logout does: `decide()`, from the markers and the history,
with no database."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from release.decision.history import History
from release.decision.markers import CODE, CONFIG, MARKER_NAMES, Markers, describe
from release.exceptions import ReleaseError
from release.models import Logout


class Status(StrEnum):
    UNSET = "unset"
    NEW = "new"
    APPLIED = "applied"
    BASELINE = "baseline"

    @property
    def description(self) -> str:
        return {
            Status.UNSET: "unset: never triggers",
            Status.NEW: "new: never applied here",
            Status.APPLIED: "already applied here",
            Status.BASELINE: "recorded as applied by the first release",
        }[self]


@dataclass(frozen=True)
class MarkerState:
    kind: str
    previous: str | None  # the value the last release here ran with
    current: str | None
    status: Status
    applied_by: Logout | None = None  # the event that applied `current`, when it was

    @property
    def name(self) -> str:
        return MARKER_NAMES[self.kind]

    @property
    def is_new(self) -> bool:
        return self.status is Status.NEW

    def line(self) -> str:
        if self.previous == self.current:
            change = f"{describe(self.current)} (unchanged)"
        else:
            change = f"{describe(self.previous)} -> {describe(self.current)}"
        if self.applied_by is None:
            return f"{self.name}: {change}, {self.status.description}"
        by = self.applied_by
        return (
            f"{self.name}: {change}, {self.status.description} (epoch {by.epoch}, "
            f"{by.applied_at:%Y-%m-%d %H:%M:%S %Z}, by {by.triggered_by})"
        )


@dataclass(frozen=True)
class Plan:
    """What to do: `kind` is the history entry to record (None: nothing to record)."""

    kind: Logout.Kind | None
    markers: Markers
    states: tuple[MarkerState, MarkerState]
    logs_out: bool
    reason: str
    epoch: int  # the newest epoch after this: a new one if it logs out

    @property
    def decision(self) -> str:
        """`install`, `logout` or `nothing`, as the JSON documents say it."""
        if self.kind is Logout.Kind.INSTALL:
            return "install"
        return "logout" if self.logs_out else "nothing"

    @property
    def new_states(self) -> list[MarkerState]:
        return [state for state in self.states if state.is_new]

    @property
    def applies(self) -> list[MarkerState]:
        """The marker values recorded as applied: every value the install finds, the new ones
        of a marker logout; a forced logout leaves the markers alone."""
        if self.kind is Logout.Kind.INSTALL:
            chosen = list(self.states)
        elif self.kind is Logout.Kind.MARKERS:
            chosen = self.new_states
        else:
            chosen = []
        return [state for state in chosen if state.current is not None]

    @property
    def releases_markers(self) -> bool:
        """Whether processes with these markers move to this epoch (`release.guard`): a release
        step does; a forced logout releases no marker values."""
        return self.kind is not Logout.Kind.FORCED


def clock() -> int:
    """Now, in seconds since 1970."""
    return int(time.time())


def next_epoch(newest: int | None, now: int | None = None) -> int:
    """A new logout's epoch: now, in seconds since 1970, and greater than every epoch this
    database has (`newest`); so a database restored from a backup never gives an epoch twice."""
    return max(clock() if now is None else now, (newest or 0) + 1)


def marker_states(markers: Markers, history: History) -> tuple[MarkerState, MarkerState]:
    """Each marker's state; before the first release every value set is the baseline."""

    def state(kind: str) -> MarkerState:
        current = markers.get(kind)
        previous = history.previous.get(kind)
        if current is None:
            return MarkerState(kind, previous, current, Status.UNSET)
        if history.newest is None:
            return MarkerState(kind, previous, current, Status.BASELINE)
        by = history.applied.get(kind)
        return MarkerState(
            kind, previous, current, Status.NEW if by is None else Status.APPLIED, by
        )

    return state(CODE), state(CONFIG)


def decide(
    markers: Markers,
    history: History,
    *,
    forced: str | None = None,
    logout_on_install: bool = False,
    now: int | None = None,
) -> Plan:
    """What a release with `markers` does on a database with `history`; with `forced`, the
    reason an operator gives for logging everyone out whatever the markers say."""
    states = marker_states(markers, history)
    if history.newest is None:
        if forced is not None:
            raise ReleaseError(
                "No release with the tool has run on this database yet, so there is no "
                "baseline to log out from. Run `python manage.py release --logout-on-install` "
                "instead."
            )
        if logout_on_install:
            reason = "this is the first release with the tool, and --logout-on-install is given"
        else:
            reason = (
                "this is the first release with the tool, which logs nobody out "
                "(--logout-on-install would)"
            )
        # The first release's record has epoch 0 unless it logs out: it enforces nothing.
        epoch = next_epoch(None, now) if logout_on_install else 0
        return Plan(Logout.Kind.INSTALL, markers, states, logout_on_install, reason, epoch)
    if forced is not None:
        reason = f"an operator forced it: {forced!r}"
        return Plan(
            Logout.Kind.FORCED, markers, states, True, reason, next_epoch(history.newest, now)
        )
    new = [state for state in states if state.is_new]
    if new:
        reason = " and ".join(
            f"{state.name} is {describe(state.current)}, which this database has never applied"
            for state in new
        )
        return Plan(
            Logout.Kind.MARKERS, markers, states, True, reason, next_epoch(history.newest, now)
        )
    reason = "no marker has a value that this database has not applied"
    return Plan(None, markers, states, False, reason, history.newest)
