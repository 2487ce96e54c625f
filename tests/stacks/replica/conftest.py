"""The replica stack: the example project's dynos behind Django's primary/replica router, with
a PostgreSQL streaming replica that replays the primary 8 s late.

The replica is started by `tests/services/replica.sh`, which prints the URL to put in
REPLICA_URL; without REPLICA_URL the tests are skipped. The apps are the end-to-end harness's
(`tests.e2e.harness`): a database of their own on the primary (E2E_POSTGRES_URL, default
127.0.0.1:5432), which reaches the replica as every change does, 8 s late.
"""

from __future__ import annotations

import os
import shlex
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.harness import (
    PASSWORD,
    POSTGRES_URL,
    ROOT,
    STATEMENT_TIMEOUT,
    App,
    Builder,
    Heroku,
    Release,
    Slug,
    Web,
    free_port,
    run_dyno,
)

REPLICA_URL = os.environ.get("REPLICA_URL")
SETTINGS = "tests.stacks.replica.settings"
LOGOUT_EPOCHS = "SELECT epoch FROM release_logout WHERE logged_out ORDER BY epoch"
PAIR_EPOCH = (
    "SELECT epoch FROM release_releaseepoch WHERE code_marker = %s AND config_marker IS NULL"
)
# How long the replica may take to replay what the primary has (its delay is 8 s).
CATCH_UP_TIMEOUT = 60.0

needs_replica = pytest.mark.skipif(
    not REPLICA_URL,
    reason="REPLICA_URL is not set: `REPLICA_URL=$(bash tests/services/replica.sh) pytest "
    "tests/stacks/replica`",
)


@pytest.fixture(scope="session")
def replica_server() -> str:
    """REPLICA_URL, checked: a standby that replays with a delay."""
    assert REPLICA_URL, "REPLICA_URL is not set"
    with psycopg.connect(REPLICA_URL, connect_timeout=5) as connection:
        row = connection.execute(
            "SELECT pg_is_in_recovery(), current_setting('recovery_min_apply_delay')"
        ).fetchone()
    assert row is not None
    in_recovery, delay = row
    assert in_recovery, f"{REPLICA_URL} is not a standby: run tests/services/replica.sh"
    assert delay not in {"0", "0ms"}, f"{REPLICA_URL} replays without delay ({delay})"
    return REPLICA_URL


@pytest.fixture(scope="session")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    return Builder(tmp_path_factory.mktemp("builds"))


@pytest.fixture
def heroku(replica_server: str, builder: Builder, tmp_path: Path) -> Iterator[Heroku]:
    platform = Heroku(builder, tmp_path, POSTGRES_URL)
    try:
        yield platform
    finally:
        platform.close()


