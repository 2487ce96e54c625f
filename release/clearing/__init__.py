"""Removing every session of the engine that keeps them, one module per engine, as
`django.contrib.sessions.backends` is laid out.

`clearer_for()` picks the clearer from the engine's SessionStore, by the built-in store it is or
subclasses. What a clearer cannot remove (other hosts' files, signed cookies, caches that cannot
be listed) the session guard refuses at the next request, so those need it (`complete` False).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import apps
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.cache import SessionStore as CacheStore
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore
from django.contrib.sessions.backends.file import SessionStore as FileStore
from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieStore
from django.db.models import Model

from release import conf
from release.clearing.base import Cleared, Clearer, Progress, no_progress
from release.clearing.cache import CacheSessions
from release.clearing.cached_db import CachedDatabaseSessions
from release.clearing.db import DatabaseSessions
from release.clearing.file import FileSessions
from release.clearing.signed_cookies import CookieSessions
from release.exceptions import SessionModelMissing, UnsupportedEngine
from release.text import one_line

__all__ = ["Cleared", "Clearer", "Progress", "clearer_for", "no_progress"]


def clearer_for(engine: str | None = None) -> Clearer:
    """The clearer for `engine` (default: the engine that keeps the sessions, the guarded one
    where SESSION_ENGINE is the guard); UnsupportedEngine if it has none."""
    engine = engine or conf.storage_engine()
    if engine == conf.GUARD_ENGINE:
        raise UnsupportedEngine(
            f"{conf.STORAGE_ENGINE_SETTING} names the guard {engine!r} itself; name the engine "
            "that keeps the sessions, such as 'django.contrib.sessions.backends.db'."
        )
    try:
        store_class: Any = import_module(engine).SessionStore
    except RuntimeError as error:  # Django's error for a model whose app is not installed
        raise SessionModelMissing(
            f"The session engine {engine!r} cannot be imported: its session model is not in an "
            f"installed app ({one_line(error)})."
        ) from error
    except (ImportError, AttributeError) as error:
        raise UnsupportedEngine(
            f"The session engine {engine!r} cannot be imported ({error}). Fix the setting."
        ) from error
    cache_alias = conf.session_cache_alias()
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


def session_model(engine: str, store_class: type[SessionBase]) -> type[Model]:
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
