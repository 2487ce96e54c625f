"""Carrying a plan out: lock, decide again, remove sessions, record, all in one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from release.exceptions import ReleaseError
from release.heroku import dyno_metadata
from release.locking import hold_release_lock
from release.markers import InvalidMarker, Markers, current_markers, digest_of
from release.middleware import (
    DJANGO_SESSION_MIDDLEWARE,
    GUARD_MIDDLEWARE,
    installed_session_middleware,
)
from release.models import AppliedMarker, Logout, ReleaseEpoch
from release.plan import Action, Plan, history_alias, is_installed, make_plan
from release.stores import SessionStoreClearer, store_for_engine


@dataclass
class Outcome:
    plan: Plan
    engine: str
    store: str = ""
    removed: int | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    record: Logout | None = None


def read_markers() -> Markers:
    try:
        return current_markers()
    except InvalidMarker as error:
        raise ReleaseError(str(error)) from error


def clearer() -> SessionStoreClearer:
    """The store of SESSION_ENGINE, refused where what it leaves would go unchecked."""
    store = store_for_engine()
    if not store.complete and not installed_session_middleware()[0]:
        raise ReleaseError(
            f"SESSION_ENGINE {store.engine!r} keeps sessions that a release cannot all remove "
            f"({store.describe()}), and {GUARD_MIDDLEWARE!r} is not in MIDDLEWARE to refuse "
            f"them. Put it in place of {DJANGO_SESSION_MIDDLEWARE!r}. Nobody was logged out."
        )
    return store


def preview_release(*, logout_on_install: bool = False) -> Outcome:
    """What `release` would do now, without locking or writing anything."""
    plan = make_plan(read_markers(), logout_on_install=logout_on_install)
    outcome = Outcome(plan=plan, engine=settings.SESSION_ENGINE)
    if plan.logs_out:
        store = clearer()
        outcome.store = store.describe()
        if is_installed():
            outcome.removed = store.count()
    return outcome


def apply_release(*, logout_on_install: bool = False, holder: str = "release") -> Outcome:
    """Record this release's markers and log everyone out if one of them is new here."""
    markers = read_markers()
    return _locked(
        holder,
        lambda alias: make_plan(markers, logout_on_install=logout_on_install, alias=alias),
        kind=None,
    )


def force_logout(reason: str, *, holder: str = "force_logout") -> Outcome:
    """Log everyone out now, whatever the markers say, and record why."""
    reason = reason.strip()
    if not reason:
        raise ReleaseError("Give a reason, for the history: --reason 'what happened'.")
    markers = read_markers()

    def forced_plan(alias: str) -> Plan:
        plan = make_plan(markers, alias=alias)
        if plan.action is Action.INSTALL:
            raise ReleaseError(
                "No release with the tool has run on this database yet, so there is no "
                "baseline to log out from. Run `python manage.py release --logout-on-install` "
                "instead."
            )
        newest = plan.epoch - 1 if plan.logs_out else plan.epoch
        return Plan(
            Action.LOGOUT,
            markers,
            plan.states,
            True,
            f"an operator forced it: {reason!r}",
            newest + 1,
        )

    return _locked(holder, forced_plan, kind=Logout.Kind.FORCED)


def _locked(holder: str, decide: Callable[[str], Plan], kind: Logout.Kind | None) -> Outcome:
    alias = history_alias()
    metadata = dyno_metadata()
    started = time.monotonic()
    with ExitStack() as stack:
        stack.enter_context(transaction.atomic(using=alias))
        hold_release_lock(alias, f"{holder} {metadata.dyno}".strip())
        plan = decide(alias)
        outcome = Outcome(plan=plan, engine=settings.SESSION_ENGINE)
        if plan.logs_out:
            store = clearer()
            outcome.store = store.describe()
            if store.database_alias and store.database_alias != alias:
                stack.enter_context(transaction.atomic(using=store.database_alias))
            cleared = store.clear()
            outcome.removed, outcome.notes = cleared.removed, cleared.notes
        outcome.seconds = time.monotonic() - started
        if plan.action is not Action.NOTHING or kind is not None:
            outcome.record = _record(alias, plan, outcome, kind, f"{holder} {metadata.dyno}")
        _release_pair(alias, plan)
    return outcome


def _record(
    alias: str, plan: Plan, outcome: Outcome, kind: Logout.Kind | None, triggered_by: str
) -> Logout:
    if kind is None:
        kind = Logout.Kind.INSTALL if plan.action is Action.INSTALL else Logout.Kind.MARKERS
    metadata = dyno_metadata()
    record = Logout.objects.using(alias).create(
        applied_at=timezone.now(),
        kind=kind,
        epoch=plan.epoch,
        logged_out=plan.logs_out,
        reason=plan.reason,
        code_marker=plan.markers.code,
        config_marker=plan.markers.config,
        session_engine=outcome.engine,
        sessions_removed=outcome.removed if plan.logs_out else 0,
        duration_seconds=outcome.seconds,
        release_version=metadata.release_version,
        slug_commit=metadata.slug_commit,
        triggered_by=triggered_by.strip()[:255],
    )
    # The install records every value it finds, a marker logout the new ones; a forced logout
    # leaves the markers alone.
    if kind is Logout.Kind.INSTALL:
        applied = [(state.kind, state.current) for state in plan.states]
    elif kind is Logout.Kind.MARKERS:
        applied = [(state.kind, state.current) for state in plan.new_states]
    else:
        applied = []
    AppliedMarker.objects.using(alias).bulk_create(
        AppliedMarker(kind=marker, digest=digest_of(value), value=value, logout=record)
        for marker, value in applied
        if value is not None
    )
    return record


def _release_pair(alias: str, plan: Plan) -> None:
    """Processes with this release's markers enforce the newest epoch from now on."""
    ReleaseEpoch.objects.using(alias).update_or_create(
        digest=plan.markers.digest,
        defaults={
            "code_marker": plan.markers.code,
            "config_marker": plan.markers.config,
            "epoch": plan.epoch,
            "released_at": timezone.now(),
        },
    )
