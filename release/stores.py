"""Where each session engine keeps its sessions, and how all of them are removed at once.

One class per kind of store; `store_for_engine()` picks it from `SESSION_ENGINE`, by the
built-in store the engine's SessionStore is or subclasses. What a store cannot remove (other
hosts' files, signed cookies, caches that cannot be listed) the session guard refuses at the
next request, so those stores need it installed (`complete` is False).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Protocol

from django.apps import apps
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.cache import SessionStore as CacheStore
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore
from django.contrib.sessions.backends.file import SessionStore as FileStore
from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieStore
from django.core.cache import BaseCache, caches
from django.db import DatabaseError, router
from django.db.models import Model

from release import cache_keys, conf, tables
from release.exceptions import ReleaseError, SessionModelMissing, UnsupportedEngine
from release.tables import Progress, no_progress
from release.text import counted, one_line

GUARD_NOTE = "the session guard refuses them at their next request"


@dataclass
class Cleared:
    """What a clear removed; `removed` is None where the store cannot count."""

    removed: int | None
    notes: list[str] = field(default_factory=list)

    def add(self, other: Cleared) -> Cleared:
        """Both steps of a clear; what one step cannot count, the sum cannot either."""
        if self.removed is None or other.removed is None:
            return Cleared(None, self.notes + other.notes)
        return Cleared(self.removed + other.removed, self.notes + other.notes)


class SessionStoreClearer(Protocol):
    engine: str

    @property
    def complete(self) -> bool:
        """Whether clear() removes every session made so far, wherever it is kept."""

    @property
    def database_alias(self) -> str | None:
        """The database whose transaction the clear runs in, if any."""

    def describe(self) -> str: ...

    def count(self) -> int | None: ...

    def clear(self, progress: Progress = no_progress) -> Cleared:
        """Remove the sessions, in as many steps and transactions as the store needs."""

    def finish(self, *, guarded: bool) -> Cleared:
        """Inside the transaction that records the logout: what was saved since clear()."""


class DatabaseSessions:
    """The `db` engine and custom engines whose store has `get_model_class()`.

    SQL of our own (`release.tables`): never a per-object loop, and no ORM `QuerySet.delete()`,
    which turns into SELECT-everything-then-delete-by-pk as soon as a project connects a
    `pre_delete` or `post_delete` receiver without a sender. Rows of other models that refer to
    the sessions follow their foreign keys' `on_delete`, in bulk (`release.tables.Dependents`).
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

    def clear(self, progress: Progress = no_progress) -> Cleared:
        removal = tables.remove_all(self.database_alias, self.model, progress)
        return Cleared(removal.removed, removal.notes)

    def finish(self, *, guarded: bool) -> Cleared:
        try:
            removal = tables.remove_remaining(self.database_alias, self.model, skip_locked=guarded)
        except DatabaseError as error:
            if not tables.is_lock_timeout(error):
                raise
            raise ReleaseError(
                f"Sessions in {self.describe()} stayed locked by another transaction through "
                f"{tables.ROW_LOCK_ATTEMPTS} waits of {tables.ROW_LOCK_TIMEOUT_S} s "
                f"({one_line(error)}). End that transaction, or set SESSION_ENGINE to "
                f"{conf.GUARD_ENGINE!r} so that locked sessions can be left to the guard."
            ) from error
        return Cleared(removal.removed, removal.notes)


