"""Carrying a release or a forced logout out, in one straight line: lock, decide, clear, record.

Where the database has a session-level lock (PostgreSQL, MariaDB), the bulk of a clear runs
before the final transaction, in as many short transactions as the store needs, so that the live
site never waits long; the final transaction removes what was saved meanwhile and records the
logout. On SQLite the whole command is one transaction. A clear that stops part-way records
nothing, and says what it removed: the next release does it again.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace

from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from release import conf
from release.clearing import Cleared, Clearer, Progress, clearer_for, no_progress
from release.clearing.base import NOTHING
from release.clearing.db import DatabaseSessions
from release.decision.history import History, history_alias, is_installed
from release.decision.markers import InvalidMarker, Markers, current_markers, digest_of, storable
from release.decision.plan import Plan, decide
from release.exceptions import ReleaseError, Terminated
from release.locking import claim_lock_row, one_at_a_time
from release.models import AppliedMarker, Logout, ReleaseEpoch
from release.stopwatch import Stopwatch
from release.text import counted, one_line
from release.vendors import database


@dataclass(frozen=True)
class Outcome:
    """What a release did, or would do (`preview_release()`)."""

    plan: Plan
    engine: str
    store: str = ""
    cleared: Cleared = NOTHING
    seconds: float = 0.0
    record: Logout | None = None
    # How long each step took, in seconds, in the order they ran: lock, decide, clear, finish,
    # record (the final transaction, its COMMIT included).
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def removed(self) -> int | None:
        return self.cleared.removed

    @property
    def notes(self) -> tuple[str, ...]:
        return self.cleared.notes


def read_markers() -> Markers:
    try:
        return current_markers()
    except InvalidMarker as error:
        raise ReleaseError(str(error)) from error


def usable_clearer() -> Clearer:
    """The clearer of the engine that keeps the sessions, refused where what it leaves would go
    unchecked."""
    clearer = clearer_for()
    if not clearer.complete and not conf.is_guarded():
        raise ReleaseError(
            f"SESSION_ENGINE {clearer.engine!r} keeps sessions that a release cannot all remove "
            f"({clearer.describe()}), and nothing refuses them afterwards. Set SESSION_ENGINE to "
            f"{conf.GUARD_ENGINE!r} and {conf.STORAGE_ENGINE_SETTING} to {clearer.engine!r}."
        )
    return clearer


def preview_release(
    *, logout_on_install: bool = False, count: bool = True, refusals: bool = False
) -> Outcome:
    """What `release` would do now, without locking or writing anything; with `refusals`, the
    ReleaseError the release would stop with where rows that refer to the sessions refuse."""
    markers = read_markers()
    alias = history_alias()
    plan = decide(markers, History.read(alias, markers), logout_on_install=logout_on_install)
    engine = conf.storage_engine()
    if not plan.logs_out:
        return Outcome(plan, engine)
    clearer = usable_clearer()
    installed = (count or refusals) and is_installed(alias)  # one query, and only if needed
    if refusals and installed and isinstance(clearer, DatabaseSessions):
        clearer.stop_if_refused()
    removed = clearer.count() if count and installed else None
    return Outcome(plan, engine, clearer.describe(), Cleared(removed))


def apply_release(
    *,
    logout_on_install: bool = False,
    holder: str = "release",
    progress: Progress | None = None,
) -> Outcome:
    """Record this release's markers and log everyone out if one of them is new here."""
    return _apply(holder, progress, logout_on_install=logout_on_install)


def force_logout(
    reason: str, *, holder: str = "force_logout", progress: Progress | None = None
) -> Outcome:
    """Log everyone out now, whatever the markers say, and record why."""
    reason = reason.strip()
    if not reason:
        raise ReleaseError("Give a reason, for the history: --reason 'what happened'.")
    return _apply(holder, progress, forced=reason)


