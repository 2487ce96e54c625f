"""What this database has applied, read once: inside the release lock to act on it, or without it
for a forecast."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connections, router

from release.decision.markers import CODE, CONFIG, NO_MARKERS, Markers, digest_of
from release.models import AppliedMarker, Logout, ReleaseEpoch


def history_alias() -> str:
    """The database the history is written to (and read from: a replica may lag)."""
    return router.db_for_write(Logout)


def is_installed(alias: str | None = None) -> bool:
    """Whether this app's tables exist (a dry run before the first migrate has none)."""
    alias = alias or history_alias()
    return Logout._meta.db_table in connections[alias].introspection.table_names()


@dataclass(frozen=True)
class History:
    """The newest logout epoch (None before the first release with the tool), the marker
    values the last release step ran with, and the events that applied this release's values."""

    newest: int | None = None
    previous: Markers = NO_MARKERS
    applied: dict[str, Logout] = field(default_factory=dict)

    @classmethod
    def read(cls, alias: str, markers: Markers) -> History:
        if not is_installed(alias):
            return cls()
        newest = (
            Logout.objects.using(alias).order_by("-epoch").values_list("epoch", flat=True).first()
        )
        last = ReleaseEpoch.objects.using(alias).order_by("-released_at", "-pk").first()
        previous = (
            NO_MARKERS
            if last is None
            else Markers(code=last.code_marker, config=last.config_marker)
        )
        applied = {}
        for kind in (CODE, CONFIG):
            value = markers.get(kind)
            if value is None:
                continue
            row = (
                AppliedMarker.objects.using(alias)
                .filter(kind=kind, digest=digest_of(value))
                .select_related("logout")
                .first()
            )
            if row is not None:
                applied[kind] = row.logout
        return cls(newest=newest, previous=previous, applied=applied)