class CacheSessions:
    """The `cache` engine: the session keys under the cache's KEY_PREFIX and VERSION.

    On Redis (Django's RedisCache or django-redis), SCAN and UNLINK in batches of exactly the
    keys the engine makes for a session key (`cache_keys.SessionKeys`), leaving every other key:
    other prefixes, versions and engines, and keys that merely start like a session's. Other
    caches cannot be listed; the guard refuses what stays in them.
    """

    def __init__(self, engine: str, cache_alias: str, key_prefix: str) -> None:
        self.engine = engine
        self.cache_alias = cache_alias
        self.key_prefix = key_prefix
        self.database_alias: str | None = None

    @property
    def cache(self) -> BaseCache:
        return caches[self.cache_alias]

    @property
    def keys(self) -> cache_keys.SessionKeys | None:
        """The session keys, where the cache can be listed."""
        if cache_keys.redis_client(self.cache) is None:
            return None
        return cache_keys.session_keys(self.cache, self.key_prefix)

    @property
    def complete(self) -> bool:
        return self.keys is not None

    def describe(self) -> str:
        backend = type(self.cache).__name__
        keys = self.keys
        if keys is None:
            return f"cache {self.cache_alias!r} ({backend}), which cannot be listed"
        return f"cache {self.cache_alias!r} ({backend}), keys matching {keys.shape!r}"

    def count(self) -> int | None:
        keys = self.keys
        if keys is None:
            return None
        client = cache_keys.redis_client(self.cache)
        return cache_keys.count_matching(client, keys.pattern, keys.matches)

    def finish(self, *, guarded: bool) -> Cleared:
        return Cleared(0)

    def clear(self, progress: Progress = no_progress) -> Cleared:
        keys = self.keys
        if keys is None:
            return Cleared(
                removed=None,
                notes=[
                    f"Sessions in {type(self.cache).__name__} cannot be listed, so none were "
                    f"deleted: {GUARD_NOTE}."
                ],
            )
        client = cache_keys.redis_client(self.cache)
        return Cleared(
            removed=cache_keys.unlink_matching(
                client,
                keys.pattern,
                progress=lambda removed: progress(removed, None),
                where=keys.matches,
            )
        )


class CachedDatabaseSessions(DatabaseSessions):
    """The `cached_db` engine: the rows, and the copies of them in the cache.

    `load()` reads the cache first, so a cached copy would keep a deleted session alive. On Redis
    the copies go after the rows, found by SCAN as exactly the keys this engine makes for a
    session key (as for `cache`); on caches that cannot be listed, by the keys of the rows, read
    in batches before the rows go.
    """

    def __init__(self, engine: str, model: type[Model], cache_alias: str, key_prefix: str):
        super().__init__(engine, model)
        self.copies = CacheSessions(engine, cache_alias, key_prefix)

    def describe(self) -> str:
        return f"{super().describe()}, and copies in {self.copies.describe()}"

    def clear(self, progress: Progress = no_progress) -> Cleared:
        if self.copies.keys is None:
            keys = (
                self.copies.key_prefix + key
                for key in self.model._base_manager.using(self.database_alias)
                .values_list("session_key", flat=True)
                .iterator(chunk_size=cache_keys.BATCH)
            )
            asked = cache_keys.delete_keys(self.copies.cache, keys)
            cleared = super().clear(progress)
            cleared.notes.append(
                f"Asked the cache to delete {counted(asked, 'cached copy', 'cached copies')}."
            )
            return cleared
        cleared = super().clear(progress)
        copies = self.copies.clear()
        cleared.notes.append(
            f"Removed {counted(copies.removed or 0, 'cached copy', 'cached copies')}."
        )
        return cleared


class FileSessions:
    """The `file` engine: the files named SESSION_COOKIE_NAME + a session key in
    SESSION_FILE_PATH, and nothing else in that directory (Django's default for it is the
    system's temporary directory): not names that merely start with the cookie name, not the
    engine's own temporary files (SESSION_COOKIE_NAME + key + "_out_..." while it writes one).

    Only this host's directory is reached; the guard refuses sessions kept on other hosts.
    """

    complete = False
    database_alias = None
    # How often clear() reports its progress, in files removed.
    PROGRESS_EVERY = 1000

    def __init__(self, engine: str, store_class: type[FileStore]) -> None:
        self.engine = engine
        self.store_class = store_class

    @property
    def directory(self) -> str:
        return str(self.store_class._get_storage_path())  # type: ignore[attr-defined]

    @property
    def prefix(self) -> str:
        return settings.SESSION_COOKIE_NAME

    @property
    def names(self) -> cache_keys.SessionKeys:
        return cache_keys.SessionKeys(self.prefix)

    def describe(self) -> str:
        return f"files named {self.names.shape!r} in {self.directory!r} on this host"

    def _files(self) -> Iterator[str]:
        """The paths of the session files, as the directory lists them (not all held at once:
        a file a clear does not reach is left to the guard)."""
        names = self.names
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if names.matches(entry.name) and entry.is_file():
                    yield entry.path

    def count(self) -> int:
        return sum(1 for _ in self._files())

    def finish(self, *, guarded: bool) -> Cleared:
        return Cleared(0)

    def clear(self, progress: Progress = no_progress) -> Cleared:
        removed = 0
        try:
            for path in self._files():
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue  # the session was deleted or rotated meanwhile
                removed += 1
                if removed % self.PROGRESS_EVERY == 0:
                    progress(removed, None)
        finally:
            # Also when a file cannot be removed: what is gone so far, exactly.
            if removed % self.PROGRESS_EVERY:
                progress(removed, None)
        return Cleared(
            removed=removed,
            notes=[f"Other hosts' session directories are not reached: {GUARD_NOTE}."],
        )


