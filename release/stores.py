"""Where each session engine keeps its sessions, and how all of them are removed at once.

One class per kind of store; `store_for_engine()` picks it from `SESSION_ENGINE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Protocol

from django.conf import settings
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore
from django.db import connections, router
from django.db.models import Model

from release.exceptions import UnsupportedEngine


@dataclass
class Cleared:
    """What a clear removed; `removed` is None where the store cannot count."""

    removed: int | None
    notes: list[str] = field(default_factory=list)


class SessionStoreClearer(Protocol):
    engine: str

    @property
    def database_alias(self) -> str | None:
        """The database whose transaction the clear runs in, if any."""

    def describe(self) -> str: ...

    def count(self) -> int | None: ...

    def clear(self) -> Cleared: ...


class DatabaseSessions:
    """The `db` engine and custom engines whose store has `get_model_class()`.

    One `DELETE FROM <table>` in the caller's transaction: never a per-object loop, and no
    ORM `QuerySet.delete()`, which turns into SELECT-everything-then-delete-by-pk as soon as a
    project connects a `pre_delete` or `post_delete` receiver without a sender.
    """

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

    def clear(self) -> Cleared:
        connection = connections[self.database_alias]
        table = connection.ops.quote_name(self.model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table}")
            return Cleared(removed=max(cursor.rowcount, 0))


def session_store_class(engine: str | None = None) -> Any:
    return import_module(engine or settings.SESSION_ENGINE).SessionStore


def store_for_engine(engine: str | None = None) -> SessionStoreClearer:
    """The clearer for `engine` (default `SESSION_ENGINE`); UnsupportedEngine if it has none."""
    engine = engine or settings.SESSION_ENGINE
    try:
        store_class = session_store_class(engine)
    except (ImportError, AttributeError) as error:
        raise UnsupportedEngine(
            f"SESSION_ENGINE {engine!r} cannot be imported ({error}). Fix the setting."
        ) from error
    if issubclass(store_class, CachedDBStore):
        raise UnsupportedEngine(
            f"SESSION_ENGINE {engine!r} keeps copies of sessions in the cache, which this "
            "version cannot remove. Switch to 'django.contrib.sessions.backends.db' or log "
            "users out another way."
        )
    if hasattr(store_class, "get_model_class"):
        return DatabaseSessions(engine, store_class.get_model_class())
    raise UnsupportedEngine(
        f"SESSION_ENGINE {engine!r} does not keep its sessions in a database table, and this "
        "version can only remove sessions stored by 'django.contrib.sessions.backends.db' or a "
        "custom engine whose SessionStore has get_model_class(). Nothing was logged out."
    )
