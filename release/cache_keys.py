"""Removing session keys from a cache, without touching its other keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from django.core.cache import BaseCache
from django.core.cache.backends.redis import RedisCache

# Keys per SCAN step and per UNLINK: big enough to be quick, small enough that memory does not
# grow with the number of keys and Redis is never blocked for long.
BATCH = 5000

_PROBE = "\x00release-probe\x00"


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


def key_pattern(cache: BaseCache, prefix: str) -> str | None:
    """The Redis MATCH pattern for every key `cache` makes from a key starting with `prefix`,
    honouring KEY_PREFIX, VERSION and KEY_FUNCTION; None if the key function hides the key."""
    probe = str(cache.make_key(prefix + _PROBE))
    if _PROBE not in probe:
        return None
    before, after = probe.split(_PROBE, 1)
    return f"{glob_escape(before)}*{glob_escape(after)}"


def unlink_matching(
    client: Any, pattern: str, batch: int = BATCH, progress: Callable[[int], None] | None = None
) -> int:
    """SCAN for `pattern` and UNLINK what it finds, `batch` keys at a time; returns the count."""
    removed = 0
    for keys in batched(client.scan_iter(match=pattern, count=batch), batch):
        removed += client.unlink(*keys)
        if progress is not None:
            progress(removed)
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
