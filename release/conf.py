"""The app's own settings, read here and nowhere else (the markers are in `release.markers`)."""

from __future__ import annotations

from django.conf import settings

from release.text import shown

FAIL_OPEN_SETTING = "FORCE_LOGOUT_FAIL_OPEN"
STORAGE_ENGINE_SETTING = "RELEASE_SESSION_ENGINE"
SESSION_MODEL_SETTING = "RELEASE_SESSION_MODEL"

# SESSION_ENGINE = GUARD_ENGINE guards the engine named by RELEASE_SESSION_ENGINE.
GUARD_ENGINE = "release.sessions"
DEFAULT_STORAGE_ENGINE = "django.contrib.sessions.backends.db"


def fail_open() -> bool:
    """Whether a release whose logout failed may still go out (default: no, it fails)."""
    return getattr(settings, FAIL_OPEN_SETTING, False) is True


def fail_open_problem() -> str | None:
    value = getattr(settings, FAIL_OPEN_SETTING, False)
    if isinstance(value, bool):
        return None
    return f"{FAIL_OPEN_SETTING} must be True or False, not {shown(value)}."


def is_guarded() -> bool:
    """Whether SESSION_ENGINE is the guard, so that every session loaded is checked."""
    return bool(settings.SESSION_ENGINE == GUARD_ENGINE)


def guarded_engine_setting() -> object:
    """RELEASE_SESSION_ENGINE as set (any type: the checks say what is wrong with it)."""
    return getattr(settings, STORAGE_ENGINE_SETTING, DEFAULT_STORAGE_ENGINE)


def storage_engine() -> str:
    """The engine whose store keeps the sessions: the guarded one, or SESSION_ENGINE itself."""
    if is_guarded():
        return str(guarded_engine_setting())
    return str(settings.SESSION_ENGINE)


def session_model_setting() -> object:
    """RELEASE_SESSION_MODEL: "app_label.ModelName" of a custom engine's sessions, or None."""
    return getattr(settings, SESSION_MODEL_SETTING, None)
