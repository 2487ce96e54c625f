"""System checks: configuration mistakes surface on `check`, `migrate` and `release`."""

from __future__ import annotations

from typing import Any

from django.core import checks

from release.conf import FAIL_OPEN_SETTING, fail_open_problem
from release.exceptions import UnsupportedEngine
from release.markers import CODE_MARKER_SETTING, InvalidMarker, current_markers
from release.middleware import (
    DJANGO_SESSION_MIDDLEWARE,
    GUARD_MIDDLEWARE,
    installed_session_middleware,
)
from release.stores import store_for_engine

USE_GUARD = f"In MIDDLEWARE, replace {DJANGO_SESSION_MIDDLEWARE!r} with {GUARD_MIDDLEWARE!r}."


def register() -> None:
    checks.register(check_code_marker, "release")
    checks.register(check_session_engine, "release")
    checks.register(check_fail_open, "release")


def check_fail_open(**kwargs: Any) -> list[checks.CheckMessage]:
    problem = fail_open_problem()
    if problem is None:
        return []
    return [
        checks.Error(
            problem,
            hint=(
                f"Leave {FAIL_OPEN_SETTING} out (a failed logout fails the release), or set it "
                "to True to let releases out when their logout fails."
            ),
            id="release.E004",
        )
    ]


def check_code_marker(**kwargs: Any) -> list[checks.CheckMessage]:
    try:
        current_markers()
    except InvalidMarker as error:
        return [
            checks.Error(
                str(error),
                hint=(
                    f"Set {CODE_MARKER_SETTING} to an int such as 1 or a short string such as "
                    "'2026-11-password-fix', and change it when everyone must sign in again."
                ),
                id="release.E001",
            )
        ]
    return []


def check_session_engine(**kwargs: Any) -> list[checks.CheckMessage]:
    guard, plain = installed_session_middleware()
    if guard and plain:
        return [
            checks.Error(
                f"MIDDLEWARE has both {GUARD_MIDDLEWARE!r} and {DJANGO_SESSION_MIDDLEWARE!r}; "
                "the second one replaces the guarded session of the first.",
                hint=f"Keep only {GUARD_MIDDLEWARE!r}.",
                id="release.E003",
            )
        ]
    try:
        store = store_for_engine()
    except UnsupportedEngine as error:
        return [
            checks.Warning(
                str(error),
                hint=(
                    "A release whose marker changed will fail until SESSION_ENGINE is one of "
                    "Django's engines, a subclass of one, or has get_model_class()."
                ),
                id="release.W001",
            )
        ]
    if guard:
        return []
    if not store.complete:
        return [
            checks.Error(
                f"SESSION_ENGINE {store.engine!r} keeps sessions that a release cannot all "
                f"remove ({store.describe()}), and nothing refuses them afterwards.",
                hint=f"{USE_GUARD} A release that logs everyone out fails until then.",
                id="release.E002",
            )
        ]
    return [
        checks.Warning(
            f"{GUARD_MIDDLEWARE!r} is not in MIDDLEWARE, so sessions that the old release makes "
            "while the release phase runs, or during preboot, survive a logout.",
            hint=USE_GUARD,
            id="release.W002",
        )
    ]
