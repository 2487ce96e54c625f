"""The app's own settings (the markers are in `release.markers`)."""

from __future__ import annotations

from django.conf import settings

FAIL_OPEN_SETTING = "FORCE_LOGOUT_FAIL_OPEN"


def fail_open() -> bool:
    """Whether a release whose logout failed may still go out (default: no, it fails)."""
    return getattr(settings, FAIL_OPEN_SETTING, False) is True


def fail_open_problem() -> str | None:
    value = getattr(settings, FAIL_OPEN_SETTING, False)
    if isinstance(value, bool):
        return None
    return f"{FAIL_OPEN_SETTING} must be True or False, not {value!r}."