@dataclass
class LaggingApp:
    """A harness app whose dynos read from the replica of its database."""

    app: App
    replica_url: str
    workdir: Path

    def on_replica(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(
            self.replica_url, connect_timeout=5, options=STATEMENT_TIMEOUT
        ) as connection:
            return connection.execute(query, params).fetchall()

    def has_table_on_replica(self, table: str) -> bool:
        return bool(self.on_replica("SELECT to_regclass(%s) IS NOT NULL", table)[0][0])

    def logouts_on_primary(self) -> list[int]:
        return [row[0] for row in self.app.database.rows(LOGOUT_EPOCHS)]

    def logouts_on_replica(self) -> list[int]:
        if not self.has_table_on_replica("release_logout"):
            return []
        return [row[0] for row in self.on_replica(LOGOUT_EPOCHS)]

    def pair_epochs(self, code_marker: str, *, on_replica: bool = False) -> list[int]:
        """The epochs the release pair of `code_marker` (no config marker) has: [] or one."""
        if on_replica:
            if not self.has_table_on_replica("release_releaseepoch"):
                return []
            return [row[0] for row in self.on_replica(PAIR_EPOCH, code_marker)]
        return [row[0] for row in self.app.database.rows(PAIR_EPOCH, code_marker)]

    def wait_until_replayed(self) -> float:
        """Wait until the replica has replayed everything the primary has; the seconds it took."""
        start = time.monotonic()
        lsn = self.app.database.rows("SELECT pg_current_wal_lsn()::text")[0][0]
        while time.monotonic() - start < CATCH_UP_TIMEOUT:
            with psycopg.connect(self.replica_url, connect_timeout=5) as server:
                row = server.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)
                ).fetchone()
            if row is not None and row[0]:
                return time.monotonic() - start
            time.sleep(0.2)
        raise AssertionError(f"The replica did not replay {lsn} in {CATCH_UP_TIMEOUT:.0f} s")

    def wait_for_users_on_replica(self, *usernames: str) -> float:
        """Wait until the database and these users are on the replica; the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < CATCH_UP_TIMEOUT:
            try:
                if self.has_table_on_replica("auth_user"):
                    rows = self.on_replica(
                        "SELECT count(*) FROM auth_user WHERE username = ANY(%s)", list(usernames)
                    )
                    if rows[0][0] == len(usernames):
                        return time.monotonic() - start
            except psycopg.OperationalError:
                pass  # the database is not on the replica yet
            time.sleep(0.2)
        raise AssertionError(
            f"The users {usernames} were not on the replica after {CATCH_UP_TIMEOUT:.0f} s: is "
            f"{REPLICA_URL} a replica of {POSTGRES_URL}?"
        )

    def before_the_tool(self, slug: Slug) -> Release:
        """The app before it added the release app: `migrate` as its release phase."""
        config = {**self.app.config, "STACK_WITHOUT_RELEASE": "1"}
        release = Release(0, slug, config, "Before the release app")
        release.phase = run_dyno("python manage.py migrate --no-input", slug.path, release.env())
        assert release.succeeded, f"The app's release phase failed: {release.phase}"
        return release

    def web_of(self, release: Release) -> Web:
        """A web of a release the app does not track (the app before the tool)."""
        return Web(release, free_port(), self.workdir / f"{release.name}-web.log")

    def create_users(self, release: Release, *usernames: str, staff: bool = False) -> None:
        """Users with the harness's password, on the primary, from a one-off dyno of `release`."""
        script = (
            "import os; from django.contrib.auth.models import User; "
            "[User.objects.create_user(name, password=os.environ['E2E_PASSWORD'], "
            "is_staff=bool(os.environ.get('E2E_STAFF')), "
            "is_superuser=bool(os.environ.get('E2E_STAFF'))) "
            "for name in os.environ['E2E_USERS'].split()]"
        )
        env = release.env(E2E_USERS=" ".join(usernames), E2E_PASSWORD=PASSWORD)
        if staff:
            env["E2E_STAFF"] = "1"
        command = f"python manage.py shell -c {shlex.quote(script)}"
        result = run_dyno(command, release.slug.path, env)
        assert result.ok, f"Could not create the users {usernames}: {result}"


@pytest.fixture
def lagging(heroku: Heroku, replica_server: str, tmp_path: Path) -> LaggingApp:
    """An app whose dynos run the replica stack's settings; `DJANGO_SESSION_ENGINE` is set by
    the test."""
    # One gunicorn worker per web, so that each web has one stamp: a second worker of the old
    # release that served its first session after the logout would read the new epoch and
    # refuse its sibling's sessions, which makes "the old release still serves them" a draw.
    app = heroku.create_app(
        "shop",
        DJANGO_SETTINGS_MODULE=SETTINGS,
        PYTHONPATH=str(ROOT),
        GUNICORN_CMD_ARGS="--workers 1",
    )
    replica_url = (
        urllib.parse.urlsplit(replica_server)._replace(path=f"/{app.database.name}").geturl()
    )
    app.config["REPLICA_DATABASE_URL"] = replica_url
    return LaggingApp(app, replica_url, tmp_path)
