"""Session keys in a cache or a directory: exactly the names a session engine makes for a session
key, and removing them from Redis without touching any other key."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from django.core.cache import BaseCache
from django.core.cache.backends.redis import RedisCache

from release.clearing.base import Progress
from release.guard import KEY_CHARS, KEY_LENGTH

# Keys per SCAN step and per UNLINK: big enough to be quick, small enough that memory does not
# grow with the number of keys and Redis is never blocked for long.
BATCH = 5000

# Django's own session keys: get_random_string(32, VALID_KEY_CHARS) in SessionBase; the guard
# makes keys of KEY_LENGTH characters from the same characters (KEY_CHARS).
DJANGO_KEY_LENGTH = 32
SESSION_KEY_LENGTHS = (DJANGO_KEY_LENGTH, KEY_LENGTH)
SESSION_KEY_REGEX = "(?:{})".format(
    "|".join(
        f"[{''.join(re.escape(char) for char in KEY_CHARS)}]{{{length}}}"
        for length in SESSION_KEY_LENGTHS
    )
)

_PROBE = "\x00release-probe\x00"


class SessionKeys:
    """The names `before` + a session key + `after`: a session key is KEY_CHARS only, and
    exactly DJANGO_KEY_LENGTH or KEY_LENGTH characters long. Nothing else matches: not a longer
    or shorter name, not another engine's prefix, not an in-progress temporary file."""

    def __init__(self, before: str, after: str = "") -> None:
        self.before = before
        self.after = after
        text = f"{re.escape(before)}{SESSION_KEY_REGEX}{re.escape(after)}"
        # Compiled once: matching is the whole per-key cost of a clear over millions of keys.
        self._text = re.compile(text).fullmatch
        self._bytes = re.compile(text.encode()).fullmatch

    @property
    def pattern(self) -> str:
        """A Redis MATCH pattern for every such name (and some others: filter with matches())."""
        return f"{glob_escape(self.before)}*{glob_escape(self.after)}"

    @property
    def shape(self) -> str:
        return f"{self.before}<session key>{self.after}"

    def matches(self, name: str | bytes) -> bool:
        """Whether `name` (as Redis returns it, bytes, or text) is one of these names."""
        if isinstance(name, bytes):
            return self._bytes(name) is not None
        return self._text(name) is not None

    def __repr__(self) -> str:
        return f"SessionKeys({self.shape!r})"


def redis_client(cache: BaseCache) -> Any:
    """The redis-py client behind Django's RedisCache or django-redis, else None."""
    if isinstance(cache, RedisCache):
        return cache._cache.get_client(write=True)
    try:
        from django_redis.cache import RedisCache as DjangoRedisCache
    except ImportError:  # pragma: no cover - django-redis is optional
        return None
    if isinstance(cache, DjangoRedisCache):
        return cache.client.get_client(write=True)
    return None


def glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


def session_keys(cache: BaseCache, prefix: str) -> SessionKeys | None:
    """The keys `cache` makes for the keys `prefix` + a session key, honouring KEY_PREFIX,
    VERSION and KEY_FUNCTION; None if the key function does not keep the session key whole
    between a fixed beginning and end (a hash of the key, say)."""
    probe = str(cache.make_key(prefix + _PROBE))
    if _PROBE not in probe:
        return None
    before, after = probe.split(_PROBE, 1)
    for length in SESSION_KEY_LENGTHS:
        sample = (KEY_CHARS * (length // len(KEY_CHARS) + 1))[:length]
        if str(cache.make_key(prefix + sample)) != before + sample + after:
            return None
    return SessionKeys(before, after)


def scan(
    client: Any, pattern: str, where: Callable[[Any], bool] | None = None, batch: int = BATCH
) -> Iterator[Any]:
    """The keys SCAN finds for `pattern`, those `where` accepts if given."""
    found = client.scan_iter(match=pattern, count=batch)
    return found if where is None else filter(where, found)


def count_matching(
    client: Any, pattern: str, where: Callable[[Any], bool] | None = None, batch: int = BATCH
) -> int:
    return sum(1 for _ in scan(client, pattern, where, batch))


def unlink_matching(
    client: Any,
    pattern: str,
    batch: int = BATCH,
    progress: Progress | None = None,
    where: Callable[[Any], bool] | None = None,
) -> int:
    """SCAN for `pattern` and UNLINK what it finds (what `where` accepts, if given), `batch` keys
    at a time, calling `progress` with the running total after each UNLINK; returns the count."""
    removed = 0
    for keys in batched(scan(client, pattern, where, batch), batch):
        removed += client.unlink(*keys)
        if progress is not None:
            progress(removed, None)
    return removed


def delete_keys(cache: BaseCache, keys: Iterable[str], batch: int = BATCH) -> int:
    """Delete the given keys in batches from a cache that cannot be listed; returns how many
    were asked for."""
    asked = 0
    for chunk in batched(keys, batch):
        cache.delete_many(chunk)
        asked += len(chunk)
    return asked


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
