"""Deciding what a release does, from the markers and what this database has applied."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from django.db import connections, router

from release.markers import CODE, CONFIG, MARKER_NAMES, Markers, describe, digest_of
from release.models import AppliedMarker, Logout, ReleaseEpoch


class Action(StrEnum):
    INSTALL = "install"
    LOGOUT = "logout"
    NOTHING = "nothing"


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
    action: Action
    markers: Markers
    states: tuple[MarkerState, MarkerState]
    logs_out: bool
    reason: str
    epoch: int  # the newest epoch after this release: a new one if it logs out

    @property
    def new_states(self) -> list[MarkerState]:
        return [state for state in self.states if state.is_new]


def history_alias() -> str:
    return router.db_for_write(Logout)


def is_installed(alias: str | None = None) -> bool:
    """Whether this app's tables exist (a dry run before the first migrate has none)."""
    alias = alias or history_alias()
    return Logout._meta.db_table in connections[alias].introspection.table_names()


def latest_epoch(alias: str) -> int | None:
    """The newest epoch this database has, or None before the first release with the tool."""
    newest = Logout.objects.using(alias).order_by("-epoch").values_list("epoch", flat=True)
    return newest.first()


def clock() -> int:
    """Now, in seconds since 1970."""
    return int(time.time())


def next_epoch(newest: int | None) -> int:
    """A new logout's epoch: now, in seconds since 1970, and greater than every epoch this
    database has (`newest`); so a database restored from a backup never gives an epoch twice."""
    return max(clock(), (newest or 0) + 1)


def applied_by(alias: str, kind: str, value: str) -> Logout | None:
    """The event that applied `value` of marker `kind` here, if one did."""
    applied = (
        AppliedMarker.objects.using(alias)
        .filter(kind=kind, digest=digest_of(value))
        .select_related("logout")
        .first()
    )
    return None if applied is None else applied.logout


def previous_markers(alias: str) -> Markers:
    last = ReleaseEpoch.objects.using(alias).order_by("-released_at", "-pk").first()
    if last is None:
        return Markers(code=None, config=None)
    return Markers(code=last.code_marker, config=last.config_marker)


def marker_states(
    markers: Markers, previous: Markers, applied: Callable[[str, str], Logout | None] | None
) -> tuple[MarkerState, MarkerState]:
    """Each marker's state; `applied` None means the first release, which applies them all."""

    def state(kind: str, current: str | None) -> MarkerState:
        if current is None:
            return MarkerState(kind, previous.get(kind), current, Status.UNSET)
        if applied is None:
            return MarkerState(kind, previous.get(kind), current, Status.BASELINE)
        by = applied(kind, current)
        status = Status.NEW if by is None else Status.APPLIED
        return MarkerState(kind, previous.get(kind), current, status, by)

    return state(CODE, markers.code), state(CONFIG, markers.config)


def make_plan(
    markers: Markers, *, logout_on_install: bool = False, alias: str | None = None
) -> Plan:
    """What a release with `markers` does now. Read inside the release lock to act on it."""
    alias = alias or history_alias()
    installed = is_installed(alias)
    newest = latest_epoch(alias) if installed else None
    previous = previous_markers(alias) if installed else Markers(code=None, config=None)

    if newest is None:
        states = marker_states(markers, previous, None)
        if logout_on_install:
            reason = "this is the first release with the tool, and --logout-on-install is given"
        else:
            reason = (
                "this is the first release with the tool, which logs nobody out "
                "(--logout-on-install would)"
            )
        # The first release's record has epoch 0 unless it logs out: it enforces nothing.
        epoch = next_epoch(None) if logout_on_install else 0
        return Plan(Action.INSTALL, markers, states, logout_on_install, reason, epoch)

    states = marker_states(markers, previous, lambda kind, value: applied_by(alias, kind, value))
    new = [state for state in states if state.is_new]
    if new:
        reason = " and ".join(
            f"{state.name} is {describe(state.current)}, which this database has never applied"
            for state in new
        )
        return Plan(Action.LOGOUT, markers, states, True, reason, next_epoch(newest))
    reason = "no marker has a value that this database has not applied"
    return Plan(Action.NOTHING, markers, states, False, reason, newest)
