"""A local Heroku: builds, apps, releases, the release phase and web dynos, as Heroku runs them.

- A build (`Slug`) is a copy of this repository's code with its static files collected, as the
  Python buildpack makes one. Builds differ by the `FORCE_LOGOUT_VERSION` line of their settings.
- A `Release` is a build plus a copy of the app's config vars. A deploy, `config:set`, a rollback,
  `releases:retry` and a promotion each make one and run the `release:` command of the build's
  Procfile with its config vars as the environment, against the app's own PostgreSQL database.
- A release phase that exits non-zero fails the release: the running web is left alone. Otherwise
  the `web:` command (gunicorn) starts from the build on a port of 127.0.0.1, once the old web has
  stopped, or beside it with preboot, until `App.end_preboot()`.

Every process is started in a session of its own and stopped as Heroku stops a dyno: SIGTERM to
the whole group, SIGKILL to what is left when the grace period ends. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import html
import http.cookiejar
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.client import HTTPResponse
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from tests.procfile import procfile

ROOT = Path(__file__).resolve().parents[2]

# What `git push heroku main` sends that the app runs: the rest is tests, docs and tooling.
SLUG_CONTENTS = ("manage.py", "Procfile", "example_project", "release")
SETTINGS = Path("example_project", "settings.py")
CODE_MARKER_LINE = re.compile(r"^FORCE_LOGOUT_VERSION = 1$", re.MULTILINE)

POSTGRES_URL = os.environ.get("E2E_POSTGRES_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("E2E_REDIS_URL") or "redis://127.0.0.1:6379/13"

PASSWORD = "e2e: correct horse battery staple"
# What the Python buildpack sets from the dyno's memory; two workers read their epoch apart.
WEB_CONCURRENCY = "2"

RELEASE_TIMEOUT = 120.0
STATEMENT_TIMEOUT = "-c statement_timeout=30s"
BOOT_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
HTTP_TIMEOUT = 20.0


def dyno_env(config: Mapping[str, str], **dyno: str) -> dict[str, str]:
    """A dyno's environment: the buildpack's PATH, the app's config vars, the dyno's own.

    Nothing else is inherited from the test run: in particular not DJANGO_SETTINGS_MODULE, and
    not DYNO, which makes the example redirect to HTTPS.
    """
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.defpath}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "true",
        **config,
        **dyno,
    }


def free_port() -> int:
    """A port free on every address, as gunicorn binds `[::]:$PORT` (IPv4 too)."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        probe.bind(("::", 0))
        return int(probe.getsockname()[1])


def signal_group(process: subprocess.Popen[Any], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


@dataclass(frozen=True)
class Completed:
    """A command that ran to its end in a one-off dyno."""

    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def __str__(self) -> str:
        return f"`{self.command}` exited {self.returncode}:\n{self.stdout}{self.stderr}"


def run_dyno(command: str, cwd: Path, env: Mapping[str, str]) -> Completed:
    """Run a Procfile-style command with `bash -c`, as a one-off dyno does, to its end."""
    with subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=RELEASE_TIMEOUT)
        except subprocess.TimeoutExpired:
            signal_group(process, signal.SIGKILL)
            stdout, stderr = process.communicate(timeout=STOP_TIMEOUT)
            raise AssertionError(
                f"`{command}` did not finish in {RELEASE_TIMEOUT:.0f} s:\n{stdout}{stderr}"
            ) from None
    return Completed(command, process.returncode, stdout, stderr)


@dataclass(frozen=True)
class Slug:
    """A build of the app: the code that its release phase and its web dynos run."""

    path: Path
    code_marker: int | str
    commit: str

    def command(self, process_type: str) -> str:
        """The Procfile's command for `process_type`, read from the build as Heroku reads it."""
        commands = procfile(self.path / "Procfile")
        assert process_type in commands, f"The Procfile has no {process_type!r} line: {commands}"
        return commands[process_type]