def _apply(
    holder: str,
    progress: Progress | None,
    *,
    forced: str | None = None,
    logout_on_install: bool = False,
) -> Outcome:
    markers = read_markers()
    alias = history_alias()
    problem = database(alias).unsupported()
    if problem is not None:
        raise ReleaseError(f"{problem} {aftermath(0)}")
    metadata = conf.dyno_metadata()
    triggered_by = f"{holder} {metadata.dyno}".strip()[:255]
    tally = Tally(progress or no_progress)
    clearer: Clearer | None = None
    watch = Stopwatch()
    try:
        with one_at_a_time(alias, triggered_by):
            # Timed from here: waiting for another command is not part of this one's work.
            watch.lap("lock")
            started = watch.last
            plan = decide(
                markers,
                History.read(alias, markers),
                forced=forced,
                logout_on_install=logout_on_install,
            )
            watch.lap("decide")
            cleared = NOTHING
            if plan.logs_out:
                clearer = usable_clearer()
                cleared = _clear(clearer, tally)
                watch.lap("clear")
                tally.enter_final(clearer.database_alias)
            with ExitStack() as final:
                final.enter_context(transaction.atomic(using=alias))
                claim_lock_row(alias, triggered_by)
                if clearer is not None:
                    if clearer.database_alias not in (None, alias):
                        final.enter_context(transaction.atomic(using=clearer.database_alias))
                    cleared += clearer.finish(guarded=conf.is_guarded())
                    watch.lap("finish")
                outcome = Outcome(
                    plan,
                    conf.storage_engine(),
                    clearer.describe() if clearer is not None else "",
                    cleared,
                    time.monotonic() - started,
                )
                outcome = _record(alias, outcome, metadata, triggered_by)
            watch.lap("record")
            return replace(outcome, steps=dict(watch.steps))
    except Terminated as error:
        raise Terminated(f"{error} {aftermath(tally.gone())}") from error
    except ReleaseError as error:
        raise ReleaseError(f"{error} {aftermath(tally.gone())}") from error
    except DatabaseError as error:
        raise ReleaseError(
            f"The database failed: {one_line(error)}. {aftermath(tally.gone())}"
        ) from error


def _clear(clearer: Clearer, progress: Progress) -> Cleared:
    try:
        return clearer.clear(progress)
    except (ReleaseError, DatabaseError):
        raise
    except Exception as error:  # a cache or file system that failed: say which, and stop
        raise ReleaseError(
            f"Removing sessions from {clearer.describe()} failed: {one_line(error)}. Check that "
            "it is reachable (REDIS_URL, SESSION_FILE_PATH)."
        ) from error


def _record(
    alias: str, outcome: Outcome, metadata: conf.DynoMetadata, triggered_by: str
) -> Outcome:
    """The history entry, the marker values applied, and the epoch of these markers."""
    plan = outcome.plan
    if plan.kind is None:
        record = None
    else:
        record = Logout.objects.using(alias).create(
            applied_at=timezone.now(),
            kind=plan.kind,
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
            triggered_by=triggered_by,
        )
        AppliedMarker.objects.using(alias).bulk_create(
            AppliedMarker(
                kind=state.kind,
                digest=digest_of(state.current),
                value=storable(state.current),
                logout=record,
            )
            for state in plan.applies
            if state.current is not None
        )
    if plan.releases_markers:
        _record_markers_epoch(alias, plan)
    return replace(outcome, record=record)


def _record_markers_epoch(alias: str, plan: Plan) -> None:
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


class Tally:
    """How many sessions a clear has removed for good so far, from the progress the clearers
    report after each step that cannot be undone (a committed batch, a TRUNCATE, UNLINKs, files),
    so that a failure can say what it left behind."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.removed = 0
        # What stays removed if the transaction on the sessions' database rolls back; None
        # until the final transaction (or where the sessions are not in a database).
        self.committed: int | None = None

    def __call__(self, removed: int, total: int | None) -> None:
        self.removed = max(self.removed, removed)
        self.progress(removed, total)

    def enter_final(self, sessions_alias: str | None) -> None:
        """The final transaction begins: on a database whose whole command is one transaction
        (SQLite), nothing removed from it so far is committed."""
        if sessions_alias is not None:
            in_transaction = connections[sessions_alias].in_atomic_block
            self.committed = 0 if in_transaction else self.removed

    def gone(self) -> int:
        """What stays removed if the open work fails now."""
        return self.removed if self.committed is None else self.committed


def aftermath(removed: int) -> str:
    """What a failed logout leaves behind, in the words of every failure message."""
    if not removed:
        return "Nobody was logged out and nothing was recorded."
    return (
        f"{counted(removed, 'session')} {'was' if removed == 1 else 'were'} removed before it "
        "stopped, and nothing was recorded: the next release removes the rest and records the "
        "logout."
    )
