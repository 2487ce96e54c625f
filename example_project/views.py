from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.apps import apps
from django.db import DatabaseError, connections, router, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

if TYPE_CHECKING:
    from release.models import Logout

# How many of the newest history entries the home page shows.
HISTORY_LENGTH = 5
# Longer marker values are cut short on the page; the admin shows them whole.
MARKER_LENGTH = 40


@dataclass(frozen=True)
class Entry:
    """One entry of the logout history, in words for the home page."""

    epoch: int
    applied_at: datetime
    when: str
    ago: str
    kind: str
    markers: tuple[str, str]
    sessions: str
    reason: str


def marker_text(name: str, value: str | None) -> str:
    if value is None:
        return f"{name} not set"
    shown = repr(value)
    if len(shown) > MARKER_LENGTH:
        shown = f"{shown[: MARKER_LENGTH - 1]}…"
    return f"{name} = {shown}"


def sessions_text(record: Logout) -> str:
    if not record.logged_out:
        return "Nobody logged out."
    removed = record.sessions_removed
    if removed is None:
        return "Everyone logged out: an unknown number of sessions removed."
    return f"Everyone logged out: {removed:,} session{'' if removed == 1 else 's'} removed."


def entry(record: Logout, now: datetime) -> Entry:
    applied_at = timezone.localtime(record.applied_at)
    recent = now - record.applied_at < timedelta(minutes=1)
    return Entry(
        epoch=record.epoch,
        applied_at=applied_at,
        when=f"{applied_at:%Y-%m-%d %H:%M %Z}",
        ago="just now" if recent else f"{timesince(record.applied_at, now)} ago",
        kind=record.get_kind_display(),
        markers=(
            marker_text("FORCE_LOGOUT_VERSION", record.code_marker),
            marker_text("FORCE_LOGOUT_ON_DEPLOY", record.config_marker),
        ),
        sessions=sessions_text(record),
        reason=record.reason,
    )


def latest_logouts() -> list[Logout] | None:
    """The newest entries of the history, or None where the release app is not installed."""
    if not apps.is_installed("release"):
        return None
    # Here, not at the top: the model cannot be imported where its app is not installed.
    from release.models import Logout

    # Where the release commands write the history: a replica may not have the newest rows yet.
    alias = router.db_for_write(Logout)
    connection = connections[alias]
    # Inside a transaction (ATOMIC_REQUESTS, say), a failed query leaves PostgreSQL refusing
    # every later one; a savepoint undoes the failure alone.
    savepoint = transaction.atomic(using=alias) if connection.in_atomic_block else nullcontext()
    try:
        with savepoint:
            return list(Logout.objects.using(alias).order_by("-epoch")[:HISTORY_LENGTH])
    except DatabaseError:
        # Before the first release has migrated, the table is missing; any other failure is
        # the database's to report.
        if Logout._meta.db_table in connection.introspection.table_names():
            raise
        return []


def home(request: HttpRequest) -> HttpResponse:
    records = latest_logouts()
    now = timezone.now()
    history = None if records is None else [entry(record, now) for record in records]
    return render(request, "example_project/home.html", {"history": history})


async def whoami(request: HttpRequest) -> HttpResponse:
    """The same question as the home page, answered on the async path (ASGI)."""
    user = await request.auser()
    text = f"signed in as {user.get_username()}" if user.is_authenticated else "not signed in"
    return HttpResponse(text, content_type="text/plain")


@require_POST
def add_to_cart(request: HttpRequest) -> HttpResponse:
    """Writes to the session of anonymous and signed-in visitors alike, as a shop's cart does."""
    request.session["cart"] = request.session.get("cart", 0) + 1
    return redirect("home")
