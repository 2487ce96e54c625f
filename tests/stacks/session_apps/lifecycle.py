"""The deploy lifecycle, through a stack's own middleware and session table, in this process.

A release is its code marker (FORCE_LOGOUT_VERSION). Its release phase is the `release` command;
its web processes are a `Web`: the stamp they read when they started, served with for as long
as they run (`release.guard._stamp`), whatever happens in the database meanwhile. Visitors are
Django test clients with an IP address and a User-Agent of their own, which the stacks' middlewares
store with each session.

`LifecycleTests` holds the tests every stack runs; a stack's test module subclasses it and
provides the fixtures `engine` (the guarded engine's name) and `model` (its session model).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connections
from django.db.models import Model
from django.test import Client
from pytest_django.fixtures import Settings

import release.guard as guard
from release.guard import KEY_LENGTH, Stamp, stamp_of_key

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "correct horse battery staple"
RELEASE_ENV = ("FORCE_LOGOUT_ON_DEPLOY", "HEROKU_RELEASE_VERSION", "HEROKU_SLUG_COMMIT", "DYNO")

INSTALL = "Decision: record the markers;"
LOGOUT = "Decision: log everyone out;"
NOTHING = "Decision: nobody is logged out;"
GUARD = "release.sessions"


def command(name: str, *args: str) -> str:
    """A management command run in this process; its output."""
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def release(*args: str) -> str:
    """The release phase's release step, in this process (migrations are the test database's)."""
    return command("release", "--skip-migrate", *args)


def database_url(alias: str = "default") -> str:
    """A DATABASE_URL for a child process that points at the test database `alias`."""
    conn = connections[alias].settings_dict
    if conn["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conn['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[connections[alias].vendor]
    password = f":{conn['PASSWORD']}" if conn.get("PASSWORD") else ""
    port = f":{conn['PORT']}" if conn.get("PORT") else ""
    return f"{scheme}://{conn['USER']}{password}@{conn['HOST']}{port}/{conn['NAME']}"


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """manage.py in a child process with this run's settings module, on the test database."""
    child = {key: value for key, value in os.environ.items() if key not in RELEASE_ENV}
    child["DJANGO_SETTINGS_MODULE"] = os.environ["DJANGO_SETTINGS_MODULE"]  # pytest-django's
    child["DATABASE_URL"] = database_url()
    # As pytest.ini: django-user-sessions 2.0 warns on import that pkg_resources is deprecated.
    child["PYTHONWARNINGS"] = "ignore:pkg_resources is deprecated as an API:UserWarning"
    child.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class Web:
    """The web processes of one release, with the stamp they read when they started."""

    settings: Settings
    version: int
    stamp: Stamp = field(default_factory=lambda: guard.BLANK)

    @contextmanager
    def serving(self) -> Iterator[None]:
        self.settings.FORCE_LOGOUT_VERSION = self.version
        saved = guard._stamp
        guard._stamp = self.stamp
        try:
            yield
        finally:
            guard._stamp = saved

    def __str__(self) -> str:
        return f"release {self.version}'s web ({self.stamp.as_text()})"


