"""Each recipe in docs/platforms, run as its platform runs it, as far as this machine allows.

For each platform: its build (the Dockerfile's steps through docs/platforms/image.sh for Fly.io and
Kubernetes, the build command of Render and Railway, the Python buildpack's for Dokku, the source
bundle with its .ebextensions for Elastic Beanstalk), then two deploys through its release step,
with the environment its files set and the secrets its section of docs/platforms/README.md has
the operator set: the first records the markers, the second, with a new FORCE_LOGOUT_ON_DEPLOY,
logs everyone out. Then its web command (gunicorn, on a free port of 127.0.0.1 in place of the
platform's PORT) answers requests as the platform's router sends them: the Host header of the
app's domain, X-Forwarded-Proto.

The database is a fresh one on the local PostgreSQL: straight to it where the platform's database
does not require TLS; with TLS required where the recipe requires it (the local server must offer
TLS: `bash tests/services/postgres_tls.sh`), after checking that the same release step refuses a
server without TLS; and for Dokku through `NoTlsFront`, a server without TLS as dokku-postgres
runs it. What is not run here (the platforms' schedulers, Helm's hooks, the load balancers) is
said in docs/platforms/README.md next to each recipe.

Needs PostgreSQL at E2E_POSTGRES_URL (default postgres@127.0.0.1:5432), else skipped; the image
tests need none.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from tests.e2e.harness import (
    BOOT_TIMEOUT,
    HTTP_TIMEOUT,
    POSTGRES_URL,
    SLUG_CONTENTS,
    STOP_TIMEOUT,
    Builder,
    Completed,
    Database,
    free_port,
    run_dyno,
    signal_group,
)
from tests.procfile import ROOT, procfile
from tests.recipes import (
    EB_EXTENSIONS,
    EB_HEALTH_CHECK_HOST,
    EB_PROCFILE,
    IMAGE_PLATFORMS,
    IMAGE_SH,
    MARKER,
    RELEASE_ENV,
    RELEASE_JOB,
    RUN_PLATFORMS,
    WEB,
    WEB_ENV,
    Secrets,
    dockerfile_env,
    dockerfile_instructions,
    eb_command,
    eb_config,
    fly,
    helm_kind,
    host_of,
    only_container,
    railway,
    railway_deploy,
    render_web,
    requires_tls,
)

pytestmark = pytest.mark.platforms

NEW_MARKER = "2026-11-25-incident"
PASSWORD = "platforms: correct horse battery staple"
NO_TLS_ERROR = "server does not support SSL, but SSL was required"
ATTACKER_HOST = "attacker.example"
# What a build copies of the repository: the Python buildpacks', Render's and Railway's builders
# install requirements.txt, then run the example from these.
SOURCE = (*SLUG_CONTENTS, "requirements.txt")


# The servers.


@pytest.fixture(scope="module")
def postgres_server() -> str:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as error:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL} (E2E_POSTGRES_URL): {error}")
    return POSTGRES_URL


@pytest.fixture(scope="module")
def server_offers_tls(postgres_server: str) -> bool:
    with psycopg.connect(postgres_server, connect_timeout=3) as connection:
        row = connection.execute("SHOW ssl").fetchone()
    return row is not None and row[0] == "on"


SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


class NoTlsFront:
    """A PostgreSQL server that offers no TLS, as the official postgres image runs by default.

    It listens on a port of its own in front of the local server: it answers "N" to a client's
    request for TLS (or for GSSAPI encryption), as such a server does, then passes the
    connection through to the local server in the clear. libpq then goes on without TLS, or,
    asked to require it, gives up with "server does not support SSL, but SSL was required".
    """

    def __init__(self, upstream_url: str) -> None:
        parts = urllib.parse.urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.refused_tls = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, name="no-tls-front", daemon=True).start()

    def url(self, database_url: str) -> str:
        """The same database's URL, through this front."""
        parts = urllib.parse.urlsplit(database_url)
        userinfo, _, _ = parts.netloc.rpartition("@")
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return parts._replace(netloc=netloc).geturl()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            open_sockets = [self._listener, *self._sockets]
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                sock.close()
                return False
            self._sockets.add(sock)
            return True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._track(client):
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                header = _receive(client, 8)
                length, code = struct.unpack("!ii", header)
                if length == 8 and code in (SSL_REQUEST, GSSENC_REQUEST):
                    with self._lock:
                        self.refused_tls += 1
                    client.sendall(b"N")
                    continue
                break
            upstream = socket.create_connection(self._upstream, timeout=10)
            upstream.settimeout(None)
            if not self._track(upstream):
                return
            with self._lock:
                self.connections += 1
            upstream.sendall(header)
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
            _pipe(upstream, client)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@pytest.fixture(scope="module")
