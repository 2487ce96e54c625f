"""A memcached server of the tests' own: Debian's `memcached` on a free port of 127.0.0.1, started
for the test session and stopped at its end. Without the `memcached` program or the pymemcache
client (tests/requirements-memcached.txt), the tests that need it are skipped."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import pytest
from django.core.cache import BaseCache, caches
from pytest_django.fixtures import Settings

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
ALIAS = "memcached"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as conn:
        conn.sendall(b"version\r\n")
        return conn.recv(64).startswith(b"VERSION ")
    return False


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[str]:
    """`host:port` of a memcached started for this test session."""
    program = shutil.which("memcached")
    if program is None:
        pytest.skip("memcached is not installed (apt-get install memcached)")
    if find_spec("pymemcache") is None:
        pytest.skip("pymemcache is not installed (pip install -r tests/requirements-memcached.txt)")
    port = free_port()
    # -U 0: no UDP. As root, memcached needs a user to run as.
    command = [program, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-t", "2"]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not answers(port):
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"memcached exited {process.returncode}: {output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"memcached did not answer on port {port}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
        if process.stdout:
            process.stdout.close()


@dataclass
class Memcached:
    """The session cache on the server, and a client of its own that reads the raw keys."""

    cache: BaseCache
    client: Any  # pymemcache.Client

    def has(self, key: str) -> bool:
        """Whether memcached holds the item Django keeps under `key` (KEY_PREFIX and VERSION
        applied), read with a client of its own."""
        return self.client.get(self.cache.make_key(key)) is not None


@pytest.fixture
def memcached(memcached_server: str, settings: Settings) -> Iterator[Memcached]:
    """SESSION_CACHE_ALIAS on the server, with a KEY_PREFIX of this test's own."""
    from pymemcache.client.base import Client

    settings.CACHES = {
        **settings.CACHES,
        ALIAS: {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": memcached_server,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        },
    }
    settings.SESSION_CACHE_ALIAS = ALIAS
    host, port = memcached_server.rsplit(":", 1)
    client = Client((host, int(port)), connect_timeout=5, timeout=5)
    try:
        yield Memcached(caches[ALIAS], client)
    finally:
        client.close()
        caches[ALIAS].close()
