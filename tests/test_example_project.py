"""The example project: its pages over the test client, its static files, its settings."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.db import DatabaseError, connections
from django.test import Client
from django.utils import timezone
from pytest_django.asserts import assertContains, assertRedirects
from pytest_django.fixtures import Settings

from release.models import Logout
from tests.conftest import COOKIES, ROOT, release, run_manage

if TYPE_CHECKING:
    # What the test client returns; it exists only in django-stubs.
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

PASSWORD = "correct horse battery staple"
STATUS = re.compile(r'<p id="status">(.*?)</p>', re.DOTALL)
HISTORY_EMPTY = re.compile(r'<p id="history-empty">(.*?)</p>', re.DOTALL)
HISTORY_ENTRY = re.compile(r'<li class="history-entry" data-epoch="(\d+)">(.*?)</li>', re.DOTALL)
WHEN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")

# What a child process must not inherit when it reads the settings from a given environment.
SETTINGS_ENV = (
    "CI",
    "DATABASE_SSL_REQUIRE",
    "DATABASE_URL",
    "DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_PRODUCTION",
    "DJANGO_SECRET_KEY",
    "DJANGO_SETTINGS_MODULE",
    "DYNO",
)


def text(markup: str) -> str:
    """What a person reads in `markup`: no tags, entities resolved, white space collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", markup)).split())


def status(response: Response) -> str:
    """The text of the home page's status line, without its markup."""
    assert response.status_code == 200
    match = STATUS.search(response.content.decode())
    assert match, response.content.decode()
    return text(match.group(1))


def history(response: Response) -> list[tuple[int, str]]:
    """The home page's history entries, newest first: (epoch, text), times as `WHEN`."""
    assert response.status_code == 200
    return [
        (int(epoch), WHEN.sub("WHEN", text(entry)))
        for epoch, entry in HISTORY_ENTRY.findall(response.content.decode())
    ]


def history_empty(response: Response) -> str | None:
    """What the home page says in place of an empty history, or None if it lists entries."""
    assert response.status_code == 200
    match = HISTORY_EMPTY.search(response.content.decode())
    return text(match.group(1)) if match else None


def csrf_token(client: Client) -> str:
    return client.cookies["csrftoken"].value


def sign_in(client: Client, username: str, password: str = PASSWORD) -> Response:
    """Sign in as a browser does: load the form, then post it back with its CSRF token."""
    form = client.get("/accounts/login/")
    assert form.status_code == 200
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password, "csrfmiddlewaretoken": csrf_token(client)},
    )


@pytest.fixture
def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def alice(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)


@pytest.mark.django_db
class TestPages:
    def test_home_anonymous(self, client: Client) -> None:
        response = client.get("/")

        assert status(response) == "You are not signed in."
        assertContains(response, '<a href="/accounts/login/">Sign in</a>', html=True)

    def test_login_page_renders_form(self, csrf_client: Client) -> None:
        response = csrf_client.get("/accounts/login/")

        assert response.status_code == 200
        assertContains(response, '<form method="post" action="/accounts/login/">')
        for field in ("csrfmiddlewaretoken", "username", "password", "next"):
            assertContains(response, f'name="{field}"')
        assert csrf_token(csrf_client)

    def test_sign_in_with_csrf_checks(self, csrf_client: Client, alice: User) -> None:
        response = sign_in(csrf_client, "alice")

        assertRedirects(response, "/")
        assert csrf_client.session["_auth_user_id"] == str(alice.pk)
        assert status(csrf_client.get("/")) == "Signed in as alice."

    def test_sign_in_without_csrf_token_is_refused(self, csrf_client: Client, alice: User) -> None:
        csrf_client.get("/accounts/login/")

        response = csrf_client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

        assert response.status_code == 403
        assert status(csrf_client.get("/")) == "You are not signed in."

    def test_wrong_password(self, csrf_client: Client, alice: User) -> None:
        response = sign_in(csrf_client, "alice", password="wrong")

        assertContains(response, "Your username and password did not match.")
        assert status(csrf_client.get("/")) == "You are not signed in."

    def test_sign_out_by_post(self, csrf_client: Client, alice: User) -> None:
        sign_in(csrf_client, "alice")
        home = csrf_client.get("/")
        assertContains(home, '<form method="post" action="/accounts/logout/">')

        # Signing in rotates the CSRF token: the page's form carries the new one.
        response = csrf_client.post(
            "/accounts/logout/", {"csrfmiddlewaretoken": csrf_token(csrf_client)}
        )

        assertRedirects(response, "/")
        assert "_auth_user_id" not in csrf_client.session
        assert status(csrf_client.get("/")) == "You are not signed in."

    def test_sign_out_needs_csrf_token_and_post(self, csrf_client: Client, alice: User) -> None:
        sign_in(csrf_client, "alice")

        assert csrf_client.post("/accounts/logout/").status_code == 403
        assert csrf_client.get("/accounts/logout/").status_code == 405
        assert status(csrf_client.get("/")) == "Signed in as alice."

    def test_admin_redirects_anonymous_to_admin_login(self, client: Client) -> None:
        response = client.get("/admin/")

        assertRedirects(response, "/admin/login/?next=/admin/")

    def test_admin_open_to_superuser_signed_in_on_site(
        self, csrf_client: Client, django_user_model: type[User]
    ) -> None:
        django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
        sign_in(csrf_client, "root")

        response = csrf_client.get("/admin/")

        assert response.status_code == 200
        assertContains(response, "Site administration")