class Builder:
    """Builds slugs from this repository's code, as the Python buildpack does."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._compiled: Path | None = None
        self._builds = 0

    def build(self, code_marker: int | str) -> Slug:
        """A new build whose settings say `FORCE_LOGOUT_VERSION = code_marker`."""
        self._builds += 1
        path = self.workdir / f"build-{self._builds}"
        shutil.copytree(self._compile(), path)
        settings = path / SETTINGS
        text, found = CODE_MARKER_LINE.subn(
            f"FORCE_LOGOUT_VERSION = {code_marker!r}", settings.read_text()
        )
        assert found == 1, f"{SETTINGS} has no line `FORCE_LOGOUT_VERSION = 1` to change"
        settings.write_text(text)
        return Slug(path, code_marker, secrets.token_hex(20))

    def _compile(self) -> Path:
        """The code with its static files collected, once: every build has the same ones."""
        if self._compiled is None:
            compiled = self.workdir / "compiled"
            compiled.mkdir()
            for name in SLUG_CONTENTS:
                source = ROOT / name
                if source.is_dir():
                    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                    shutil.copytree(source, compiled / name, ignore=ignore)
                else:
                    shutil.copy2(source, compiled / name)
            collected = run_dyno(
                "python manage.py collectstatic --no-input", compiled, dyno_env({})
            )
            assert collected.ok, f"The build failed: {collected}"
            self._compiled = compiled
        return self._compiled


class Database:
    """A PostgreSQL database of its own, as the Heroku Postgres add-on gives each app."""

    def __init__(self, server_url: str) -> None:
        self.name = f"release_e2e_{uuid.uuid4().hex}"
        self.url = urllib.parse.urlsplit(server_url)._replace(path=f"/{self.name}").geturl()
        self._server_url = server_url
        self._on_server("CREATE DATABASE {}")

    def drop(self) -> None:
        self._on_server("DROP DATABASE IF EXISTS {} WITH (FORCE)")

    def rows(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, connect_timeout=10, options=STATEMENT_TIMEOUT) as connection:
            return connection.execute(query, params).fetchall()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The database drops its connections and refuses new ones until the block ends."""
        self._on_server("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false")
        try:
            with self._server() as server:
                server.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (self.name,),
                )
            yield
        finally:
            self._on_server("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true")

    def _on_server(self, statement: str) -> None:
        with self._server() as server:
            server.execute(sql.SQL(statement).format(sql.Identifier(self.name)))

    def _server(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            self._server_url, autocommit=True, connect_timeout=10, options=STATEMENT_TIMEOUT
        )


@dataclass
class Release:
    """What Heroku calls a release: a build and a copy of the config vars, numbered per app."""

    version: int
    slug: Slug
    config: dict[str, str]
    description: str
    phase: Completed | None = None

    @property
    def name(self) -> str:
        return f"v{self.version}"

    @property
    def succeeded(self) -> bool:
        return self.phase is not None and self.phase.ok

    @property
    def output(self) -> str:
        """What the release phase printed, as `heroku releases:output` shows it."""
        assert self.phase is not None, f"{self.name} has not run its release phase"
        return self.phase.stdout + self.phase.stderr

    @property
    def decision(self) -> str:
        """What the release command decided: `Decision: <this>; <why>.` in its output."""
        for line in self.output.splitlines():
            if line.startswith("Decision: "):
                return line.removeprefix("Decision: ").split(";")[0]
        raise AssertionError(f"{self.name}'s release phase printed no decision: {self.phase}")

    def env(self, **dyno: str) -> dict[str, str]:
        """The environment of this release's dynos, with runtime-dyno-metadata enabled."""
        return dyno_env(
            self.config,
            HEROKU_RELEASE_VERSION=self.name,
            HEROKU_SLUG_COMMIT=self.slug.commit,
            **dyno,
        )

    def __str__(self) -> str:
        return f"{self.name} ({self.description})"