class CookieSessions:
    """The `signed_cookies` engine: sessions live in browsers; nothing to remove here."""

    complete = False
    database_alias = None

    def __init__(self, engine: str) -> None:
        self.engine = engine

    def describe(self) -> str:
        return "signed cookies in the browsers"

    def count(self) -> None:
        return None

    def finish(self, *, guarded: bool) -> Cleared:
        return Cleared(None)

    def clear(self, progress: Progress = no_progress) -> Cleared:
        return Cleared(
            removed=None,
            notes=[f"Signed-cookie sessions cannot be deleted server-side: {GUARD_NOTE}."],
        )


def session_store_class(engine: str | None = None) -> type[SessionBase]:
    store_class: type[SessionBase] = import_module(engine or conf.storage_engine()).SessionStore
    return store_class


def store_for_engine(engine: str | None = None) -> SessionStoreClearer:
    """The clearer for `engine` (default: the engine that keeps the sessions, the guarded one
    where SESSION_ENGINE is the guard); UnsupportedEngine if it has none."""
    engine = engine or conf.storage_engine()
    if engine == conf.GUARD_ENGINE:
        raise UnsupportedEngine(
            f"{conf.STORAGE_ENGINE_SETTING} names the guard {engine!r} itself; name the engine "
            "that keeps the sessions, such as 'django.contrib.sessions.backends.db'."
        )
    try:
        store_class: Any = session_store_class(engine)
    except RuntimeError as error:  # Django's error for a model whose app is not installed
        raise SessionModelMissing(
            f"The session engine {engine!r} cannot be imported: its session model is not in an "
            f"installed app ({one_line(error)})."
        ) from error
    except (ImportError, AttributeError) as error:
        raise UnsupportedEngine(
            f"The session engine {engine!r} cannot be imported ({error}). Fix the setting."
        ) from error
    cache_alias = settings.SESSION_CACHE_ALIAS
    if issubclass(store_class, CachedDBStore):
        return CachedDatabaseSessions(
            engine, session_model(engine, store_class), cache_alias, store_class.cache_key_prefix
        )
    if issubclass(store_class, CacheStore):
        return CacheSessions(engine, cache_alias, store_class.cache_key_prefix)
    if issubclass(store_class, FileStore):
        return FileSessions(engine, store_class)
    if issubclass(store_class, CookieStore):
        return CookieSessions(engine)
    return DatabaseSessions(engine, session_model(engine, store_class))


def session_model(engine: str, store_class: Any) -> type[Model]:
    """The model that keeps a database engine's sessions: `get_model_class()` where the store
    has it (Django's engines, django-qsessions, `AbstractBaseSession` engines), else
    RELEASE_SESSION_MODEL, else the one session model the store's module uses
    (django-user-sessions)."""
    named = conf.session_model_setting()
    try:
        if named is not None:
            return apps.get_model(str(named))
        if hasattr(store_class, "get_model_class"):
            model: type[Model] = store_class.get_model_class()
            return model
    except (LookupError, ValueError, RuntimeError) as error:
        raise SessionModelMissing(
            f"The session model of engine {engine!r} cannot be loaded ({one_line(error)}). Add "
            f"its app to INSTALLED_APPS, or name the model in {conf.SESSION_MODEL_SETTING} "
            "('app_label.ModelName')."
        ) from error
    found = {
        value
        for value in vars(import_module(store_class.__module__)).values()
        if isinstance(value, type) and issubclass(value, Model) and _is_session_model(value)
    }
    if len(found) == 1:
        return found.pop()
    raise UnsupportedEngine(
        f"The session engine {engine!r} is not one of Django's engines or a subclass of one, "
        "and its SessionStore has no get_model_class(), so its sessions cannot be found. Name "
        f"its session model in {conf.SESSION_MODEL_SETTING} ('app_label.ModelName')."
    )


def _is_session_model(model: type[Model]) -> bool:
    if model._meta.abstract:
        return False
    names = {field.name for field in model._meta.get_fields()}
    return {"session_key", "session_data", "expire_date"} <= names
