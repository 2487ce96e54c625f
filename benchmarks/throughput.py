"""Requests per second of the example project under gunicorn, with the tool's session guard
(`SESSION_ENGINE = "release.sessions"`) and with the engine it wraps, signed in and
anonymous, by wrk on 127.0.0.1. Each round runs wrk against one server, then the other; the
ratio is the median of the rounds' ratios."""

from __future__ import annotations

import re
import shutil
import socket
import statistics
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from benchmarks import proc
from benchmarks.config import PYTHON, ROOT, Options
from benchmarks.methods import Backend, runner

USERNAME, PASSWORD = "bench", "bench-password-7a1c"
VARIANTS = ("release", "django")  # BENCH_SESSION_ENGINE: with the tool, without it
PAGES = ("anonymous", "signed_in")


@dataclass
class Throughput:
    seconds: float
    connections: int
    workers: int
    rounds: int
    # variant -> page -> requests per second, one per round (the two variants back to back)
    rps: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: dict[str, dict[str, int]] = field(default_factory=dict)  # non-2xx/3xx, socket
    skipped: str | None = None
    error: str | None = None

    def median(self, variant: str, page: str) -> float | None:
        values = self.rps.get(variant, {}).get(page, [])
        return statistics.median(values) if values else None

    def ratio(self, page: str) -> float | None:
        """The median of the rounds' ratios: each round runs both servers back to back."""
        with_tool = self.rps.get("release", {}).get(page, [])
        without = self.rps.get("django", {}).get(page, [])
        pairs = [a / b for a, b in zip(with_tool, without, strict=False) if b]
        return statistics.median(pairs) if pairs else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "median": {v: {p: self.median(v, p) for p in PAGES} for v in VARIANTS},
            "ratio": {p: self.ratio(p) for p in PAGES},
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer {url} in {timeout:.0f} s")


def sign_in(base: str) -> str:
    """Sign in through the login form, as a browser does; returns the session cookie."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/accounts/login/", timeout=10) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if not token:
        raise RuntimeError("no CSRF token in the login page")
    form = urllib.parse.urlencode(
        {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)}
    ).encode()
    with opener.open(f"{base}/accounts/login/", data=form, timeout=30):
        pass
    session = next((c.value for c in jar if c.name == "sessionid"), None)
    if not session:
        raise RuntimeError("signing in gave no session cookie")
    request = urllib.request.Request(f"{base}/whoami/", headers={"Cookie": f"sessionid={session}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = response.read().decode()
    if USERNAME not in answer:
        raise RuntimeError(f"the session cookie does not sign in: {answer!r}")
    return session


def wrk(url: str, seconds: float, connections: int, cookie: str | None) -> tuple[float, int]:
    """Requests per second, and the requests that failed or were not 2xx/3xx."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url]
    if cookie:
        argv[1:1] = ["-H", f"Cookie: sessionid={cookie}"]
    result = proc.run(argv, {"PATH": "/usr/bin:/bin:/usr/local/bin"}, seconds + 60)
    if not result.ok:
        raise RuntimeError(f"wrk: {result.failure()}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if not rps:
        raise RuntimeError(f"no Requests/sec in wrk's output: {result.stdout[-500:]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", result.stdout)
    socket_errors = re.search(r"Socket errors:.*?timeout (\d+)", result.stdout)
    failed = (int(bad.group(1)) if bad else 0) + (
        int(socket_errors.group(1)) if socket_errors else 0
    )
    return float(rps.group(1)), failed


def gunicorn(backend: Backend, variant: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = backend.bench_env(BENCH_SESSION_ENGINE=variant, WEB_CONCURRENCY="2")
    with log.open("ab") as stream:
        return subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "--config",
                "example_project/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "--access-logfile",
                "/dev/null",
                "example_project.wsgi",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stream,
            stderr=stream,
            start_new_session=True,
        )


def measure_throughput(backend: Backend, options: Options) -> Throughput:
    """Both servers run side by side (the idle one costs nothing); wrk alternates between
    them in short slices, so that what else the machine does weighs on both alike."""
    result = Throughput(
        seconds=options.http_seconds,
        connections=options.http_connections,
        workers=2,
        rounds=options.http_rounds,
    )
    if not shutil.which("wrk"):
        result.skipped = "wrk is not installed (apt-get install wrk)"
        return result
    made = proc.run(runner("make-user", USERNAME, PASSWORD), backend.bench_env(), 120)
    if not made.ok:
        result.error = f"making the user: {made.failure()}"
        return result
    log = backend.workdir / "gunicorn.log"
    servers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        bases, cookies = {}, {}
        for variant in VARIANTS:
            port = free_port()
            bases[variant] = f"http://127.0.0.1:{port}"
            servers[variant] = gunicorn(backend, variant, port, log)
        for variant in VARIANTS:
            wait_until_up(f"{bases[variant]}/", servers[variant])
            cookies[variant] = sign_in(bases[variant])
            for cookie in (None, cookies[variant]):  # warm both workers up, both pages
                wrk(f"{bases[variant]}/", 2.0, options.http_connections, cookie)
        for page in PAGES:
            for round_ in range(options.http_rounds):
                for variant in VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]:
                    rps, failed = wrk(
                        f"{bases[variant]}/",
                        options.http_seconds,
                        options.http_connections,
                        cookies[variant] if page == "signed_in" else None,
                    )
                    result.rps.setdefault(variant, {}).setdefault(page, []).append(rps)
                    errors = result.errors.setdefault(variant, {})
                    errors[page] = errors.get(page, 0) + failed
    except Exception as error:  # reported, and the suite goes on
        result.error = f"{error} (see {log})"
    finally:
        for server in servers.values():
            proc.stop(server)
    return result