class Site:
    """One app on one database: release phases, and web processes that start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def release_phase(self, version: int) -> str:
        """The release phase of a release whose code marker is `version`; its output."""
        self.settings.FORCE_LOGOUT_VERSION = version
        return release()

    @contextmanager
    def without_the_tool(self) -> Iterator[None]:
        """As the project was before it installed the tool: SESSION_ENGINE is the engine that
        keeps the sessions, unguarded."""
        self.settings.SESSION_ENGINE = self.settings.RELEASE_SESSION_ENGINE
        try:
            yield
        finally:
            self.settings.SESSION_ENGINE = GUARD

    def boot(self, version: int) -> Web:
        """Web processes of the release `version` that start now (a deploy, a restart)."""
        self.settings.FORCE_LOGOUT_VERSION = version
        guard.forget_process_stamp()
        stamp = guard.process_stamp()
        guard.forget_process_stamp()
        return Web(self.settings, version, stamp)


@dataclass
class Visitor:
    """A browser: one user, from one IP address, with one User-Agent, and a cookie jar."""

    username: str
    ip: str
    agent: str
    cookies: SimpleCookie = field(default_factory=SimpleCookie)

    @property
    def client(self) -> Client:
        """A client on this browser's cookie jar, with the middleware SESSION_ENGINE names now
        (a Client keeps the middleware it loaded at its first request)."""
        client = Client(REMOTE_ADDR=self.ip, HTTP_USER_AGENT=self.agent)
        client.cookies = self.cookies
        return client

    @property
    def key(self) -> str | None:
        cookie = self.cookies.get(django_settings.SESSION_COOKIE_NAME)
        return cookie.value if cookie is not None and cookie.value else None

    def sign_in(self, web: Web) -> None:
        with web.serving():
            response = self.client.post(
                "/accounts/login/", {"username": self.username, "password": PASSWORD}
            )
        assert response.status_code == 302, f"{self.username} could not sign in on {web}"
        assert self.who(web) == self.username, f"{self.username} signed in on {web}"

    def who(self, web: Web) -> str | None:
        """Whom `web` takes this visitor for, on the sync path (the home page) and the async
        one (/whoami/), which must agree; None for nobody."""
        with web.serving():
            client = self.client
            page = client.get("/").content.decode()
            answer = client.get("/whoami/").content.decode()
        found = re.search(r"Signed in as <strong>(.*?)</strong>\.", page)
        assert found or "You are not signed in." in page, page
        who = found.group(1) if found else None
        assert answer == (f"signed in as {who}" if who else "not signed in"), (answer, who)
        return who

    def add_to_cart(self, web: Web) -> None:
        """A request that writes to the session (the example's cart)."""
        with web.serving():
            response = self.client.post("/cart/add/")
        assert response.status_code == 302


def signed_in(web: Web, *visitors: Visitor) -> None:
    for visitor in visitors:
        assert visitor.who(web) == visitor.username, f"{web} refused {visitor.username}"


def signed_out(web: Web, *visitors: Visitor) -> None:
    for visitor in visitors:
        assert visitor.who(web) is None, f"{web} accepted {visitor.username}'s session"


def rows(model: type[Model]) -> int:
    return model._base_manager.count()


def row_exists(model: type[Model], key: str | None) -> bool:
    return key is not None and model._base_manager.filter(session_key=key).exists()


VISITORS = [
    ("alice", "203.0.113.10", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"),
    ("bob", "2001:db8::b0b", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Safari"),
    ("carol", "198.51.100.7", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/140.0"),
    ("dave", "192.0.2.44", "curl/8.14.1"),
]


def make_people() -> dict[str, Visitor]:
    for username, _, _ in VISITORS:
        User.objects.create_user(username, password=PASSWORD)
    return {username: Visitor(username, ip, agent) for username, ip, agent in VISITORS}


class StackFixtures:
    """A site on the stack's engine (the fixture `engine` sets it), and four users."""

    @pytest.fixture
    def site(self, engine: str, settings: Settings) -> Site:
        return Site(settings)

    @pytest.fixture
    def people(self, db: None) -> dict[str, Visitor]:
        return make_people()


class LifecycleTests(StackFixtures):
    """Install, sign-in, bump, the race, preboot, redeploy and rollback, on one stack."""

    def test_the_install_logs_nobody_out(
        self, site: Site, people: dict[str, Visitor], model: type[Model]
    ) -> None:
        alice, bob = people["alice"], people["bob"]
        before = site.boot(1)
        with site.without_the_tool():
            alice.sign_in(before)
            signed_in(before, alice)
        assert len(alice.key or "") == 32, "a key of the engine's own"
        assert rows(model) == 1

        output = site.release_phase(1)

        assert INSTALL in output, output
        assert rows(model) == 1
        first = site.boot(1)
        signed_in(first, alice)
        signed_in(before, alice)
        bob.sign_in(first)
        signed_in(before, alice, bob)
        assert rows(model) == 2

    def test_a_bump_removes_every_row_of_the_stacks_table(
        self, site: Site, people: dict[str, Visitor], model: type[Model]
    ) -> None:
        site.release_phase(1)
        first = site.boot(1)
        everyone = list(people.values())
        for visitor in everyone:
            visitor.sign_in(first)
        assert rows(model) == len(everyone) == 4

        output = site.release_phase(2)

        assert LOGOUT in output, output
        assert f"table {model._meta.db_table!r} on database 'default'" in output, output
        assert "Done: removed 4 sessions," in output, output
        assert rows(model) == 0
        second = site.boot(2)
        signed_out(second, *everyone)
        people["alice"].sign_in(second)
        assert rows(model) == 1
        assert len(people["alice"].key or "") == KEY_LENGTH, "a stamped key"
        assert stamp_of_key(people["alice"].key) == second.stamp

    def test_force_logout_removes_every_row_of_the_stacks_table(
        self, site: Site, people: dict[str, Visitor], model: type[Model]
    ) -> None:
        site.release_phase(1)
        web = site.boot(1)
        for visitor in people.values():
            visitor.sign_in(web)

        out = command("force_logout", "--reason", "stolen laptop", "--no-input")

        assert "removed 4 sessions" in out, out
        assert rows(model) == 0
        signed_out(site.boot(1), *people.values())

    def test_the_race_a_session_the_old_web_makes_after_the_release_phase_is_refused(
        self, site: Site, people: dict[str, Visitor], model: type[Model]
    ) -> None:
        alice, bob, carol = people["alice"], people["bob"], people["carol"]
        site.release_phase(1)
        old = site.boot(1)
        alice.sign_in(old)

        assert LOGOUT in site.release_phase(2)
        bob.sign_in(old)  # the old web still serves while the release phase ends
        restarted = site.boot(1)  # one of its dynos restarts before the new release starts
        carol.sign_in(restarted)
        assert row_exists(model, bob.key)
        assert row_exists(model, carol.key)
        signed_in(old, bob, carol)

        new = site.boot(2)

        signed_out(new, alice, bob, carol)
        bob.sign_in(new)
        signed_in(new, bob)

    def test_preboot_the_new_web_refuses_what_the_old_one_writes(
        self, site: Site, people: dict[str, Visitor], model: type[Model]
    ) -> None:
        alice, bob, carol, dave = (people[name] for name in ("alice", "bob", "carol", "dave"))
        site.release_phase(1)
        site.release_phase(2)  # a logout before this one: both releases have stamps
        old = site.boot(2)
        alice.sign_in(old)

        assert LOGOUT in site.release_phase(3)
        new = site.boot(3)  # preboot: old and new serve side by side

        signed_out(new, alice)
        bob.sign_in(old)
        signed_out(new, bob)
        # The new web's sessions: accepted by the old one, and still by the new one after.
        carol.sign_in(new)
        signed_in(old, carol)
        signed_in(new, carol)
        # A session of the new web that the old web writes to takes the old web's stamp.
        dave.sign_in(new)
        made = dave.key
        dave.add_to_cart(old)
        assert dave.key != made
        assert not row_exists(model, made)
        assert stamp_of_key(dave.key) == old.stamp != new.stamp
        assert row_exists(model, dave.key)
        signed_in(old, dave)
        signed_out(new, dave)
        signed_in(new, carol)

    def test_a_redeploy_and_a_rollback_log_nobody_out(
        self, site: Site, people: dict[str, Visitor], model: type[Model]
    ) -> None:
        alice, bob = people["alice"], people["bob"]
        site.release_phase(1)
        first = site.boot(1)
        bob.sign_in(first)
        assert LOGOUT in site.release_phase(2)
        second = site.boot(2)
        alice.sign_in(second)
        bob.sign_in(second)
        assert rows(model) == 2

        redeploy = site.release_phase(2)

        assert NOTHING in redeploy, redeploy
        assert rows(model) == 2
        signed_in(site.boot(2), alice, bob)

        rollback = site.release_phase(1)  # R1's code and config again

        assert NOTHING in rollback, rollback
        assert rows(model) == 2
        signed_in(site.boot(1), alice, bob)
        assert NOTHING in site.release_phase(2)  # and forward again
        signed_in(site.boot(2), alice, bob)
        assert rows(model) == 2


class ColumnTests(StackFixtures):
    """The stacks' own columns (user, ip, user_agent), filled in for guarded sessions."""

    def test_the_stacks_columns_are_stored_for_guarded_sessions(
        self, site: Site, people: dict[str, Visitor], model: type[Model]
    ) -> None:
        alice = people["alice"]
        site.release_phase(1)
        site.release_phase(2)
        web = site.boot(2)

        alice.sign_in(web)

        assert len(alice.key or "") == KEY_LENGTH
        assert stamp_of_key(alice.key) == web.stamp
        row: Any = model._base_manager.get(session_key=alice.key)
        assert (row.ip, row.user_agent, row.user.username) == (alice.ip, alice.agent, "alice")
        user: Any = User.objects.get(username="alice")
        assert [session.pk for session in user.session_set.all()] == [alice.key]
        assert row.get_decoded()["_auth_user_id"] == str(user.pk)


# Session engines of apps that a stack does not install: (engine, its session model).
NOT_INSTALLED = [
    (engine, model)
    for engine, model, app in [
        ("qsessions.backends.db", "qsessions.models.Session", "qsessions"),
        ("qsessions.backends.cached_db", "qsessions.models.Session", "qsessions"),
        ("user_sessions.backends.db", "user_sessions.models.Session", "user_sessions"),
    ]
    if app not in django_settings.INSTALLED_APPS
]


class ManageTests:
    """`manage.py` in a child process, with the stack's settings module."""

    @pytest.mark.subprocess
    @pytest.mark.django_db
    def test_check_passes_without_django_contrib_sessions(self, engine: str) -> None:
        assert "django.contrib.sessions" not in django_settings.INSTALLED_APPS

        done = run_manage("check", DJANGO_SESSION_ENGINE=engine)

        assert done.returncode == 0, done.stderr
        assert "System check identified no issues" in done.stdout
        assert "Traceback" not in done.stderr, done.stderr
        assert "release." not in done.stdout + done.stderr

    @pytest.mark.subprocess
    @pytest.mark.django_db(transaction=True)
    def test_the_release_phase_in_a_child_process(
        self, engine: str, settings: Settings, model: type[Model]
    ) -> None:
        """`manage.py release` as Heroku runs it (migrate, checks, release), then a logout by
        FORCE_LOGOUT_ON_DEPLOY, then `release_status`: no traceback, the stack's rows counted."""
        install = run_manage("release", DJANGO_SESSION_ENGINE=engine)
        assert install.returncode == 0, install.stderr
        assert INSTALL in install.stdout, install.stdout
        people = make_people()
        web = Site(settings).boot(1)
        for visitor in people.values():
            visitor.sign_in(web)

        logout = run_manage(
            "release", DJANGO_SESSION_ENGINE=engine, FORCE_LOGOUT_ON_DEPLOY="incident-1"
        )
        status = run_manage("release_status", DJANGO_SESSION_ENGINE=engine)

        assert logout.returncode == 0, logout.stderr
        assert LOGOUT in logout.stdout, logout.stdout
        assert f"{engine}, table {model._meta.db_table!r}" in logout.stdout, logout.stdout
        assert "Done: removed 4 sessions," in logout.stdout, logout.stdout
        assert rows(model) == 0
        assert status.returncode == 0, status.stderr
        for done in (install, logout, status):
            assert "Traceback" not in done.stderr, done.stderr
            assert "release.W" not in done.stderr + done.stdout
        signed_out(Site(settings).boot(1), *people.values())

    @pytest.mark.subprocess
    @pytest.mark.django_db
    @pytest.mark.parametrize(
        "command",
        [("check",), ("release",), ("force_logout", "--reason", "test", "--no-input")],
        ids=["check", "release", "force_logout"],
    )
    def test_djangos_engine_without_its_app_is_one_clear_error(
        self, command: tuple[str, ...]
    ) -> None:
        done = run_manage(*command, DJANGO_SESSION_ENGINE="django.contrib.sessions.backends.db")

        assert one_clear_error(done, "release.E005").startswith(
            "?: (release.E005) The session model of engine 'django.contrib.sessions.backends.db' "
            "cannot be loaded (Model class django.contrib.sessions.models.Session doesn't "
        )

    @pytest.mark.subprocess
    @pytest.mark.django_db
    @pytest.mark.parametrize(("engine", "model"), NOT_INSTALLED, ids=[e for e, _ in NOT_INSTALLED])
    def test_another_apps_engine_is_one_clear_error(self, engine: str, model: str) -> None:
        done = run_manage("check", DJANGO_SESSION_ENGINE=engine)

        error = one_clear_error(done, "release.E005")
        assert f"engine {engine!r} " in error, error
        assert f"Model class {model} " in error, error


def one_clear_error(done: subprocess.CompletedProcess[str], check_id: str) -> str:
    """The one error of a command that stopped at a system check: no traceback, no other error
    of this app (the `release` logger may repeat the same line for log drains)."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "SystemCheckError: " in done.stderr, done.stderr
    errors = {line for line in done.stderr.splitlines() if "(release." in line}
    assert len(errors) == 1, done.stderr
    (error,) = errors
    assert f"({check_id})" in error, done.stderr
    return error
