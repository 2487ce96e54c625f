"""The `db` engine, and custom engines whose sessions are rows of a model."""

from __future__ import annotations

from django.db import DatabaseError, router
from django.db.models import Model

from release import conf
from release.clearing.base import Cleared, Progress
from release.clearing.tables import ROW_LOCK_ATTEMPTS, ROW_LOCK_TIMEOUT_S, SessionTable
from release.exceptions import ReleaseError
from release.text import one_line
from release.vendors import database


class DatabaseSessions:
    """The `db` engine and custom engines whose store has `get_model_class()`.

    SQL of our own (`release.clearing.tables`): never a per-object loop, and no ORM
    `QuerySet.delete()`, which turns into SELECT-everything-then-delete-by-pk as soon as a project
    connects a `pre_delete` or `post_delete` receiver without a sender. Rows of other models that
    refer to the sessions follow their foreign keys' `on_delete`, in bulk
    (`release.clearing.dependents`).
    """

    complete = True

    def __init__(self, engine: str, model: type[Model]) -> None:
        self.engine = engine
        self.model = model

    @property
    def database_alias(self) -> str:
        return router.db_for_write(self.model)

    def describe(self) -> str:
        return f"table {self.model._meta.db_table!r} on database {self.database_alias!r}"

    def count(self) -> int:
        return self.model._base_manager.using(self.database_alias).count()

    def stop_if_refused(self) -> None:
        """The release's own refusal, for a dry run: `SessionTable.stop_if_refused()`."""
        SessionTable(self.database_alias, self.model).stop_if_refused()

    def clear(self, progress: Progress) -> Cleared:
        return SessionTable(self.database_alias, self.model).remove_all(progress)

    def finish(self, *, guarded: bool) -> Cleared:
        table = SessionTable(self.database_alias, self.model)
        try:
            return table.remove_remaining(skip_locked=guarded)
        except DatabaseError as error:
            if not database(self.database_alias).is_lock_timeout(error):
                raise
            raise ReleaseError(
                f"Sessions in {self.describe()} stayed locked by another transaction through "
                f"{ROW_LOCK_ATTEMPTS} waits of {ROW_LOCK_TIMEOUT_S} s ({one_line(error)}). End "
                f"that transaction, or set SESSION_ENGINE to {conf.GUARD_ENGINE!r} so that "
                "locked sessions can be left to the guard."
            ) from error
