"""System checks: configuration mistakes surface on `check`, `migrate` and `release`."""

from __future__ import annotations

from typing import Any

from django.core import checks

from release.exceptions import UnsupportedEngine
from release.markers import CODE_MARKER_SETTING, InvalidMarker, current_markers
from release.stores import store_for_engine


def register() -> None:
    checks.register(check_code_marker, "release")
    checks.register(check_session_engine, "release")


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
    try:
        store_for_engine()
    except UnsupportedEngine as error:
        return [
            checks.Warning(
                str(error),
                hint=(
                    "A release whose marker changed will fail until SESSION_ENGINE is one whose "
                    "sessions this version can remove."
                ),
                id="release.W001",
            )
        ]
    return []
