"""SCAN and UNLINK read as bytes (`release.clearing.redis_wire`): against real Redis, with RESP3
pushes arriving between the replies, an ACL that refuses UNLINK, and a client without a pool;
and against a peer that sends replies no Redis would, a few bytes at a time."""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import caches
from pytest_django.fixtures import Settings

from release.clearing import clearer_for, redis_wire
from release.clearing import keys as cache_keys
from release.clearing.cache import CacheSessions
from tests.conftest import CACHE, ROOT, needs_redis

PREFIX = "django.contrib.sessions.cache"


def key(length: int = cache_keys.DJANGO_KEY_LENGTH) -> str:
    return secrets.token_hex(length)[:length]


# A peer that answers with bytes of the test's choosing.


@pytest.fixture
def peer() -> Iterator[tuple[redis_wire.Wire, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield redis_wire.Wire(ours), theirs
    ours.close()
    theirs.close()


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def scan_reply(cursor: bytes, *names: bytes) -> bytes:
    return b"*2\r\n" + bulk(cursor) + b"*%d\r\n" % len(names) + b"".join(map(bulk, names))


def read_scan(
    wire: redis_wire.Wire, run: re.Pattern[bytes] | None, keep: Callable[[bytes], object] | None
) -> tuple[bytes, list[bytes], int]:
    """The cursor, the kept runs' bulk strings, and how many names they hold."""
    cursor, left = wire.scan_cursor()
    kept = wire.scan_names(left, run, keep)
    assert all(names.bulk.count(b"\r\n") == 2 * names.many for names in kept if run is not None)
    return cursor, [names.bulk for names in kept], sum(names.many for names in kept)


@pytest.mark.parametrize("receive", [1, 3, 7, 64, 1 << 20])
def test_a_reply_read_a_few_bytes_at_a_time(
    peer: tuple[redis_wire.Wire, socket.socket], monkeypatch: pytest.MonkeyPatch, receive: int
) -> None:
    """Session keys (both lengths) taken in runs, the others read past; whatever the reads
    split, and with a push and attributes before the reply."""
    wire, theirs = peer
    names = SessionKeysOf(":1:")
    sessions = [f":1:{PREFIX}{key(length)}".encode() for length in (32, 40, 32, 32, 40)]
    others = [b":1:" + PREFIX.encode() + b"_stats", b":1:" + PREFIX.encode() + b"\r\n" + b"x" * 30]
    reply = scan_reply(b"1234", sessions[0], sessions[1], others[0], *sessions[2:4], others[1])
    push = b">3\r\n$10\r\ninvalidate\r\n*2\r\n$1\r\na\r\n$-1\r\n%1\r\n+k\r\n:1\r\n"
    attributes = b"|1\r\n+key\r\n=7\r\ntxt:abc\r\n"
    theirs.sendall(push + attributes + reply + scan_reply(b"0", sessions[4]))
    monkeypatch.setattr(redis_wire, "RECEIVE_BYTES", receive)

    cursor, kept, count = read_scan(wire, names.run, names.matches)
    assert cursor == b"1234"
    assert count == 4
    assert b"".join(kept) == b"".join(map(bulk, sessions[:4]))
    assert read_scan(wire, names.run, names.matches) == (b"0", [bulk(sessions[4])], 1)
    assert wire.received == bytearray()


@pytest.mark.parametrize("receive", [1, 5, 1 << 20])
def test_every_name_kept_without_a_filter(
    peer: tuple[redis_wire.Wire, socket.socket], monkeypatch: pytest.MonkeyPatch, receive: int
) -> None:
    wire, theirs = peer
    monkeypatch.setattr(redis_wire, "RECEIVE_BYTES", receive)
    names = [b"a", b"", b"line\r\nbreak", b"\x00\xff"]
    theirs.sendall(scan_reply(b"0", *names) + b":4\r\n")

    assert read_scan(wire, None, None) == (b"0", [bulk(name) for name in names], 4)
    assert wire.integer("UNLINK") == 4


def test_an_error_reply_is_raised_as_redis_py_would(
    peer: tuple[redis_wire.Wire, socket.socket],
) -> None:
    wire, theirs = peer
    theirs.sendall(b"-NOPERM this user has no permissions to run the 'unlink' command\r\n")

    with pytest.raises(redis.ResponseError, match=r"^NOPERM this user has no permissions"):
        wire.integer("UNLINK")


SESSION = bulk(f":1:{PREFIX}{key()}".encode())


@pytest.mark.parametrize(
    "reply",
    [
        b"+OK\r\n",
        b"*3\r\n$1\r\n0\r\n*0\r\n:1\r\n",
        b"*2\r\n:0\r\n*0\r\n",
        b"*2\r\n$1\r\n0\r\n*one\r\n",
        b"*2\r\n$1\r\n0\r\n*-1\r\n",
        b"*2\r\n$1\r\n0\r\n*1\r\n" + SESSION + SESSION,
    ],
    ids=[
        "a status",
        "three parts",
        "an integer cursor",
        "a count that is no number",
        "a negative count",
        "more names than it said",
    ],
)
def test_a_reply_no_redis_sends_to_scan(
    peer: tuple[redis_wire.Wire, socket.socket], reply: bytes
) -> None:
    wire, theirs = peer
    theirs.sendall(reply)
    names = SessionKeysOf(":1:")

    with pytest.raises(redis.exceptions.InvalidResponse, match="SCAN"):
        read_scan(wire, names.run, names.matches)


def test_the_peer_closes_the_connection_mid_reply(
    peer: tuple[redis_wire.Wire, socket.socket],
) -> None:
    wire, theirs = peer
    theirs.sendall(scan_reply(b"0", b"abc")[:-4])
    theirs.close()

    with pytest.raises(redis.ConnectionError, match=r"^Redis closed the connection\.$"):
        read_scan(wire, None, None)


def test_reading_and_writing_fail_as_redis_py_errors(
    peer: tuple[redis_wire.Wire, socket.socket],
) -> None:
    wire, theirs = peer
    wire.sock.settimeout(0.05)
    with pytest.raises(redis.ConnectionError, match=r"^Redis did not answer in 0\.05 s\.$"):
        wire.integer("UNLINK")
    theirs.close()
    wire.sock.close()
    with pytest.raises(redis.ConnectionError, match=r"^Error while reading from Redis: "):
        wire.integer("UNLINK")
    with pytest.raises(redis.ConnectionError, match=r"^Error while writing to Redis: "):
        wire.send(redis_wire.command(b"PING"))


def sent(theirs: socket.socket) -> bytes:
    theirs.settimeout(0.5)
    received = b""
    while True:
        try:
            chunk = theirs.recv(1 << 16)
        except TimeoutError:
            return received
        if not chunk:
            return received
        received += chunk


def not_settled(unlinks: list[redis_wire.Unlink]) -> int:
    raise AssertionError(f"nothing to settle, yet asked for {unlinks!r}")


def test_the_next_scan_goes_before_the_names_are_read_and_redis_counts(
    peer: tuple[redis_wire.Wire, socket.socket],
) -> None:
    """The replies are scripted: two SCAN steps, a push between them, and Redis saying it
    removed 3 of the 4 names of the first UNLINK (one expired meanwhile). The SCAN of the next
    cursor went out before the UNLINK of the first step's names."""
    wire, theirs = peer
    names = SessionKeysOf(":1:")
    first = [f":1:{PREFIX}{key(length)}".encode() for length in (32, 40, 32, 40)]
    second = f":1:{PREFIX}{key()}".encode()
    other = f":1:{PREFIX}_stats".encode()
    theirs.sendall(
        scan_reply(b"17", *first[:2], other, *first[2:])
        + b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nabc\r\n"
        + scan_reply(b"0", second)
        + b":3\r\n"
        + b":1\r\n"
    )
    calls: list[int] = []

    removed = redis_wire.unlink_scanned(
        wire, ":1:*", 1000, 250, names.run, names.matches, calls.append, not_settled
    )

    assert removed == 4
    assert calls == [3, 4]
    scan = (b"SCAN", b"MATCH", b":1:*", b"COUNT", b"1000")
    assert sent(theirs) == (
        redis_wire.command(scan[0], b"0", *scan[1:])
        + redis_wire.command(scan[0], b"17", *scan[1:])
        + redis_wire.command(b"UNLINK", *first)
        + redis_wire.command(b"UNLINK", second)
    )


@hypothesis.given(
    runs=st.lists(st.integers(min_value=1, max_value=12), max_size=30),
    most=st.integers(min_value=1, max_value=10),
)
def test_unlinks_keep_every_name_in_order_and_at_most_most_each(runs: list[int], most: int) -> None:
    """Runs of names grouped into UNLINKs: every name once, in order; no UNLINK over `most`
    but a single run longer than it; and no two neighbours that would fit in one."""
    kept = [
        redis_wire.Names(b"".join(bulk(b"%d.%d" % (i, j)) for j in range(many)), many)
        for i, many in enumerate(runs)
    ]

    unlinks = list(redis_wire.unlinks(kept, most))

    assert b"".join(b"".join(u.names) for u in unlinks) == b"".join(n.bulk for n in kept)
    assert [u.found for u in unlinks if u.found] == [u.found for u in unlinks]
    assert sum(u.found for u in unlinks) == sum(runs)
    for unlink in unlinks:
        assert unlink.found == sum(bulk_.count(b"\r\n") // 2 for bulk_ in unlink.names)
        assert unlink.found <= most or len(unlink.names) == 1
    for first, then in pairwise(unlinks):
        assert first.found + then.names[0].count(b"\r\n") // 2 > most


def test_a_step_that_finds_nothing_sends_no_unlink(
    peer: tuple[redis_wire.Wire, socket.socket],
) -> None:
    wire, theirs = peer
    theirs.sendall(scan_reply(b"5", b"not-a-session") + scan_reply(b"0"))
    names = SessionKeysOf(":1:")

    calls: list[int] = []

    removed = redis_wire.unlink_scanned(
        wire, "*", 10, 250, names.run, names.matches, calls.append, not_settled
    )

    assert removed == 0
    assert calls == []
    assert sent(theirs) == redis_wire.command(
        b"SCAN", b"0", b"MATCH", b"*", b"COUNT", b"10"
    ) + redis_wire.command(b"SCAN", b"5", b"MATCH", b"*", b"COUNT", b"10")


@pytest.mark.parametrize(
    ("gone", "counted"), [(0, [1]), (1, [1, 2]), (None, [1])], ids=["kept", "gone", "unknown"]
)
def test_an_error_with_an_unlink_under_way_is_settled(
    peer: tuple[redis_wire.Wire, socket.socket], gone: int | None, counted: list[int]
) -> None:
    """The second UNLINK fails: its names are asked after (here: still there, gone, or Redis
    cannot say), and the total heard before the error is raised."""
    wire, theirs = peer
    names = SessionKeysOf(":1:")
    second = f":1:{PREFIX}{key()}".encode()
    theirs.sendall(
        scan_reply(b"9", f":1:{PREFIX}{key()}".encode())
        + scan_reply(b"0", second)
        + b":1\r\n"
        + b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    )
    calls: list[int] = []
    asked: list[list[redis_wire.Unlink]] = []

    def settle(unlinks: list[redis_wire.Unlink]) -> int:
        asked.append(unlinks)
        if gone is None:
            raise redis.ConnectionError("Redis went away")
        return gone

    with pytest.raises(redis.ResponseError, match=r"^OOM command not allowed"):
        redis_wire.unlink_scanned(
            wire, "*", 10, 250, names.run, names.matches, calls.append, settle
        )

    assert calls == counted
    assert asked == [[redis_wire.Unlink([bulk(second)], 1)]]


def test_no_settling_without_an_unlink_under_way(
    peer: tuple[redis_wire.Wire, socket.socket],
) -> None:
    wire, theirs = peer
    theirs.sendall(b"-LOADING Redis is loading the dataset in memory\r\n")

    calls: list[int] = []

    with pytest.raises(redis.ResponseError, match=r"^LOADING"):
        redis_wire.unlink_scanned(wire, "*", 10, 250, None, None, calls.append, not_settled)

    assert calls == []


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    names=st.lists(
        st.one_of(
            st.sampled_from([32, 40]).map(lambda length: f":1:{PREFIX}{key(length)}".encode()),
            st.sampled_from([31, 33, 39, 41]).map(
                lambda length: f":1:{PREFIX}{key(length)}".encode()
            ),
            st.binary(max_size=60),
            st.binary(max_size=20).map(lambda tail: f":1:{PREFIX}".encode() + tail),
        ),
        max_size=40,
    ),
    pushes=st.integers(min_value=0, max_value=2),
    receive=st.integers(min_value=1, max_value=200),
)
def test_what_a_reply_keeps_is_what_matches_keeps(
    names: list[bytes], pushes: int, receive: int
) -> None:
    """Any names, a few bytes at a time, after pushes: exactly the session keys are kept, in
    order, as the bulk strings they came as."""
    session_keys = SessionKeysOf(":1:")
    ours, theirs = socket.socketpair()
    try:
        push = b">2\r\n$10\r\ninvalidate\r\n*1\r\n" + bulk(f":1:{PREFIX}{key()}".encode())
        theirs.sendall(push * pushes + scan_reply(b"0", *names))
        with pytest.MonkeyPatch.context() as patched:
            patched.setattr(redis_wire, "RECEIVE_BYTES", receive)
            wire = redis_wire.Wire(ours)
            cursor, kept, count = read_scan(wire, session_keys.run, session_keys.matches)
    finally:
        ours.close()
        theirs.close()

    expected = [name for name in names if session_keys.matches(name)]
    assert cursor == b"0"
    assert count == len(expected)
    assert b"".join(kept) == b"".join(map(bulk, expected))


def test_the_commands_written() -> None:
    assert redis_wire.command(b"SCAN", b"0", b"MATCH", b"a*") == (
        b"*4\r\n$4\r\nSCAN\r\n$1\r\n0\r\n$5\r\nMATCH\r\n$2\r\na*\r\n"
    )


class SessionKeysOf(cache_keys.SessionKeys):
    """The cache engine's session keys under a cache key's fixed beginning."""

    def __init__(self, before: str, after: str = "") -> None:
        super().__init__(before + PREFIX, after)


def test_no_run_where_the_name_holds_a_line_break() -> None:
    assert SessionKeysOf(":1:").run is not None
    assert SessionKeysOf("a\r\n:1:").run is None
    assert SessionKeysOf(":1:", "\n").run is None


# Real Redis.


def redis_url() -> str:
    url = getattr(django_settings, "REDIS_URL", None)
    if not url:
        pytest.skip("REDIS_URL is not set")
    return str(url)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(redis_url())
    yield made
    made.close()


@pytest.fixture
def tag(client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is gone afterwards."""
    made = f"wire{secrets.token_hex(4)}:"
    yield made
    names = list(client.scan_iter(match=f"{made}*", count=1000))
    if names:
        client.unlink(*names)


def seed(client: redis.Redis, tag: str, sessions: int, others: int) -> SessionKeysOf:
    with client.pipeline(transaction=False) as pipe:
        for number in range(sessions):
            pipe.set(f"{tag}{PREFIX}{key(40 if number % 3 else 32)}", b"s")
        for number in range(others):
            pipe.set(f"{tag}{PREFIX}other{number}", b"o")
        pipe.execute()
    return SessionKeysOf(tag)


def left(client: redis.Redis, tag: str) -> int:
    return sum(1 for _ in client.scan_iter(match=f"{tag}*", count=1000))


@needs_redis
def test_resp3_pushes_between_the_replies(
    client: redis.Redis, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client on RESP3 whose connections track every key (CLIENT TRACKING ON BCAST): each
    UNLINK makes Redis push invalidations to the clear's own connection, between its replies."""

    def tracking(connection: Any) -> None:
        connection.on_connect()
        connection.send_command("CLIENT", "TRACKING", "ON", "BCAST")
        assert connection.read_response() in (b"OK", "OK")

    resp3 = redis.Redis.from_url(redis_url(), protocol=3, redis_connect_func=tracking)
    names = seed(client, tag, 3 * cache_keys.BATCH, 500)
    skipped: list[int] = []
    skip = redis_wire.Wire._skip

    def counted(wire: redis_wire.Wire, values: int) -> None:
        skipped.append(values)
        skip(wire, values)

    monkeypatch.setattr(redis_wire.Wire, "_skip", counted)

    removed = cache_keys.unlink_matching(resp3, names.pattern, keys=names)

    resp3.close()
    assert removed == 3 * cache_keys.BATCH
    assert skipped, "Redis pushed invalidations"
    assert left(client, tag) == 500


@needs_redis
def test_an_acl_that_refuses_unlink(client: redis.Redis, tag: str) -> None:
    user, password = f"release-{secrets.token_hex(4)}", secrets.token_hex(8)
    client.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all", "-unlink"]
    )
    names = seed(client, tag, 10, 0)
    refused = redis.Redis.from_url(redis_url(), username=user, password=password)
    try:
        with pytest.raises(redis.ResponseError, match="NOPERM"):
            cache_keys.unlink_matching(refused, names.pattern, keys=names)
        # The connection that failed went back to the pool closed: the next one answers.
        assert refused.ping() is True
        assert refused.exists(f"{tag}{PREFIX}x") == 0
    finally:
        refused.close()
        client.acl_deluser(user)
    assert left(client, tag) == 10


@needs_redis
@pytest.mark.parametrize("without_pool", [False, True], ids=["on the wire", "through the client"])
def test_no_unlink_holds_redis_for_more_than_unlink_names(
    client: redis.Redis, tag: str, without_pool: bool
) -> None:
    """What Redis runs (MONITOR): UNLINKs of at most UNLINK_NAMES names, which together are
    every session key once. Redis runs each whole command in the 16 KB it reads of a client at a
    time before it serves another, so the size of an UNLINK is how long the site waits."""
    names = seed(client, tag, 4 * cache_keys.UNLINK_NAMES + 30, 20)
    ran: list[list[str]] = []
    stop = f"stop-{tag}"
    monitoring = threading.Event()

    def monitor() -> None:
        with client.monitor() as commands:  # type: ignore[no-untyped-call]
            monitoring.set()
            for command in commands.listen():
                words = command["command"].split(" ")
                if words[0] == "ECHO" and words[1:] == [stop]:
                    return
                if words[0] == "UNLINK" and words[1].startswith(tag):
                    ran.append(words[1:])

    watcher = threading.Thread(target=monitor)
    watcher.start()
    assert monitoring.wait(10)
    time.sleep(0.2)  # MONITOR answered before the clear begins
    removed = cache_keys.unlink_matching(
        WithoutPool(client) if without_pool else client, names.pattern, keys=names
    )
    redis.Redis.from_url(redis_url()).echo(stop)
    watcher.join(10)

    assert cache_keys.UNLINK_NAMES == 250
    assert removed == 4 * cache_keys.UNLINK_NAMES + 30
    assert all(0 < len(unlinked) <= cache_keys.UNLINK_NAMES for unlinked in ran)
    unlinked = [name for command in ran for name in command]
    assert len(unlinked) == len(set(unlinked)) == removed
    assert all(names.matches(name) for name in unlinked)
    assert left(client, tag) == 20


class WithoutPool:
    """A client that has no pool of connections to make one from (as a cluster client)."""

    def __init__(self, client: redis.Redis) -> None:
        self.scan = client.scan
        self.unlink = client.unlink


@needs_redis
@pytest.mark.parametrize(
    ("without_pool", "line_break"),
    [(True, ""), (False, "\r\n")],
    ids=["through the client", "a name at a time"],
)
def test_through_the_client_or_a_name_at_a_time(
    client: redis.Redis, tag: str, without_pool: bool, line_break: str
) -> None:
    """Without a pool, through redis-py's client; with a line break in the names' fixed part,
    a name at a time on the wire. Either way exactly the session keys go, with progress after
    each UNLINK."""
    names = seed(client, tag + line_break, 2 * cache_keys.BATCH + 7, 300)
    calls: list[int] = []

    removed = cache_keys.unlink_matching(
        WithoutPool(client) if without_pool else client,
        names.pattern,
        progress=lambda removed, total: calls.append(removed),
        keys=names,
    )

    assert removed == calls[-1] == 2 * cache_keys.BATCH + 7
    assert len(calls) >= 3
    assert left(client, tag) == 300


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server of this module's own that speaks only TLS, with a self-signed certificate
    and a password, as Heroku Key-Value Store does; its rediss:// URL."""
    server, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if not (server and openssl):
        pytest.skip("redis-server and openssl are needed for a TLS Redis")
    folder = tmp_path_factory.mktemp("tls-redis")
    cert, private_key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(private_key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = secrets.token_hex(8)
    process = subprocess.Popen(
        [
            *(server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", str(cert), "--tls-key-file", str(private_key)),
            *("--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"),
            *("--requirepass", password, "--save", "", "--appendonly", "no", "--dir", str(folder)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"rediss://:{password}@127.0.0.1:{port}/0"
    probe_client = redis.Redis.from_url(url, ssl_cert_reqs=None)
    try:
        for _ in range(100):
            try:
                probe_client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail(f"The TLS Redis on port {port} did not start.")
        yield url
    finally:
        probe_client.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.django_db
def test_the_cache_engine_over_tls(tls_redis: str, settings: Settings, installed: None) -> None:
    """Django's RedisCache on a rediss:// URL, configured as the example project configures it
    for Heroku: the session keys go over TLS, and every other key stays."""
    settings.CACHES = {
        **settings.CACHES,
        "tls": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": tls_redis,
            "OPTIONS": {"ssl_cert_reqs": None},
        },
    }
    settings.SESSION_CACHE_ALIAS = "tls"
    settings.RELEASE_SESSION_ENGINE = CACHE
    cache = caches["tls"]
    count = 2 * cache_keys.BATCH + 1
    cache.set_many({f"{PREFIX}{key(40 if number % 2 else 32)}": {} for number in range(count)})
    cache.set_many({f"other{number}": number for number in range(100)})
    store = clearer_for()
    assert isinstance(store, CacheSessions)
    wires: list[redis_wire.Wire] = []
    made = redis_wire.Wire.__init__

    def kept(wire: redis_wire.Wire, sock: socket.socket) -> None:
        made(wire, sock)
        wires.append(wire)

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(redis_wire.Wire, "__init__", kept)
        cleared = store.clear(lambda removed, total: None)

    assert [type(wire.sock) for wire in wires] == [ssl.SSLSocket]

    assert cleared.removed == count
    assert store.count() == 0
    assert cache.get_many([f"other{number}" for number in range(100)]) == {
        f"other{number}": number for number in range(100)
    }


@needs_redis
@pytest.mark.parametrize(
    ("socket_timeout", "waited"), [(None, 0.3), (0.4, 0.4)], ids=["redis-py's default", "own"]
)
def test_redis_that_stops_answering(
    client: redis.Redis,
    tag: str,
    monkeypatch: pytest.MonkeyPatch,
    socket_timeout: float | None,
    waited: float,
) -> None:
    """Redis paused (as in a failover): the clear gives up after the client's own socket_timeout,
    or SILENCE_SECONDS where the client sets none, instead of holding the release phase up."""
    monkeypatch.setattr(redis_wire, "SILENCE_SECONDS", 0.3)
    names = seed(client, tag, 10, 0)
    paused = redis.Redis.from_url(redis_url(), socket_timeout=socket_timeout)
    paused.ping()  # connected before the pause
    client.client_pause(3000, all=True)
    started = time.monotonic()
    try:
        with pytest.raises(redis.ConnectionError, match=f"Redis did not answer in {waited:g} s"):
            cache_keys.unlink_matching(paused, names.pattern, keys=names)
        gave_up_after = time.monotonic() - started
    finally:
        paused.close()
    assert waited <= gave_up_after < 2.9, "before the pause ended"
    assert left(client, tag) == 10


def test_the_readme_gives_the_wait_for_a_silent_redis() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"or {redis_wire.SILENCE_SECONDS:g} s where it sets none" in readme
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"Redis did not answer in {redis_wire.SILENCE_SECONDS:g} s." in changelog
