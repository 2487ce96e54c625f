"""SCAN and UNLINK written and read as bytes on a connection of the client's own making.

redis-py turns each key of a SCAN reply into a Python object and packs each key of an UNLINK
again, which at a million keys costs the release more time than Redis spends on them. Here the
connection is still redis-py's (its host, TLS, password and database, from the client's pool), but
each reply is read as bytes: the session keys in it are picked out by one regular expression over
the reply and sent back in the UNLINK as they came, and a key that is not a session key's is only
read past. A RESP3 push that arrives between the replies (an invalidation, a maintenance notice)
is read past.
"""

from __future__ import annotations

import re
import socket
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from inspect import signature
from typing import Any, NamedTuple

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What one recv() may take: a SCAN reply of a thousand keys is about 60 KB.
RECEIVE_BYTES = 1 << 20

# How long the clear waits for Redis where the client sets no socket_timeout (redis-py's
# default is to wait for ever): each reply comes within milliseconds, so a connection silent
# this long is lost (a failover, a network that drops packets), and a release phase that hung
# on it would hold the deploy up for Heroku's hour.
SILENCE_SECONDS = 60.0

Progress = Callable[[int], None]


def command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
    )


def silent(seconds: float) -> RedisConnectionError:
    return RedisConnectionError(f"Redis did not answer in {seconds:g} s.")


def head_of(name: bytes, count: int) -> bytes:
    """The start of command `name` with `count` arguments, which follow as RESP bulk strings."""
    return b"*%d\r\n$%d\r\n%s\r\n" % (count + 1, len(name), name)


class Wire:
    """The socket of one connection: commands written whole, replies read from a buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = bytearray()
        self.at = 0  # how far into `received` the reply being read has been read

    def send(self, *commands: bytes) -> None:
        try:
            self.sock.sendall(b"".join(commands))
        except OSError as error:
            raise RedisConnectionError(f"Error while writing to Redis: {error}.") from error

    def _receive(self) -> None:
        try:
            chunk = self.sock.recv(RECEIVE_BYTES)
        except TimeoutError as error:
            raise silent(self.sock.gettimeout() or 0) from error
        except OSError as error:
            raise RedisConnectionError(f"Error while reading from Redis: {error}.") from error
        if not chunk:
            raise RedisConnectionError("Redis closed the connection.")
        self.received += chunk

    def _line(self) -> bytes:
        while (end := self.received.find(b"\r\n", self.at)) < 0:
            self._receive()
        line = bytes(self.received[self.at : end])
        self.at = end + 2
        return line

    def _wait_for(self, end: int) -> None:
        while len(self.received) < end:
            self._receive()

    def _skip(self, values: int) -> None:
        """Read past `values` RESP values of any type."""
        for _ in range(values):
            line = self._line()
            kind = line[:1]
            if kind in (b"$", b"=", b"!") and line != b"$-1":
                end = self.at + _size(line, "a push") + 2
                self._wait_for(end)
                self.at = end
            elif kind in (b"*", b"~", b">"):
                self._skip(_size(line, "a push"))
            elif kind in (b"%", b"|"):
                self._skip(2 * _size(line, "a push"))

    def _header(self, kind: bytes, command: str) -> int:
        line = self._line()
        # RESP3 can send a push (an invalidation, a maintenance notice) between replies, and
        # attributes before one: neither is the reply.
        while line[:1] in (b">", b"|"):
            self._skip(_size(line, command) * (2 if line[:1] == b"|" else 1))
            line = self._line()
        if line[:1] == b"-":
            raise ResponseError(line[1:].decode(errors="replace"))
        if line[:1] != kind:
            raise _unexpected(line, command)
        return _size(line, command)

    def _bulk(self, command: str) -> bytes:
        length = self._header(b"$", command)
        start, end = self.at, self.at + length
        self._wait_for(end + 2)
        self.at = end + 2
        return bytes(self.received[start:end])

    def _done(self) -> None:
        del self.received[: self.at]
        self.at = 0

    def integer(self, command: str) -> int:
        value = self._header(b":", command)
        self._done()
        return value

    def scan_cursor(self) -> tuple[bytes, int]:
        """The start of a SCAN reply: the next cursor, and how many names follow it."""
        if self._header(b"*", "SCAN") != 2:
            raise InvalidResponse("Redis answered SCAN with other than a cursor and names.")
        cursor = self._bulk("SCAN")
        return cursor, self._header(b"*", "SCAN")

    def scan_names(
        self, left: int, run: re.Pattern[bytes] | None, keep: Callable[[bytes], object] | None
    ) -> list[Names]:
        """The rest of a SCAN reply, its `left` names: those kept, as runs of RESP bulk strings
        (ready to follow an UNLINK's header) with how many names each holds. `run` matches bulk
        strings in a row that are all to be kept, so that most of a reply is taken in a few
        matches; the rest is read a name at a time and kept when `keep` says so (or always,
        without it)."""
        kept: list[Names] = []
        while left > 0:
            if run is not None:
                taken = run.match(self.received, self.at)
                if taken is not None and taken.end() > self.at:
                    names = self.received[self.at : taken.end()]
                    # A name here has no line break in it: two per bulk string.
                    many = names.count(b"\r\n") // 2
                    if many > left:
                        raise InvalidResponse("Redis answered SCAN with more names than it said.")
                    kept.append(Names(bytes(names), many))
                    left -= many
                    self.at = taken.end()
                    continue
            # Not yet all received, or not a name to keep.
            name = self._bulk("SCAN")
            left -= 1
            if keep is None or keep(name):
                kept.append(Names(b"$%d\r\n%s\r\n" % (len(name), name), 1))
        self._done()
        return kept


def _size(line: bytes, command: str) -> int:
    """The count or length a RESP header line gives."""
    try:
        size = int(line[1:])
    except ValueError:
        raise _unexpected(line, command) from None
    if size < 0:
        raise _unexpected(line, command)
    return size


def _unexpected(line: bytes, command: str) -> InvalidResponse:
    return InvalidResponse(
        f"Redis answered {command} with {line[:80]!r}, which is not a reply to {command}; the "
        "connection was closed. Run the release again."
    )


@contextmanager
def connection(client: Any) -> Iterator[Wire | None]:
    """A Wire on a connection from `client`'s pool, closed after (so that the pool never hands
    out a connection that was read past its own parser); None where the client has no such
    pool (a cluster client, say) or the connection no socket of its own (client-side caching)."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        yield None
        return
    # redis-py 5 asks for the command's name, later versions warn when given one.
    named = signature(pool.get_connection).parameters.get("command_name")
    asks_name = named is not None and named.default is named.empty
    made = pool.get_connection("SCAN") if asks_name else pool.get_connection()
    own_timeout = getattr(made, "socket_timeout", None)
    try:
        if own_timeout is None:
            made.socket_timeout = SILENCE_SECONDS  # for its handshake and its socket
        # Connected afresh: redis-py's parser may already hold bytes it read from the socket.
        made.disconnect()
        try:
            made.connect()
        except RedisTimeoutError as error:
            raise silent(made.socket_timeout) from error
        sock = getattr(made, "_sock", None)
        yield Wire(sock) if isinstance(sock, socket.socket) else None
    finally:
        try:
            made.disconnect()
        finally:
            made.socket_timeout = own_timeout
            pool.release(made)


