"""Django's documented primary/replica router, for the replica stack (see settings.py)."""

from __future__ import annotations

from typing import Any

from django.db.models import Model

PRIMARY = "default"
REPLICA = "replica"


class PrimaryReplicaRouter:
    """Reads from the replica, writes to the primary, as in Django's "Multiple databases" guide.

    One exception: the sessions. Django's `db` engine reads the session it has just saved on
    the next request; from a replica 8 s behind, every sign-in would seem lost for 8 s, with or
    without the release app. Apps with a lagging replica read their sessions from the primary.
    """

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        return PRIMARY if model._meta.app_label == "sessions" else REPLICA

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return PRIMARY

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        pool = {PRIMARY, REPLICA}
        return True if {obj1._state.db, obj2._state.db} <= pool else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return True
