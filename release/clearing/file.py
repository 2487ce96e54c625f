"""The `file` engine: the session files in SESSION_FILE_PATH, on this host."""

from __future__ import annotations

import os
from collections.abc import Iterator

from django.contrib.sessions.backends.file import SessionStore as FileStore

from release import conf
from release.clearing.base import GUARD_NOTE, NOTHING, Cleared, Progress
from release.clearing.keys import SessionKeys


class FileSessions:
    """The files named SESSION_COOKIE_NAME + a session key in SESSION_FILE_PATH, and nothing else
    in that directory (Django's default for it is the system's temporary directory): not names
    that merely start with the cookie name, not the engine's own temporary files
    (SESSION_COOKIE_NAME + key + "_out_..." while it writes one).

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
    def names(self) -> SessionKeys:
        return SessionKeys(conf.session_cookie_name())

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
        return NOTHING

    def clear(self, progress: Progress) -> Cleared:
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
            removed, (f"Other hosts' session directories are not reached: {GUARD_NOTE}.",)
        )
