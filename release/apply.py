"""Carrying a plan out: lock, decide again, remove sessions, record, all in one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from django.db import DatabaseError, transaction
from django.utils import timezone

from release import conf
from release.exceptions import ReleaseError
from release.heroku import DynoMetadata, dyno_metadata
from release.locking import has_session_lock, hold_release_lock, release_lock
from release.markers import InvalidMarker, Markers, current_markers, digest_of, storable
from release.models import AppliedMarker, Logout, ReleaseEpoch
from release.plan import (
    Action,
    Plan,
    history_alias,
    is_installed,
    latest_epoch,
    make_plan,
    next_epoch,
)
from release.stores import Cleared, SessionStoreClearer, store_for_engine
from release.tables import Progress, no_progress
from release.termination import Terminated
from release.text import counted, one_line
from release.vendors import unsupported_database


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
    if not store.complete and not conf.is_guarded():
        raise ReleaseError(
            f"SESSION_ENGINE {store.engine!r} keeps sessions that a release cannot all remove "
            f"({store.describe()}), and nothing refuses them afterwards. Set SESSION_ENGINE to "
            f"{conf.GUARD_ENGINE!r} and {conf.STORAGE_ENGINE_SETTING} to {store.engine!r}."
        )
    return store


def preview_release(*, logout_on_install: bool = False, count: bool = True) -> Outcome:
    """What `release` would do now, without locking or writing anything."""
    plan = make_plan(read_markers(), logout_on_install=logout_on_install)
    outcome = Outcome(plan=plan, engine=conf.storage_engine())
    if plan.logs_out:
        store = clearer()
        outcome.store = store.describe()
        if count and is_installed():
            outcome.removed = store.count()
    return outcome


def apply_release(
    *,
    logout_on_install: bool = False,
    holder: str = "release",
    progress: Progress | None = None,
) -> Outcome:
    """Record this release's markers and log everyone out if one of them is new here."""
    markers = read_markers()
    return _locked(
        holder,
        lambda alias: make_plan(markers, logout_on_install=logout_on_install, alias=alias),
        kind=None,
        progress=progress,
    )


def force_logout(
    reason: str, *, holder: str = "force_logout", progress: Progress | None = None
) -> Outcome:
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
        return Plan(
            Action.LOGOUT,
            markers,
            plan.states,
            True,
            f"an operator forced it: {reason!r}",
            next_epoch(latest_epoch(alias)),
        )

    return _locked(holder, forced_plan, kind=Logout.Kind.FORCED, progress=progress)