def no_tls_front(postgres_server: str) -> Iterator[NoTlsFront]:
    front = NoTlsFront(postgres_server)
    try:
        yield front
    finally:
        front.close()


# The builds.


@dataclass(frozen=True)
class Image:
    """What docs/platforms/image.sh made of the Dockerfile: the image's WORKDIR, and its output."""

    app: Path
    output: str

    @property
    def trace(self) -> list[str]:
        """The instructions image.sh ran, as it printed them, white space folded."""
        return [" ".join(line[2:].split()) for line in self.output.splitlines() if line[:2] == "+ "]


def base_env(**env: str) -> dict[str, str]:
    """PATH with this interpreter first, HOME, and `env`: nothing else of the test run."""
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.defpath}", "HOME": "/tmp", **env}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The Dockerfile's image, built without Docker. Its RUN steps must not see the caller's
    environment: a settings module and a database that do not exist are there to show it."""
    out = tmp_path_factory.mktemp("image")
    result = subprocess.run(
        ["bash", str(IMAGE_SH), str(out)],
        cwd=ROOT,
        env=base_env(
            DJANGO_SETTINGS_MODULE="no.such.settings",
            DATABASE_URL="postgres://nobody@127.0.0.1:1/none",
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return Image(out / "app", result.stdout)


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    return Builder(tmp_path_factory.mktemp("slugs"))


def copy_source(target: Path) -> Path:
    """What a platform checks out of the repository to build the example from."""
    target.mkdir(parents=True)
    for name in SOURCE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    return target


@dataclass(frozen=True)
class Deployment:
    """A platform's build of the example, and the commands it runs from it."""

    platform: str
    cwd: Path
    release: list[str]  # the release step's commands, in order, each to its end
    web: str
    image_env: dict[str, str]  # what the image's ENV sets for every container run from it

    def env(self, secrets: Secrets, marker: str | None, step: str, **extra: str) -> dict[str, str]:
        recipe = {"release": RELEASE_ENV, "web": WEB_ENV}[step][self.platform](secrets, marker)
        return base_env(**{**self.image_env, **recipe, **extra})

    def deploy(self, secrets: Secrets, marker: str | None) -> list[Completed]:
        """One deploy's release step: its commands in order, stopping at the first that fails."""
        results = []
        for command in self.release:
            result = run_dyno(command, self.cwd, self.env(secrets, marker, "release"))
            results.append(result)
            if not result.ok:
                break
        return results


def build(
    platform: str,
    workdir: Path,
    secrets: Secrets,
    image: Image | None,
    builder: Builder,
) -> Deployment:
    """The platform's build of this repository, as the recipe has the platform make it."""
    if platform in IMAGE_PLATFORMS:
        assert image is not None
        if platform == "fly":
            release, web = [fly()["deploy"]["release_command"]], fly()["processes"]["app"]
        else:
            job = only_container(helm_kind(RELEASE_JOB, "Job"))
            deployment = only_container(helm_kind(WEB, "Deployment"))
            release, web = [shlex.join(job["command"])], shlex.join(deployment["command"])
        return Deployment(platform, image.app, release, web, dockerfile_env())
    if platform == "dokku":
        # The Python buildpack: requirements, then collectstatic; the root Procfile's lines.
        slug = builder.build(1)
        return Deployment(platform, slug.path, [slug.command("release")], slug.command("web"), {})
    source = copy_source(workdir / platform)
    if platform == "elastic-beanstalk":
        # The source bundle: .ebextensions at its root, the recipe's Procfile as its Procfile.
        # The platform installs requirements.txt, then on each deployment runs the container
        # commands in the order of their names (the leader runs the leader_only ones too).
        shutil.copytree(EB_EXTENSIONS, source / ".ebextensions")
        shutil.copy2(EB_PROCFILE, source / "Procfile")
        commands = eb_config()["container_commands"]
        release = [eb_command(commands[name]["command"]) for name in sorted(commands)]
        return Deployment(platform, source, release, procfile(source / "Procfile")["web"], {})
    # Render and Railway build with the service's variables, then run their build command.
    if platform == "render":
        service = render_web()
        build_command = service["buildCommand"]
        release, web = [service["preDeployCommand"]], service["startCommand"]
    else:
        build_command = railway()["build"]["buildCommand"]
        deploy = railway_deploy()
        release, web = list(deploy["preDeployCommand"]), deploy["startCommand"]
    built = run_dyno(build_command, source, base_env(**RELEASE_ENV[platform](secrets, None)))
    assert built.ok, f"The {platform} build failed: {built}"
    return Deployment(platform, source, release, web, {})