INSTALL = (
    "WHEN (just now) First release with the tool "
    "FORCE_LOGOUT_VERSION = '1', FORCE_LOGOUT_ON_DEPLOY not set Nobody logged out. "
    "Why: this is the first release with the tool, which logs nobody out "
    "(--logout-on-install would)"
)


def deploy_logout(monkeypatch: pytest.MonkeyPatch, value: str) -> str:
    """A release with a new FORCE_LOGOUT_ON_DEPLOY, as `heroku config:set` makes one; returns
    the history entry it should add, in the form `history` gives."""
    monkeypatch.setenv("FORCE_LOGOUT_ON_DEPLOY", value)
    release()
    return (
        f"WHEN (just now) A marker changed "
        f"FORCE_LOGOUT_VERSION = '1', FORCE_LOGOUT_ON_DEPLOY = '{value}' "
        "Everyone logged out: {removed} removed. "
        f"Why: FORCE_LOGOUT_ON_DEPLOY is '{value}', which this database has never applied"
    )


@pytest.mark.django_db
class TestHistory:
    def test_before_the_first_release(self, client: Client) -> None:
        response = client.get("/")

        assert status(response) == "You are not signed in."
        assert history_empty(response) == "No release has run here yet."
        assert history(response) == []

    def test_releases_newest_first_with_the_sessions_they_removed(
        self, monkeypatch: pytest.MonkeyPatch, django_user_model: type[User]
    ) -> None:
        release()
        people = {name: Client() for name in ("alice", "bob")}
        for name, person in people.items():
            django_user_model.objects.create_user(username=name, password=PASSWORD)
            sign_in(person, name)
        both = deploy_logout(monkeypatch, "2026-11-26")
        sign_in(people["alice"], "alice")
        one = deploy_logout(monkeypatch, "2026-11-27")

        response = people["alice"].get("/")

        assert status(response) == "You are not signed in."
        assert history_empty(response) is None
        assert history(response) == [
            (2, one.format(removed="1 session")),
            (1, both.format(removed="2 sessions")),
            (0, INSTALL),
        ]

    def test_the_latest_five(self, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
        release()
        for day in range(1, 7):
            deploy_logout(monkeypatch, f"2026-12-0{day}")

        entries = history(client.get("/"))

        assert [epoch for epoch, _ in entries] == [6, 5, 4, 3, 2]
        assert "FORCE_LOGOUT_ON_DEPLOY = '2026-12-06'" in entries[0][1]

    def test_unknown_number_of_sessions(
        self, client: Client, monkeypatch: pytest.MonkeyPatch, settings: Settings
    ) -> None:
        """Signed-cookie sessions live in the browsers: nobody can count what a logout ended."""
        settings.RELEASE_SESSION_ENGINE = COOKIES
        release()
        expected = deploy_logout(monkeypatch, "2026-11-26")

        assert history(client.get("/"))[0] == (
            1,
            expected.format(removed="an unknown number of sessions"),
        )

    def test_long_marker_values_cut_short(
        self, client: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        release()
        deploy_logout(monkeypatch, "x" * 100)

        newest = history(client.get("/"))[0][1]

        assert f"FORCE_LOGOUT_ON_DEPLOY = '{'x' * 38}…" in newest
        assert "x" * 39 not in newest.split("Why:")[0]

    def test_when_for_people(self, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
        release()
        deploy_logout(monkeypatch, "2026-11-26")
        # As if the install had run long ago, and the logout a while ago.
        Logout.objects.filter(epoch=0).update(applied_at=datetime(2024, 2, 29, 9, 5, tzinfo=UTC))
        Logout.objects.filter(epoch=1).update(
            applied_at=timezone.now() - timedelta(hours=2, minutes=3, seconds=10)
        )

        body = client.get("/").content.decode()
        whens = [text(entry).split(")")[0] for _, entry in HISTORY_ENTRY.findall(body)]

        assert whens[0].endswith(" (2 hours, 3 minutes ago")
        assert WHEN.fullmatch(whens[0].split(" (")[0])
        assert re.fullmatch(r"2024-02-29 09:05 UTC \(\d+ years?(, \d+ months?)? ago", whens[1])

    @pytest.mark.django_db(databases=["default", "pipeline"])
    def test_read_where_the_commands_write(self, client: Client, settings: Settings) -> None:
        """Django's primary/replica router sends reads to a replica, which may lag: the page
        reads the history from the primary, where the release command wrote it."""
        settings.DATABASE_ROUTERS = ["tests.routers.ReadsElsewhereRouter"]
        release()

        assert history(client.get("/")) == [(0, INSTALL)]
        assert not Logout.objects.exists()  # read from the "replica"

    def test_release_app_not_installed(self, client: Client, settings: Settings) -> None:
        """The project before it installed the release app: no history to read."""
        settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "release"]
        settings.SESSION_ENGINE = settings.RELEASE_SESSION_ENGINE

        response = client.get("/")

        assert status(response) == "You are not signed in."
        assert history_empty(response) == (
            "The release app is not installed here: nothing is recorded."
        )

    def test_other_database_failures_are_not_hidden(
        self, client: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A history that exists but cannot be read is an error, not an empty history."""
        with monkeypatch.context() as patch:
            patch.setattr(Logout._meta, "db_table", "django_session")
            with pytest.raises(DatabaseError) as failed:
                client.get("/")
        assert any(entry.name == "latest_logouts" for entry in failed.traceback)

        # The failed query left the transaction usable (PostgreSQL).
        release()
        assert history(client.get("/")) == [(0, INSTALL)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic_requests", [False, True], ids=["autocommit", "atomic_requests"])
def test_before_the_first_migrate(
    client: Client, monkeypatch: pytest.MonkeyPatch, atomic_requests: bool
) -> None:
    """A web process that starts before the release phase has created the release app's
    tables; with ATOMIC_REQUESTS, the failed query must not abort the request's transaction
    (PostgreSQL refuses every later query in it)."""
    User.objects.create_user(username="alice", password=PASSWORD)
    assertRedirects(sign_in(client, "alice"), "/")
    monkeypatch.setitem(connections["default"].settings_dict, "ATOMIC_REQUESTS", atomic_requests)
    monkeypatch.setattr(Logout._meta, "db_table", "release_logout_not_yet_migrated")

    response = client.get("/")

    assert status(response) == "Signed in as alice."
    assert history_empty(response) == "No release has run here yet."


def test_code_marker_line() -> None:
    lines = (ROOT / "example_project" / "settings.py").read_text(encoding="utf-8").splitlines()

    assert "FORCE_LOGOUT_VERSION = 1" in lines


@pytest.mark.subprocess
def test_collectstatic_needs_no_database() -> None:
    """The buildpack runs collectstatic at build time, before any database is reachable."""
    started = time.time()

    result = run_manage(
        "collectstatic",
        "--noinput",
        DATABASE_URL="postgres://nobody@127.0.0.1:1/none",
        DJANGO_SETTINGS_MODULE="example_project.settings",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    manifest_path = ROOT / "staticfiles" / "staticfiles.json"
    # Written by this run, not left over from an earlier one (allow for coarse timestamps).
    assert manifest_path.stat().st_mtime >= started - 2
    hashed = json.loads(manifest_path.read_text(encoding="utf-8"))["paths"]["admin/css/base.css"]
    assert re.fullmatch(r"admin/css/base\.[0-9a-f]{12}\.css", hashed), hashed
    assert (ROOT / "staticfiles" / hashed).is_file()
    assert (ROOT / "staticfiles" / f"{hashed}.gz").is_file()


SETTINGS_SCRIPT = """
import json
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

db = settings.DATABASES["default"]
try:
    secret_key = settings.SECRET_KEY
except ImproperlyConfigured as error:
    secret_key = f"ImproperlyConfigured: {error}"
print(json.dumps({
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SECURE_PROXY_SSL_HEADER": settings.SECURE_PROXY_SSL_HEADER,
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "SECRET_KEY": secret_key,
    "ENGINE": db["ENGINE"],
    "NAME": str(db["NAME"]),
    "OPTIONS": db.get("OPTIONS", {}),
    "CONN_MAX_AGE": db["CONN_MAX_AGE"],
    "CONN_HEALTH_CHECKS": db["CONN_HEALTH_CHECKS"],
}))
"""


def settings_under(**env: str) -> dict[str, Any]:
    """The example project's settings as a fresh process with this environment reads them."""
    child = {key: value for key, value in os.environ.items() if key not in SETTINGS_ENV}
    child.update(env, DJANGO_SETTINGS_MODULE="example_project.settings")
    result = subprocess.run(
        [sys.executable, "-c", SETTINGS_SCRIPT],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert isinstance(values, dict)
    return values


@pytest.mark.subprocess
class TestSettingsFromEnvironment:
    def test_heroku_dyno(self) -> None:
        values = settings_under(
            DYNO="web.1", DJANGO_SECRET_KEY="x", DATABASE_URL="postgres://u@h/d"
        )

        assert values["SECURE_SSL_REDIRECT"] is True
        assert values["SESSION_COOKIE_SECURE"] is True
        assert values["CSRF_COOKIE_SECURE"] is True
        assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
        assert values["DEBUG"] is False
        assert values["ALLOWED_HOSTS"] == ["*"]
        assert values["SECRET_KEY"] == "x"
        assert values["ENGINE"] == "django.db.backends.postgresql"
        assert values["NAME"] == "d"
        assert values["OPTIONS"] == {"sslmode": "require"}
        assert values["CONN_MAX_AGE"] == 600
        assert values["CONN_HEALTH_CHECKS"] is True

    def test_local(self) -> None:
        values = settings_under()

        assert values["SECURE_SSL_REDIRECT"] is False
        assert values["SESSION_COOKIE_SECURE"] is False
        assert values["CSRF_COOKIE_SECURE"] is False
        assert values["SECURE_PROXY_SSL_HEADER"] is None
        assert values["DEBUG"] is True
        assert "*" not in values["ALLOWED_HOSTS"]
        assert values["SECRET_KEY"].startswith("django-insecure-")
        assert values["ENGINE"] == "django.db.backends.sqlite3"
        assert values["NAME"] == str(ROOT / "db.sqlite3")
        assert "sslmode" not in values["OPTIONS"]

    def test_heroku_ci_runs_over_plain_http(self) -> None:
        """Heroku CI sets DYNO too, and CI: its test runs are not served over Heroku's router."""
        values = settings_under(DYNO="run.1", CI="true", DATABASE_URL="postgres://u@localhost/d")

        assert values["SECURE_SSL_REDIRECT"] is False
        assert values["SESSION_COOKIE_SECURE"] is False
        assert "sslmode" not in values["OPTIONS"]

    def test_debug_flag_overrides_dyno_default(self) -> None:
        assert settings_under(DYNO="web.1", DJANGO_SECRET_KEY="x", DEBUG="on")["DEBUG"] is True
        assert settings_under(DEBUG="0")["DEBUG"] is False
        assert settings_under(DEBUG=" ")["DEBUG"] is True

    def test_dyno_without_secret_key_has_no_usable_key(self) -> None:
        """No fallback to the public development key on a dyno: using the key fails."""
        values = settings_under(DYNO="web.1")

        assert values["SECRET_KEY"] == (
            "ImproperlyConfigured: The SECRET_KEY setting must not be empty."
        )