class Tally:
    """How many sessions a clear has removed for good so far, from the progress the stores
    report after each step that cannot be undone (a committed batch, a TRUNCATE, UNLINKs, files),
    so that a failure can say what it left behind."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.removed = 0
        # Set while the final transaction is open: what a database store removes then goes
        # with it if it rolls back.
        self.before_final: int | None = None

    def __call__(self, removed: int, total: int | None) -> None:
        self.removed = max(self.removed, removed)
        self.progress(removed, total)

    def gone(self, store: SessionStoreClearer | None) -> int:
        """What stays removed if the open work fails now."""
        if store is not None and store.database_alias and self.before_final is not None:
            return self.before_final
        return self.removed


def aftermath(removed: int) -> str:
    """What a failed logout leaves behind, in the words of every failure message."""
    if not removed:
        return "Nobody was logged out and nothing was recorded."
    return (
        f"{counted(removed, 'session')} {'was' if removed == 1 else 'were'} removed before it "
        "stopped, and nothing was recorded: the next release removes the rest and records the "
        "logout."
    )


def _locked(
    holder: str,
    decide: Callable[[str], Plan],
    kind: Logout.Kind | None,
    progress: Progress | None = None,
) -> Outcome:
    """Decide and act under the release lock; record in one transaction at the end.

    Where the database has a session-level lock, the bulk of a clear runs before the final
    transaction, in as many short transactions as the store needs, so that the live site never
    waits long; the final transaction removes what was saved meanwhile and records the logout.
    A clear that stops part-way records nothing, and says what it removed: the next release does
    it again.
    """
    alias = history_alias()
    problem = unsupported_database(alias)
    if problem is not None:
        raise ReleaseError(f"{problem} {aftermath(0)}")
    metadata = dyno_metadata()
    triggered_by = f"{holder} {metadata.dyno}".strip()
    early = has_session_lock(alias)
    tally = Tally(progress or no_progress)
    store: SessionStoreClearer | None = None
    try:
        with release_lock(alias):
            # Timed from here: waiting for another command is not part of this one's work.
            started = time.monotonic()
            if early:
                outcome, store = _decide_and_clear(alias, decide, tally, None)
            with ExitStack() as stack:
                stack.enter_context(transaction.atomic(using=alias))
                tally.before_final = tally.removed
                hold_release_lock(alias, triggered_by)
                if not early:
                    outcome, store = _decide_and_clear(alias, decide, tally, stack)
                elif store is not None:
                    _join_transaction(stack, store, alias)
                    rest = store.finish(guarded=conf.is_guarded())
                    outcome.removed, outcome.notes = _added(outcome, rest)
                outcome.seconds = time.monotonic() - started
                plan = outcome.plan
                if plan.action is not Action.NOTHING or kind is not None:
                    outcome.record = _record(alias, plan, outcome, kind, metadata, triggered_by)
                if kind is None:  # a release step; a forced logout releases no marker values
                    _release_pair(alias, plan)
    except Terminated as error:
        raise Terminated(f"{error} {aftermath(tally.gone(store))}") from error
    except ReleaseError as error:
        raise ReleaseError(f"{error} {aftermath(tally.gone(store))}") from error
    except DatabaseError as error:
        raise ReleaseError(
            f"The database failed: {one_line(error)}. {aftermath(tally.gone(store))}"
        ) from error
    return outcome


def _decide_and_clear(
    alias: str, decide: Callable[[str], Plan], progress: Progress, stack: ExitStack | None
) -> tuple[Outcome, SessionStoreClearer | None]:
    """Decide, and clear if the plan says so; inside the final transaction given its stack."""
    plan = decide(alias)
    outcome = Outcome(plan=plan, engine=conf.storage_engine())
    if not plan.logs_out:
        return outcome, None
    store = clearer()
    outcome.store = store.describe()
    if stack is not None:
        _join_transaction(stack, store, alias)
    try:
        cleared = store.clear(progress)
    except (ReleaseError, DatabaseError):
        raise
    except Exception as error:  # a cache or file system that failed: say which, and stop
        raise ReleaseError(
            f"Removing sessions from {store.describe()} failed: {one_line(error)}. Check that "
            "it is reachable (REDIS_URL, SESSION_FILE_PATH)."
        ) from error
    outcome.removed, outcome.notes = cleared.removed, cleared.notes
    return outcome, store


def _join_transaction(stack: ExitStack, store: SessionStoreClearer, alias: str) -> None:
    """Sessions kept in another database join the final transaction with a transaction there."""
    if store.database_alias and store.database_alias != alias:
        stack.enter_context(transaction.atomic(using=store.database_alias))


def _added(outcome: Outcome, rest: Cleared) -> tuple[int | None, list[str]]:
    total = Cleared(outcome.removed, outcome.notes).add(rest)
    return total.removed, total.notes


def _record(
    alias: str,
    plan: Plan,
    outcome: Outcome,
    kind: Logout.Kind | None,
    metadata: DynoMetadata,
    triggered_by: str,
) -> Logout:
    if kind is None:
        kind = Logout.Kind.INSTALL if plan.action is Action.INSTALL else Logout.Kind.MARKERS
    record = Logout.objects.using(alias).create(
        applied_at=timezone.now(),
        kind=kind,
        epoch=plan.epoch,
        logged_out=plan.logs_out,
        reason=plan.reason,
        code_marker=storable(plan.markers.code),
        config_marker=storable(plan.markers.config),
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
        AppliedMarker(kind=marker, digest=digest_of(value), value=storable(value), logout=record)
        for marker, value in applied
        if value is not None
    )
    return record


def _release_pair(alias: str, plan: Plan) -> None:
    """Processes with this release's markers accept sessions written by processes whose
    markers were released at the newest epoch or later (see `release.guard`)."""
    ReleaseEpoch.objects.using(alias).update_or_create(
        digest=plan.markers.digest,
        defaults={
            "code_marker": storable(plan.markers.code),
            "config_marker": storable(plan.markers.config),
            "epoch": plan.epoch,
            "released_at": timezone.now(),
        },
    )
