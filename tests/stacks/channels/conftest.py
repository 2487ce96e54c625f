"""Fixtures of the Django Channels stack test, and what keeps it out of the default `pytest` run.

It runs with `pytest tests/stacks/channels` (or `pytest -m channels`), once
`pip install -r tests/requirements-channels.txt` has installed Channels, uvicorn, daphne and
the `websockets` client; without them, or without the PostgreSQL server of E2E_POSTGRES_URL, it
skips. It runs real processes through the end-to-end harness (`tests.e2e.harness`): a release
phase and an ASGI server per release, on a database of its own.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.harness import POSTGRES_URL, Builder, Heroku, Slug

CHANNELS_DIR = Path(__file__).resolve().parent
PACKAGE = "tests.stacks.channels"
# The modules a slug of the Channels project holds, besides the example project's code.
PROJECT_FILES = ("__init__.py", "settings.py", "asgi.py", "consumers.py", "served_by.py")

ASGI_APP = f"{PACKAGE}.asgi:application"
# The `web:` line of the Procfile, per ASGI server, bound to 127.0.0.1 as the harness probes it.
SERVERS = {
    "uvicorn": (
        f"uvicorn --host 127.0.0.1 --port $PORT --ws websockets-sansio --lifespan off {ASGI_APP}"
    ),
    "daphne": f"daphne --bind 127.0.0.1 --port $PORT {ASGI_APP}",
}
REQUIREMENTS = "tests/requirements-channels.txt"


MARKER = "channels"
MARKER_LINE = (
    f"{MARKER}: Django Channels under uvicorn and daphne through a deploy; "
    "run with `pytest tests/stacks/channels`"
)


def pytest_configure(config: pytest.Config) -> None:
    """The marker, for runs whose ini file is not pyproject.toml: `pytest tests/stacks/...`
    reads tests/stacks/pytest.ini, whose markers (with --strict-markers) do not list it."""
    if not any(line.split(":")[0].strip() == MARKER for line in config.getini("markers")):
        config.addinivalue_line("markers", MARKER_LINE)


def asks_for_channels(config: pytest.Config) -> bool:
    """Whether the command line names the channels marker, or tests under tests/stacks/channels."""
    if MARKER in config.option.markexpr:
        return True
    named = (Path(config.invocation_params.dir, arg.split("::")[0]) for arg in config.args)
    return any(path.resolve().is_relative_to(CHANNELS_DIR) for path in named)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if asks_for_channels(config):
        return
    deselected = [item for item in items if item.get_closest_marker(MARKER)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker(MARKER)]


def require_modules(*modules: str) -> None:
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install -r {REQUIREMENTS}")


@pytest.fixture(scope="session")
def channels_postgres() -> str:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as error:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL} (E2E_POSTGRES_URL): {error}")
    return POSTGRES_URL


class ChannelsBuilder:
    """Slugs of the Channels project: the example project's build (static files collected), the
    project's modules, and a Procfile whose `web:` runs an ASGI server."""

    def __init__(self, builder: Builder) -> None:
        self.builder = builder

    def build(self, server: str, *, installed: bool = True) -> Slug:
        """A build that runs `server`; with `installed=False`, the project before the tool: its
        settings are `settings_before_install`, and its release phase is a plain `migrate`."""
        slug = self.builder.build(1)
        package = slug.path / "tests" / "stacks" / "channels"
        package.mkdir(parents=True)
        for init in (slug.path / "tests", slug.path / "tests" / "stacks"):
            (init / "__init__.py").write_text("")
        for name in PROJECT_FILES:
            (package / name).write_text((CHANNELS_DIR / name).read_text())
        if not installed:
            before = (CHANNELS_DIR / "settings_before_install.py").read_text()
            (package / "settings.py").write_text(before)
        release = "python manage.py release" if installed else "python manage.py migrate --no-input"
        (slug.path / "Procfile").write_text(f"release: {release}\nweb: {SERVERS[server]}\n")
        return slug


@pytest.fixture(scope="session")
def channels_builder(tmp_path_factory: pytest.TempPathFactory) -> ChannelsBuilder:
    require_modules("channels")
    return ChannelsBuilder(Builder(tmp_path_factory.mktemp("channels-builds")))


@pytest.fixture
def server(request: pytest.FixtureRequest) -> str:
    """The ASGI server named by the test's parameter, skipped when it is not installed."""
    name: str = request.param
    require_modules("channels", name, "websockets")
    return name


@pytest.fixture
def channels_heroku(
    channels_postgres: str, channels_builder: ChannelsBuilder, tmp_path: Path
) -> Iterator[Heroku]:
    """The local Heroku of the end-to-end tests; its apps' databases are dropped at the end."""
    platform = Heroku(channels_builder.builder, tmp_path, channels_postgres)
    try:
        yield platform
    finally:
        platform.close()
