"""Fixtures of the end-to-end tests, and what keeps them out of the default `pytest` run.

They run with `pytest tests/e2e` or `pytest -m e2e`, on the PostgreSQL server of
E2E_POSTGRES_URL; a plain `pytest` deselects them. They make their own databases, so they never
ask for pytest-django's test database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis

from tests.e2e.harness import POSTGRES_URL, REDIS_URL, Builder, Heroku

E2E_DIR = Path(__file__).resolve().parent


def asks_for_e2e(config: pytest.Config) -> bool:
    """Whether the command line names the e2e marker, or tests under tests/e2e."""
    if "e2e" in config.option.markexpr:
        return True
    named = (Path(config.invocation_params.dir, arg.split("::")[0]) for arg in config.args)
    return any(path.resolve().is_relative_to(E2E_DIR) for path in named)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if asks_for_e2e(config):
        return
    deselected = [item for item in items if item.get_closest_marker("e2e")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("e2e")]


@pytest.fixture(scope="session")
def postgres_server() -> str:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as error:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL} (E2E_POSTGRES_URL): {error}")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    return Builder(tmp_path_factory.mktemp("builds"))


@pytest.fixture
def heroku(postgres_server: str, builder: Builder, tmp_path: Path) -> Iterator[Heroku]:
    platform = Heroku(builder, tmp_path, postgres_server)
    try:
        yield platform
    finally:
        platform.close()


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    """The Redis database of REDIS_URL, emptied before and after the test."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (E2E_REDIS_URL): {error}")
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@dataclass(frozen=True)
class Engine:
    """A session engine, and the config vars that make the example project use it."""

    name: str
    config: dict[str, str]
    stores_rows: bool
    redis: redis.Redis | None = field(default=None, compare=False)

    def cached_sessions(self) -> int:
        assert self.redis is not None, f"{self.name} keeps no sessions in Redis"
        return sum(1 for _ in self.redis.scan_iter(match="*django.contrib.sessions.cache*"))


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Engine:
    """The engine named by the test's parameter: `db`, `cached_db` (on Redis), `signed_cookies`."""
    name: str = request.param
    config = {"DJANGO_SESSION_ENGINE": f"django.contrib.sessions.backends.{name}"}
    if name == "cached_db":
        client = request.getfixturevalue("redis_db")
        return Engine(name, {**config, "REDIS_URL": REDIS_URL}, stores_rows=True, redis=client)
    return Engine(name, config, stores_rows=name == "db")
