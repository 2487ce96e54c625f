"""The example project: its pages over the test client, its static files, its settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.asserts import assertContains, assertRedirects

from tests.conftest import ROOT, run_manage

if TYPE_CHECKING:
    # What the test client returns; it exists only in django-stubs.
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

PASSWORD = "correct horse battery staple"
STATUS = re.compile(r'<p id="status">(.*?)</p>', re.DOTALL)

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


def status(response: Response) -> str:
    """The text of the home page's status line, without its markup."""
    assert response.status_code == 200
    match = STATUS.search(response.content.decode())
    assert match, response.content.decode()
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


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
