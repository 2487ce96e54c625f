from __future__ import annotations


class ReleaseError(Exception):
    """A release step failed; the message says what to do. Nothing was recorded as applied."""


class Terminated(ReleaseError):
    """The process was asked to stop; what it was doing was rolled back."""


class UnsupportedEngine(ReleaseError):
    """The configured session engine's sessions cannot be removed by this version."""


class SessionModelMissing(UnsupportedEngine):
    """The engine keeps its sessions in a model whose app is not installed: no session can be
    saved or removed until it is."""