class Web:
    """A web dyno: the Procfile's `web:` command run from a release's build, on 127.0.0.1."""

    def __init__(self, release: Release, port: int, log: Path) -> None:
        self.release = release
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._stopped = False
        with log.open("ab") as output:
            self._process = subprocess.Popen(
                ["bash", "-c", release.slug.command("web")],
                cwd=release.slug.path,
                env=release.env(PORT=str(port), WEB_CONCURRENCY=WEB_CONCURRENCY),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        """As Heroku stops a dyno: SIGTERM to its processes, SIGKILL after the grace period."""
        if self._stopped:
            return
        self._stopped = True
        signal_group(self._process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(STOP_TIMEOUT)
        signal_group(self._process, signal.SIGKILL)
        self._process.wait(STOP_TIMEOUT)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                raise AssertionError(
                    f"The web of {self.release} exited {self._process.returncode} while "
                    f"starting:\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/", timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(
            f"The web of {self.release} did not answer on {self.url} in {BOOT_TIMEOUT:.0f} s:\n"
            f"{self.log_tail()}"
        )

    def __str__(self) -> str:
        return f"the web of {self.release.name} on port {self.port}"


class Event(NamedTuple):
    """A row of the app's history table, `release_logout`."""

    kind: str
    logged_out: bool
    code_marker: str | None
    config_marker: str | None
    release: str


class App:
    """A Heroku app: its config vars, its own database, its releases and its web dynos."""

    def __init__(self, name: str, workdir: Path, database: Database, config: Mapping[str, str]):
        self.name = name
        self.database = database
        self.config = {
            "DATABASE_URL": database.url,
            # app.json's `secret` generator: one key for the app, kept by every release.
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DEBUG": "false",
            **config,
        }
        self.releases: list[Release] = []
        self.webs: list[Web] = []
        self._workdir = workdir
        self._port = free_port()

    @property
    def web(self) -> Web:
        """The newest web, the one a deploy or a restart started last."""
        assert self.webs, f"{self.name} has no web running"
        return self.webs[-1]

    # The Heroku commands.

    def deploy(self, slug: Slug, *, preboot: bool = False) -> Release:
        """`git push heroku main`, or a promotion to this app: the build, this app's config."""
        release = self.release_phase(slug, self.config, f"Deploy {slug.commit[:7]}")
        if release.succeeded:
            self.boot(release, preboot=preboot)
        return release

    def config_set(self, **values: str) -> Release:
        self.config.update(values)
        return self._redeploy(f"Set {', '.join(values)} config vars")

    def config_unset(self, *names: str) -> Release:
        for name in names:
            del self.config[name]
        return self._redeploy(f"Remove {', '.join(names)} config vars")

    def rollback(self, to: Release) -> Release:
        """`heroku rollback`: the code and the config vars of `to`, in a new release."""
        self.config = dict(to.config)
        release = self.release_phase(to.slug, to.config, f"Rollback to {to.name}")
        if release.succeeded:
            self.boot(release)
        return release

    def retry(self) -> Release:
        """`heroku releases:retry`: the latest release's build and config again."""
        latest = self.releases[-1]
        release = self.release_phase(latest.slug, latest.config, f"Retry of {latest.name}")
        if release.succeeded:
            self.boot(release)
        return release

    def restart(self) -> Web:
        """`heroku ps:restart`: new processes of the same release, no release phase."""
        release = self.web.release
        self._stop_webs()
        return self._start(release, self._port)

    def end_preboot(self) -> None:
        """Preboot's switch-over ends: every web but the newest stops."""
        newest = self.web
        for web in self.webs[:-1]:
            web.stop()
        self.webs = [newest]

    def run(self, command: str, **env: str) -> Completed:
        """`heroku run --env ...`: a one-off dyno of the newest web's release."""
        release = self.web.release
        return run_dyno(command, release.slug.path, release.env(**env))

    # The steps of a deploy, for the tests that act between them.

    def release_phase(self, slug: Slug, config: Mapping[str, str], description: str) -> Release:
        """A new release, and its release phase run to its end; no web changes."""
        release = Release(len(self.releases) + 1, slug, dict(config), description)
        self.releases.append(release)
        release.phase = run_dyno(slug.command("release"), slug.path, release.env())
        return release

    def boot(self, release: Release, *, preboot: bool = False) -> Web:
        """Start the release's web: after the old ones stop, or beside them with preboot."""
        assert release.succeeded, f"{release} failed its release phase, which stops the deploy"
        if preboot:
            return self._start(release, free_port())
        self._stop_webs()
        return self._start(release, self._port)

    # What the app's data says.

    def create_users(self, *usernames: str) -> None:
        """Users with the password PASSWORD, made from a one-off dyno's Django shell."""
        script = (
            "import os; from django.contrib.auth.models import User; "
            "[User.objects.create_user(name, password=os.environ['E2E_PASSWORD']) "
            "for name in os.environ['E2E_USERS'].split()]"
        )
        result = self.run(
            f"python manage.py shell -c {shlex.quote(script)}",
            E2E_USERS=" ".join(usernames),
            E2E_PASSWORD=PASSWORD,
        )
        assert result.ok, f"Could not create the users {usernames}: {result}"

    def history(self) -> list[Event]:
        rows = self.database.rows(
            "SELECT kind, logged_out, code_marker, config_marker, release_version "
            "FROM release_logout ORDER BY epoch"
        )
        return [Event(*row) for row in rows]

    def logouts(self) -> list[str]:
        """The releases that logged everyone out, oldest first."""
        return [event.release for event in self.history() if event.logged_out]

    def applied_markers(self) -> set[tuple[str, str]]:
        return set(self.database.rows("SELECT kind, value FROM release_appliedmarker"))

    def stored_sessions(self) -> int:
        return int(self.database.rows("SELECT count(*) FROM django_session")[0][0])

    def destroy(self) -> None:
        """`heroku apps:destroy`: its dynos stop and its database goes."""
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(self.database.drop)
            cleanup.callback(self._stop_webs)

    def _redeploy(self, description: str) -> Release:
        """The release a config change makes: the running build, the new config vars."""
        release = self.release_phase(self.web.release.slug, self.config, description)
        if release.succeeded:
            self.boot(release)
        return release

    def _start(self, release: Release, port: int) -> Web:
        log = self._workdir / f"{self.name}-web-{len(self.webs) + 1}-{release.name}.log"
        web = Web(release, port, log)
        self.webs.append(web)
        self._port = port
        return web

    def _stop_webs(self) -> None:
        with contextlib.ExitStack() as stops:
            for web in self.webs:
                stops.callback(web.stop)
            self.webs = []


class Heroku:
    """The apps of one test and everything they started, all stopped and dropped by close()."""

    def __init__(self, builder: Builder, workdir: Path, postgres_url: str) -> None:
        self.builder = builder
        self.workdir = workdir
        self.postgres_url = postgres_url
        self.apps: list[App] = []

    def build(self, code_marker: int | str) -> Slug:
        return self.builder.build(code_marker)

    def create_app(self, name: str, **config: str) -> App:
        """`heroku create` with the Heroku Postgres add-on, and these config vars."""
        app = App(name, self.workdir, Database(self.postgres_url), config)
        self.apps.append(app)
        return app

    def promote(self, source: App, target: App) -> Release:
        """`heroku pipelines:promote`: `source`'s running build, released on `target`."""
        return target.deploy(source.web.release.slug)

    def close(self) -> None:
        with contextlib.ExitStack() as cleanup:
            for app in self.apps:
                cleanup.callback(app.destroy)
            self.apps = []


@dataclass(frozen=True)
class Page:
    status: int
    location: str | None
    body: str
    # Which process answered and what it held, where the server says (X-Served-By).
    served_by: str | None = None


class _EveryResponse(urllib.request.HTTPErrorProcessor):
    """Hands back every response as it came: redirects are not followed, errors not raised."""

    def http_response(self, request: urllib.request.Request, response: HTTPResponse) -> Any:
        return response

    https_response = http_response


@dataclass
class Visitor:
    """One person with a browser over HTTP: a cookie jar, the sign-in page, "who am I?".

    Cookies belong to a host, not to a port, in browsers and in `http.cookiejar` alike: the one
    jar goes to every web of an app, all on 127.0.0.1, as a browser's goes to one host name.
    """

    username: str
    cookies: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def sign_in(self, web: Web) -> None:
        form = self._request(web, "/accounts/login/")
        assert form.status == 200, f"The sign-in page on {web} answered {form.status}"
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.body)
        assert token, f"The sign-in page on {web} has no CSRF token:\n{form.body}"
        fields = {
            "csrfmiddlewaretoken": html.unescape(token.group(1)),
            "username": self.username,
            "password": PASSWORD,
            "next": "",
        }
        done = self._request(web, "/accounts/login/", fields)
        assert (done.status, done.location) == (302, "/"), (
            f"{self.username} could not sign in on {web}: {done.status}\n{done.body[:2000]}"
        )

    def who_am_i(self, web: Web) -> str | None:
        """The username the home page says this visitor is signed in as, or None."""
        return self.signed_in_as(self.home_page(web), web)

    def home_page(self, web: Web) -> Page:
        page = self._request(web, "/")
        assert page.status == 200, f"The home page on {web} answered {page.status}"
        return page

    @staticmethod
    def signed_in_as(page: Page, web: Web) -> str | None:
        signed_in = re.search(r"Signed in as <strong>(.*?)</strong>\.", page.body)
        if signed_in:
            return html.unescape(signed_in.group(1))
        assert "You are not signed in." in page.body, f"Unexpected home page on {web}:\n{page.body}"
        return None

    def _request(self, web: Web, path: str, form: Mapping[str, str] | None = None) -> Page:
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _EveryResponse()
        )
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        with opener.open(f"{web.url}{path}", data=data, timeout=HTTP_TIMEOUT) as response:
            return Page(
                response.status,
                response.headers["Location"],
                response.read().decode(),
                response.headers["X-Served-By"],
            )
