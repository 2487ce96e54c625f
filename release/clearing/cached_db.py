"""The `cached_db` engine: the rows, and the copies of them in the cache."""

from __future__ import annotations

from django.db.models import Model

from release.clearing import keys as session_keys
from release.clearing.base import Cleared, Progress, no_progress
from release.clearing.cache import CacheSessions
from release.clearing.db import DatabaseSessions
from release.text import counted


class CachedDatabaseSessions(DatabaseSessions):
    """`load()` reads the cache first, so a cached copy would keep a deleted session alive. On
    Redis the copies go after the rows, found by SCAN as exactly the keys this engine makes for a
    session key (as for `cache`); on caches that cannot be listed, by the keys of the rows, read
    in batches before the rows go.
    """

    def __init__(self, engine: str, model: type[Model], cache_alias: str, key_prefix: str):
        super().__init__(engine, model)
        self.copies = CacheSessions(engine, cache_alias, key_prefix)

    def describe(self) -> str:
        return f"{super().describe()}, and copies in {self.copies.describe()}"

    def clear(self, progress: Progress) -> Cleared:
        if self.copies.keys is None:
            keys = (
                self.copies.key_prefix + key
                for key in self.model._base_manager.using(self.database_alias)
                .values_list("session_key", flat=True)
                .iterator(chunk_size=session_keys.BATCH)
            )
            asked = session_keys.delete_keys(self.copies.cache, keys)
            return (
                super()
                .clear(progress)
                .noted(
                    f"Asked the cache to delete {counted(asked, 'cached copy', 'cached copies')}."
                )
            )
        cleared = super().clear(progress)
        copies = self.copies.clear(no_progress)
        return cleared.noted(
            f"Removed {counted(copies.removed or 0, 'cached copy', 'cached copies')}."
        )
