"""The two markers that ask for a logout: their values as compared and stored, and shown.

The release command, the status view, the system checks and the session guard all call
`current_markers()`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, overload

from release import conf
from release.conf import CODE_MARKER_SETTING, CONFIG_MARKER_VAR
from release.text import shown

CODE = "code"
CONFIG = "config"

MARKER_NAMES = {CODE: CODE_MARKER_SETTING, CONFIG: CONFIG_MARKER_VAR}


class InvalidMarker(ValueError):
    """A marker holds a value that cannot be compared safely."""


@dataclass(frozen=True)
class Markers:
    """The normalised marker values of this release; None means the marker is not set."""

    code: str | None
    config: str | None

    def get(self, kind: str) -> str | None:
        return self.code if kind == CODE else self.config

    @property
    def digest(self) -> str:
        """Identifies this pair of values, whatever their length or characters."""
        return digest_of(f"{_tag(self.code)}\n{_tag(self.config)}")


NO_MARKERS = Markers(code=None, config=None)


def _tag(value: str | None) -> str:
    # Distinguishes "unset" from every string, including an empty or "None" one.
    return "-" if value is None else "=" + value


def digest_of(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def normalise_code_marker(value: Any) -> str | None:
    """`FORCE_LOGOUT_VERSION` as stored: an int or a non-blank str, compared as text.

    `1` and `"1"` are the same marker value, so changing the type in settings logs nobody out.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidMarker(
            f"{CODE_MARKER_SETTING} must be an int or a non-empty str, not {shown(value)} "
            f"({type(value).__name__})."
        )
    try:
        text = str(value).strip()
    except ValueError as error:  # an int with more digits than Python turns into text
        raise InvalidMarker(
            f"{CODE_MARKER_SETTING} is an int of {int(value).bit_length():,} bits, too long to "
            "store as text; it must be an int or a non-empty str of a sensible length."
        ) from error
    if not text:
        raise InvalidMarker(
            f"{CODE_MARKER_SETTING} must be an int or a non-empty str, not {shown(value)}."
        )
    return text


def normalise_config_marker(value: str | None) -> str | None:
    """`FORCE_LOGOUT_ON_DEPLOY` as stored: white space around it dropped; unset or blank is None."""
    if value is None:
        return None
    text = value.strip()
    return text or None


def current_markers() -> Markers:
    """The markers of the running code and environment. Raises InvalidMarker on a bad setting."""
    raw_code = conf.code_marker()
    code = None if raw_code is conf.UNSET else normalise_code_marker(raw_code)
    return Markers(code=code, config=normalise_config_marker(conf.config_marker()))


@overload
def storable(value: str) -> str: ...


@overload
def storable(value: None) -> None: ...


def storable(value: str | None) -> str | None:
    """`value` as every database can store it, for people to read: NUL and unpaired surrogates
    (which only a Python setting can hold) become backslash escapes. Comparisons use the
    digest of the value itself, so this never makes two values one."""
    if value is None:
        return None
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def describe(value: str | None, limit: int = 80) -> str:
    """A marker value for people to read: repr, shortened when very long."""
    if value is None:
        return "unset"
    shown = repr(value)
    if len(shown) > limit:
        shown = f"{shown[: limit - 1]}… ({len(value):,} characters, sha256 {digest_of(value)[:12]})"
    return shown
