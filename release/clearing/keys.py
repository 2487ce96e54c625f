"""Session keys in a cache or a directory: exactly the names a session engine makes for a session
key, and removing them from Redis without touching any other key."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import Any

from django.core.cache import BaseCache
from django.core.cache.backends.redis import RedisCache

from release.clearing.base import Progress
from release.guard import KEY_CHARS, KEY_LENGTH

# Keys per delete_many where the keys cannot be listed, and rows per chunk where a cached_db
# table's keys are read: small enough that memory does not grow with the number of keys.
BATCH = 1000
# The COUNT of each SCAN step: a bound on how long each one blocks Redis. Each step waits for
# the one before (its cursor), so each costs a round trip: a million keys beside the live load,
# 1,000 cleared as fast as 5,000 (8.3-9.0 s against 8.3-9.7 s) with the site's worst wait 30-47
# ms against 80-107 ms; through a link of 1 ms round trips, 5.7 s against 18.1 s for 250.
SCAN_COUNT = 1000
# Names per UNLINK on redis_wire's connection, which sends them without waiting for replies.
# Redis reads a client's commands 16 KB at a time and runs each whole command in what it has read
# before it serves another client: at about 70 bytes a name, an UNLINK of 1,000 names held every
# other client for all 1,000, one of 250 (about 17 KB) for at most 250.
UNLINK_NAMES = 250

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

# Picks the names to keep from one SCAN reply (a list of bytes, or of text).
Select = Callable[[list[Any]], list[Any]]


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
        self.run = self._run(before.encode(), after.encode())

    @staticmethod
    def _run(before: bytes, after: bytes) -> re.Pattern[bytes] | None:
        """RESP bulk strings in a row, each one of these names, at most UNLINK_NAMES of them:
        the part of a SCAN reply read as bytes (`redis_wire`) that can go into an UNLINK as it
        is. None where the name's fixed parts hold a line break, which `redis_wire` counts the
        names by."""
        if any(char in before + after for char in (b"\r", b"\n")):
            return None
        key_char = b"[" + b"".join(re.escape(bytes([char])) for char in KEY_CHARS.encode()) + b"]"
        names = (
            b"\\$%d\r\n%s%s{%d}%s\r\n"
            % (
                len(before) + length + len(after),
                re.escape(before),
                key_char,
                length,
                re.escape(after),
            )
            for length in SESSION_KEY_LENGTHS
        )
        return re.compile(b"(?:" + b"|".join(names) + b"){0,%d}" % UNLINK_NAMES)

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

    def select(self, names: list[Any]) -> list[Any]:
        """The names in `names` that are these names: `matches()` for one SCAN reply, whose
        names are all bytes or all text, at a fraction of the cost per name."""
        if not names:
            return []
        fullmatch = self._bytes if isinstance(names[0], bytes) else self._text
        return list(filter(fullmatch, names))

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


def pages(client: Any, pattern: str, select: Select | None = None) -> Iterator[list[Any]]:
    """The keys each SCAN step finds for `pattern`, those `select` keeps if given."""
    cursor = 0
    while True:
        cursor, found = client.scan(cursor, match=pattern, count=SCAN_COUNT)
        yield list(found) if select is None else select(found)
        if not int(cursor):
            return


def scan(client: Any, pattern: str, select: Select | None = None) -> Iterator[Any]:
    """The keys SCAN finds for `pattern`, those `select` keeps if given."""
    return chain.from_iterable(pages(client, pattern, select))


def count_matching(client: Any, pattern: str, select: Select | None = None) -> int:
    return sum(len(found) for found in pages(client, pattern, select))


def unlink_matching(
    client: Any,
    pattern: str,
    progress: Progress | None = None,
    keys: SessionKeys | None = None,
) -> int:
    """SCAN for `pattern` and UNLINK what it finds (only `keys`' names, if given), a SCAN step at
    a time, calling `progress` with the running total after each UNLINK; returns the count. The
    running total is what is gone: when Redis fails, the UNLINKs under way are counted by the
    names of theirs that no longer exist, where Redis still answers.

    On a connection of its own, read as bytes (`redis_wire`), where the client's pool can make
    one; else through the client, UNLINK_NAMES keys at a time."""

    def report(removed: int) -> None:
        if progress is not None:
            progress(removed, None)

    from release.clearing import redis_wire  # redis-py is installed where there is a client

    def settle(unlinks: list[redis_wire.Unlink]) -> int:
        with redis_wire.connection(client) as again:
            return 0 if again is None else redis_wire.gone(again, unlinks)

    with redis_wire.connection(client) as wire:
        if wire is not None:
            return redis_wire.unlink_scanned(
                wire,
                pattern,
                SCAN_COUNT,
                UNLINK_NAMES,
                None if keys is None else keys.run,
                None if keys is None else keys.matches,
                report,
                settle,
            )
    removed = 0
    selected = scan(client, pattern, None if keys is None else keys.select)
    for found in batched(selected, UNLINK_NAMES):
        removed += client.unlink(*found)
        report(removed)
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