# The web.


@dataclass(frozen=True)
class Response:
    status: int
    location: str | None
    body: str
    cookies: dict[str, str]  # name: the Set-Cookie header that sets it


def fetch(
    port: int,
    host: str,
    path: str = "/",
    *,
    https: bool = True,
    form: Mapping[str, str] | None = None,
    cookies: Mapping[str, str] | None = None,
) -> Response:
    """A request as the platform's router forwards it: the visitor's Host, and whether the visitor
    came over HTTPS in X-Forwarded-Proto (the platform terminates TLS). A form is POSTed as a
    browser posts it from the same site, with the Origin that Django's CSRF check compares."""
    headers = {"Host": host, **({"X-Forwarded-Proto": "https"} if https else {})}
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers["Origin"] = f"{'https' if https else 'http'}://{host}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    try:
        connection.request("POST" if form is not None else "GET", path, body, headers)
        response = connection.getresponse()
        set_cookies = {
            header.split("=", 1)[0]: header for header in response.headers.get_all("Set-Cookie", [])
        }
        return Response(
            response.status, response.getheader("Location"), response.read().decode(), set_cookies
        )
    finally:
        connection.close()


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


@contextlib.contextmanager
def serve(command: str, cwd: Path, env: Mapping[str, str], host: str, log: Path) -> Iterator[int]:
    """The web command, run until the block ends; yields its port once it answers for `host`.
    Stopped as the platforms stop a container: SIGTERM, then SIGKILL after a grace period."""
    port = int(env["PORT"])
    with log.open("ab") as output:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail() -> str:
        return "\n".join(log.read_text(errors="replace").splitlines()[-40:])

    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            assert process.poll() is None, f"`{command}` exited {process.returncode}:\n{tail()}"
            with contextlib.suppress(OSError):
                fetch(port, host)
                break
            assert time.monotonic() < deadline, f"`{command}` did not answer:\n{tail()}"
            time.sleep(0.1)
        yield port
    finally:
        signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT)
        signal_group(process, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)


# What the database says.


def decision(results: list[Completed]) -> str:
    for result in results:
        for line in result.stdout.splitlines():
            if line.startswith("Decision: "):
                return line.removeprefix("Decision: ")
    raise AssertionError(f"No decision in the release step's output: {results}")


def history(database: Database) -> list[tuple[bool, str | None]]:
    rows = database.rows("SELECT logged_out, config_marker FROM release_logout ORDER BY epoch")
    return [(bool(logged_out), marker) for logged_out, marker in rows]


def create_user(database: Database, username: str, password: str) -> None:
    """A user, as `createsuperuser` would make one, with a cheap hash the example verifies."""
    encoded = PBKDF2PasswordHasher().encode(password, secrets.token_hex(8), iterations=1000)
    database.rows(
        "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, "
        "is_staff, is_active, date_joined) "
        "VALUES (%s, false, %s, '', '', '', false, true, now()) RETURNING id",
        encoded,
        username,
    )