class Names(NamedTuple):
    """Names in a row, as the RESP bulk strings they came as, and how many."""

    bulk: bytes
    many: int


class Unlink(NamedTuple):
    """An UNLINK sent: its names, as the RESP bulk strings they went as, and how many."""

    names: list[bytes]
    found: int


def unlinks(kept: list[Names], most: int) -> Iterator[Unlink]:
    """The names of `kept`, in order, as UNLINKs of at most `most` names each; a run of more
    than `most` names (a `run` pattern that is not bounded) goes as one UNLINK of its own."""
    names: list[bytes] = []
    found = 0
    for bulk, many in kept:
        if names and found + many > most:
            yield Unlink(names, found)
            names, found = [], 0
        names.append(bulk)
        found += many
    if names:
        yield Unlink(names, found)


def unlink_scanned(
    wire: Wire,
    pattern: str,
    count: int,
    most: int,
    run: re.Pattern[bytes] | None,
    keep: Callable[[bytes], object] | None,
    progress: Progress,
    settle: Callable[[list[Unlink]], int],
) -> int:
    """SCAN for `pattern`, `count` at a time, and UNLINK what each reply holds that `run` or
    `keep` keeps, at most `most` names an UNLINK (`run` should match no more in a row); returns
    how many were removed, calling `progress` with the running total after each UNLINK's reply.

    Redis is never left waiting for this process: the next SCAN goes out as soon as a reply's
    cursor is read, before its names, and each UNLINK as soon as its names are; the replies are
    read in the order the commands went. When the connection fails with UNLINKs under way,
    `settle` tells how many of their names are gone (`gone()`, on a new connection), and
    `progress` hears the total before the error is raised."""

    def scan(cursor: bytes) -> bytes:
        return command(b"SCAN", cursor, b"MATCH", pattern.encode(), b"COUNT", b"%d" % count)

    removed = 0
    # The replies to come, in the order of the commands: None for a SCAN's, else the UNLINK's.
    to_come: deque[Unlink | None] = deque([None])
    try:
        wire.send(scan(b"0"))
        while to_come:
            # Under way until its reply is read.
            if to_come[0] is not None:
                removed += wire.integer("UNLINK")
                to_come.popleft()
                progress(removed)
                continue
            to_come.popleft()
            cursor, left = wire.scan_cursor()
            if cursor != b"0":
                wire.send(scan(cursor))
                to_come.append(None)
            sending: list[bytes] = []
            for unlink in unlinks(wire.scan_names(left, run, keep), most):
                to_come.append(unlink)
                sending += [head_of(b"UNLINK", unlink.found), *unlink.names]
            if sending:
                wire.send(*sending)
    except RedisError:
        under_way = [unlink for unlink in to_come if unlink is not None]
        if under_way:
            with suppress(RedisError):
                if settled := settle(under_way):
                    progress(removed + settled)
        raise
    return removed


def gone(wire: Wire, unlinks: list[Unlink]) -> int:
    """How many of the names of `unlinks` no longer exist."""
    missing = 0
    for unlink in unlinks:
        wire.send(head_of(b"EXISTS", unlink.found), *unlink.names)
        missing += unlink.found - wire.integer("EXISTS")
    return missing
