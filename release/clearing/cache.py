"""The `cache` engine: the session keys under the cache's KEY_PREFIX and VERSION."""

from __future__ import annotations

from django.core.cache import BaseCache, caches

from release.clearing import keys as session_keys
from release.clearing.base import GUARD_NOTE, NOTHING, Cleared, Progress


class CacheSessions:
    """On Redis (Django's RedisCache or django-redis), SCAN and UNLINK in batches of exactly the
    keys the engine makes for a session key (`release.clearing.keys.SessionKeys`), leaving every
    other key: other prefixes, versions and engines, and keys that merely start like a session's.
    Other caches cannot be listed; the guard refuses what stays in them.
    """

    database_alias: str | None = None

    def __init__(self, engine: str, cache_alias: str, key_prefix: str) -> None:
        self.engine = engine
        self.cache_alias = cache_alias
        self.key_prefix = key_prefix

    @property
    def cache(self) -> BaseCache:
        return caches[self.cache_alias]

    @property
    def keys(self) -> session_keys.SessionKeys | None:
        """The session keys, where the cache can be listed."""
        if session_keys.redis_client(self.cache) is None:
            return None
        return session_keys.session_keys(self.cache, self.key_prefix)

    @property
    def complete(self) -> bool:
        return self.keys is not None

    def describe(self) -> str:
        backend = type(self.cache).__name__
        keys = self.keys
        if keys is None:
            return f"cache {self.cache_alias!r} ({backend}), which cannot be listed"
        return f"cache {self.cache_alias!r} ({backend}), keys matching {keys.shape!r}"

    def count(self) -> int | None:
        keys = self.keys
        if keys is None:
            return None
        client = session_keys.redis_client(self.cache)
        return session_keys.count_matching(client, keys.pattern, keys.select)

    def finish(self, *, guarded: bool) -> Cleared:
        return NOTHING

    def clear(self, progress: Progress) -> Cleared:
        keys = self.keys
        if keys is None:
            return Cleared(
                None,
                (
                    f"Sessions in {type(self.cache).__name__} cannot be listed, so none were "
                    f"deleted: {GUARD_NOTE}.",
                ),
            )
        client = session_keys.redis_client(self.cache)
        return Cleared(
            session_keys.unlink_matching(client, keys.pattern, progress=progress, keys=keys)
        )