def tables(database: Database) -> int:
    rows = database.rows("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    return int(rows[0][0])


def other_connections_tls(database: Database) -> list[bool]:
    """Whether each connection to the database but this one uses TLS."""
    rows = database.rows(
        "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
        "WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"
    )
    return [bool(ssl) for (ssl,) in rows]


# The tests.


class TestImage:
    """docs/platforms/image.sh: the Dockerfile's steps, in its order, without Docker."""

    def test_runs_every_instruction_of_the_dockerfile_in_order(self, image: Image) -> None:
        assert image.trace == [" ".join(line.split()) for line in dockerfile_instructions()]

    def test_the_image_holds_the_example_and_its_static_files(self, image: Image) -> None:
        manifest = image.app / "staticfiles" / "staticfiles.json"

        assert {path.name for path in image.app.iterdir()} == {
            "requirements.txt",
            "manage.py",
            "release",
            "example_project",
            "staticfiles",
        }
        assert re.search(
            r'"admin/css/base\.css": "admin/css/base\.[0-9a-f]{12}\.css"', manifest.read_text()
        )

    def test_stops_at_an_instruction_it_does_not_know(self, tmp_path: Path) -> None:
        dockerfile = tmp_path / "Dockerfile"
        dockerfile.write_text("FROM python:3.13-slim\nWORKDIR /app\nUSER nobody\nRUN touch ran\n")

        result = subprocess.run(
            ["bash", str(IMAGE_SH), str(tmp_path / "out")],
            cwd=ROOT,
            env=base_env(DOCKERFILE=str(dockerfile)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 1
        assert "USER: not an instruction this script knows" in result.stderr
        assert not (tmp_path / "out" / "app" / "ran").exists()


@pytest.mark.parametrize("platform", RUN_PLATFORMS)
def test_recipe_releases_logs_out_and_serves(
    platform: str,
    request: pytest.FixtureRequest,
    postgres_server: str,
    server_offers_tls: bool,
    no_tls_front: NoTlsFront,
    builder: Builder,
    tmp_path: Path,
) -> None:
    tls = requires_tls(platform)
    if tls and not server_offers_tls:
        pytest.skip(
            f"{platform}'s recipe requires TLS to PostgreSQL, which {postgres_server} does not "
            "offer: run `bash tests/services/postgres_tls.sh`"
        )
    image = request.getfixturevalue("image") if platform in IMAGE_PLATFORMS else None
    database = Database(postgres_server)
    try:
        direct = Secrets(database.url, secrets.token_urlsafe(50))
        without_tls = Secrets(no_tls_front.url(database.url), direct.secret_key)
        # Dokku's database offers no TLS: every connection goes through the front.
        secrets_ = without_tls if platform == "dokku" else direct
        front_before = (no_tls_front.refused_tls, no_tls_front.connections)
        deployment = build(platform, tmp_path, secrets_, image, builder)

        if tls:
            # The release step refuses a database that offers no TLS rather than connect in the
            # clear, and does nothing there.
            refused = deployment.deploy(without_tls, None)
            assert [result.ok for result in refused] == [False], refused
            assert NO_TLS_ERROR in refused[0].stderr, refused[0]
            assert tables(database) == 0

        first = deployment.deploy(secrets_, None)
        assert all(result.ok for result in first), first
        assert decision(first).startswith("record the markers; this is the first release")
        assert history(database) == [(False, None)]
        database.rows(
            "INSERT INTO django_session (session_key, session_data, expire_date) "
            "VALUES (%s, '', now() + interval '1 day') RETURNING session_key",
            secrets.token_hex(16),
        )

        second = deployment.deploy(secrets_, NEW_MARKER)
        assert all(result.ok for result in second), second
        assert decision(second).startswith("log everyone out; FORCE_LOGOUT_ON_DEPLOY is")
        assert history(database) == [(False, None), (True, NEW_MARKER)]
        assert database.rows("SELECT count(*) FROM django_session") == [(0,)]

        web_env = deployment.env(secrets_, NEW_MARKER, "web", PORT=str(free_port()))
        assert web_env[MARKER] == NEW_MARKER
        host = host_of(platform, web_env)
        create_user(database, "alice", PASSWORD)
        log = tmp_path / f"{platform}-web.log"
        with serve(deployment.web, deployment.cwd, web_env, host, log) as port:
            # Production mode: plain HTTP goes to HTTPS, and cookies go over HTTPS only.
            plain = fetch(port, host, https=False)
            assert (plain.status, plain.location) == (301, f"https://{host}/")
            form = fetch(port, host, "/accounts/login/")
            assert form.status == 200, form
            assert "; Secure" in form.cookies["csrftoken"]
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.body)
            assert token, form.body
            csrf = cookie_value(form.cookies["csrftoken"])
            fields = {"csrfmiddlewaretoken": token.group(1), "username": "alice"}
            signed_in = fetch(
                port,
                host,
                "/accounts/login/",
                form={**fields, "password": PASSWORD, "next": ""},
                cookies={"csrftoken": csrf},
            )
            assert (signed_in.status, signed_in.location) == (302, "/"), signed_in
            assert "; Secure" in signed_in.cookies["sessionid"]
            session = cookie_value(signed_in.cookies["sessionid"])
            home = fetch(port, host, cookies={"sessionid": session})
            assert "Signed in as <strong>alice</strong>." in home.body, home
            if web_env.get("DJANGO_ALLOWED_HOSTS"):
                assert fetch(port, ATTACKER_HOST).status == 400
            if platform == "elastic-beanstalk":
                # The load balancer's health check: the instance's address, plain HTTP.
                check = fetch(port, EB_HEALTH_CHECK_HOST, https=False)
                assert (check.status, check.location) == (301, f"https://{EB_HEALTH_CHECK_HOST}/")
            connections = other_connections_tls(database)
        assert connections, "the web processes hold no connection to the database"
        if tls:
            assert all(connections), connections
        if platform == "dokku":
            # libpq asked for TLS (sslmode=prefer), was told no, and went on in the clear.
            assert not any(connections), connections
            assert no_tls_front.refused_tls > front_before[0]
            assert no_tls_front.connections > front_before[1]
    finally:
        database.drop()
