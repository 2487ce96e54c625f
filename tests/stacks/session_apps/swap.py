"""What the stacks' settings share."""

from __future__ import annotations

from importlib.util import find_spec

from django.core.exceptions import ImproperlyConfigured


def require(package: str) -> None:
    """Say how to install a stack's app, rather than fail on its import later."""
    if find_spec(package) is None:
        raise ImproperlyConfigured(
            f"{package!r} is not installed: pip install -r tests/requirements-stacks.txt"
        )


def replaced(entries: list[str], old: str, new: str) -> list[str]:
    """`entries` with `old` replaced by `new` in its place, as the apps' guides say to."""
    if old not in entries:
        raise ValueError(f"{old!r} is not in {entries!r}")
    return [new if entry == old else entry for entry in entries]
