"""Every setting and environment variable the app reads, read here and nowhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from django.conf import settings
from django.utils.functional import Promise

from release.text import shown

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

CODE_MARKER_SETTING = "FORCE_LOGOUT_VERSION"
CONFIG_MARKER_VAR = "FORCE_LOGOUT_ON_DEPLOY"
FAIL_OPEN_SETTING = "FORCE_LOGOUT_FAIL_OPEN"
STORAGE_ENGINE_SETTING = "RELEASE_SESSION_ENGINE"
SESSION_MODEL_SETTING = "RELEASE_SESSION_MODEL"
LOGOUT_MESSAGE_SETTING = "FORCE_LOGOUT_MESSAGE"

# SESSION_ENGINE = GUARD_ENGINE guards the engine named by RELEASE_SESSION_ENGINE.
GUARD_ENGINE = "release.sessions"
DEFAULT_STORAGE_ENGINE = "django.contrib.sessions.backends.db"

# Seconds libpq waits for a PostgreSQL connection, unless the environment says otherwise: a
# database that does not answer fails a command in seconds, not in the dyno's hour.
CONNECT_TIMEOUT = 10

UNSET = object()


def code_marker() -> object:
    """FORCE_LOGOUT_VERSION as set (any type: `release.decision.markers` checks it), or UNSET."""
    return getattr(settings, CODE_MARKER_SETTING, UNSET)


def config_marker() -> str | None:
    """The FORCE_LOGOUT_ON_DEPLOY config var, as the environment has it."""
    return os.environ.get(CONFIG_MARKER_VAR)


def fail_open() -> bool:
    """Whether a release whose logout failed may still go out (default: no, it fails)."""
    return getattr(settings, FAIL_OPEN_SETTING, False) is True


def fail_open_problem() -> str | None:
    value = getattr(settings, FAIL_OPEN_SETTING, False)
    if isinstance(value, bool):
        return None
    return f"{FAIL_OPEN_SETTING} must be True or False, not {shown(value)}."


def logout_message() -> str | _StrPromise | None:
    """The text shown to a user whose session the guard refused (a lazy translation stays
    lazy); None: nothing is shown."""
    value = getattr(settings, LOGOUT_MESSAGE_SETTING, None)
    if isinstance(value, (str, Promise)) and str(value).strip():
        return cast("str | _StrPromise", value)
    return None


def logout_message_problem() -> str | None:
    value = getattr(settings, LOGOUT_MESSAGE_SETTING, None)
    if value is None or logout_message() is not None:
        return None
    return f"{LOGOUT_MESSAGE_SETTING} must be a non-empty str, or None, not {shown(value)}."


def middleware() -> list[str]:
    return list(settings.MIDDLEWARE)


def is_guarded() -> bool:
    """Whether SESSION_ENGINE is the guard, so that every session loaded is checked."""
    return bool(settings.SESSION_ENGINE == GUARD_ENGINE)


def session_engine() -> str:
    return str(settings.SESSION_ENGINE)


def guarded_engine_setting() -> object:
    """RELEASE_SESSION_ENGINE as set (any type: the checks say what is wrong with it)."""
    return getattr(settings, STORAGE_ENGINE_SETTING, DEFAULT_STORAGE_ENGINE)


def has_guarded_engine_setting() -> bool:
    return hasattr(settings, STORAGE_ENGINE_SETTING)


def storage_engine() -> str:
    """The engine whose store keeps the sessions: the guarded one, or SESSION_ENGINE itself."""
    if is_guarded():
        return str(guarded_engine_setting())
    return session_engine()


def session_model_setting() -> object:
    """RELEASE_SESSION_MODEL: "app_label.ModelName" of a custom engine's sessions, or None."""
    return getattr(settings, SESSION_MODEL_SETTING, None)


def session_cache_alias() -> str:
    return str(settings.SESSION_CACHE_ALIAS)


def session_cookie_name() -> str:
    return str(settings.SESSION_COOKIE_NAME)


@dataclass(frozen=True)
class DynoMetadata:
    """What the dyno says about the release it runs, where Heroku provides it.

    `HEROKU_RELEASE_VERSION` and `HEROKU_SLUG_COMMIT` exist only with
    `heroku labs:enable runtime-dyno-metadata`; `DYNO` names the dyno (`release.1234`,
    `run.5678`).
    """

    release_version: str
    slug_commit: str
    dyno: str


def dyno_metadata() -> DynoMetadata:
    return DynoMetadata(
        release_version=os.environ.get("HEROKU_RELEASE_VERSION", "")[:64],
        slug_commit=os.environ.get("HEROKU_SLUG_COMMIT", "")[:64],
        dyno=os.environ.get("DYNO", ""),
    )


def limit_connect_wait() -> None:
    """Make libpq give up on a database that does not answer after CONNECT_TIMEOUT seconds,
    unless PGCONNECT_TIMEOUT says otherwise."""
    os.environ.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT))
