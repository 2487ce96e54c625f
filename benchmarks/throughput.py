"""Requests per second of the example project under gunicorn with the tool's session guard
(`SESSION_ENGINE = "release.sessions"`) against the engine it wraps, told apart to 2 %.

What wrk counts on a shared two-core machine swings by a tenth from one run to the next: wrk,
the database and whatever else runs compete for the same cores. What a request costs the server
swings far less, above all when the servers compared are measured at the same moments: the suite
reads the CPU time of each server's gunicorn worker before and after every wrk run and divides it
by the requests the worker answered. The comparison is the ratio of those costs, the plain
engine's over the guard's: the guard's requests/s as a share of the plain engine's where the
worker's CPU is the limit, as on a web dyno, whose database runs elsewhere (the database's own
CPU is not counted).

- CPU time: the kernel's CPU clock of each worker process (clock_getcpuclockid(3)), in
  nanoseconds, of all its threads, those that ended too (under a sync worker the async view runs
  its event loop in a thread of its own), summed over the server's workers.
- Requests: those wrk sent (a wrk script counts them). The worker answers every one, also those
  still queued when wrk stops, which wrk's own count leaves out.
- Servers: three, each with one sync worker: with the guard, without it, and without it again,
  identical, for the A/A calibration. Each round loads the three at once, one wrk each, on each
  page in turn, for a few seconds (`--http-seconds`); wrk starts in an order that turns from
  round to round. Loaded together, the servers live through the same moments of a busy machine,
  which the ratio then cancels; taken in turn, they did not, and the rounds' ratios spread by
  ±10 %. Fresh server processes every few rounds spread what one process happens to cost more
  than another over the rounds.
- Pinning (`taskset`): the three workers on the last core the suite may use, the wrk processes
  on the first; the database is not pinned. The workers share their co-runners on that core, and
  wrk takes none of its time. Taking turns on one core, each worker spends more CPU time on a
  request than a lone worker would (1.4 to 2 times on a busy two-core machine: it refills
  the caches the others emptied), alike for all three.
- Result per page: the median of the rounds' ratios and its 95 % bootstrap interval; the A/A
  ratio must come out at 1.00 with an interval within ±HTTP_CALIBRATION (0.02), or the method
  cannot judge 2 % on this machine, and the suite says so.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from benchmarks import proc
from benchmarks.config import HTTP_CALIBRATION, PYTHON, ROOT, Options
from benchmarks.methods import Backend, runner

USERNAME, PASSWORD = "bench", "bench-password-7a1c"
# The servers: with the tool, without it, and without it again for the A/A calibration.
VARIANTS = ("release", "django", "django_twin")
ENGINE_OF = {"release": "release", "django": "django", "django_twin": "django"}
# Comparison name -> (the server measured, the server it is measured against).
COMPARISONS = {"guard": ("release", "django"), "calibration": ("django_twin", "django")}
# Page -> (path, signed in).
PAGES = {
    "anonymous": ("/", False),
    "signed_in": ("/", True),
    "async_signed_in": ("/whoami/", True),
}
PAGE_WORDS = {
    "anonymous": "`/` anonymous",
    "signed_in": "`/` signed in",
    "async_signed_in": "`/whoami/` signed in (async view)",
}
BOOTSTRAP_RESAMPLES = 2000
WRK_ENV = {"PATH": "/usr/bin:/bin:/usr/local/bin"}


@dataclass
class Estimate:
    """The median of the rounds' ratios and its 95 % bootstrap interval."""

    median: float
    low: float
    high: float
    rounds: int

    def within(self, tolerance: float) -> bool:
        return 1 - tolerance <= self.low and self.high <= 1 + tolerance

    def text(self) -> str:
        return f"{self.median:.3f}x ({self.low:.3f} to {self.high:.3f})"


def median_interval(values: list[float], seed: int = 0) -> Estimate:
    """The median of `values` and the 2.5th and 97.5th percentiles of the medians of
    BOOTSTRAP_RESAMPLES resamples (a fixed seed: the same values give the same interval)."""
    rng = random.Random(seed)
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(BOOTSTRAP_RESAMPLES)
    )
    low = medians[round(0.025 * BOOTSTRAP_RESAMPLES)]
    high = medians[round(0.975 * BOOTSTRAP_RESAMPLES) - 1]
    return Estimate(statistics.median(values), low, high, len(values))


@dataclass
class Throughput:
    seconds: float
    connections: int
    workers: int
    rounds: int
    refresh: int  # rounds between fresh server processes
    pinning: str = ""  # where the servers and wrk ran
    # variant -> page -> one value per round
    requests: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # answered
    cpu_ns: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # the workers'
    rps: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # wrk's Requests/sec
    errors: dict[str, dict[str, int]] = field(default_factory=dict)  # non-2xx/3xx, socket
    skipped: str | None = None
    error: str | None = None

    def record(self, variant: str, page: str, run: Run) -> None:
        self.requests.setdefault(variant, {}).setdefault(page, []).append(run.requests)
        self.cpu_ns.setdefault(variant, {}).setdefault(page, []).append(run.cpu_ns)
        self.rps.setdefault(variant, {}).setdefault(page, []).append(run.rps)
        errors = self.errors.setdefault(variant, {})
        errors[page] = errors.get(page, 0) + run.failed

    def _per_request(self, variant: str, page: str) -> list[float | None]:
        cpu = self.cpu_ns.get(variant, {}).get(page, [])
        requests = self.requests.get(variant, {}).get(page, [])
        return [ns / 1000 / n if n else None for ns, n in zip(cpu, requests, strict=True)]

    def cpu_per_request(self, variant: str, page: str) -> list[float]:
        """Microseconds of the workers' CPU per request, one value per round."""
        return [us for us in self._per_request(variant, page) if us is not None]

    def median_cpu_us(self, variant: str, page: str) -> float | None:
        values = self.cpu_per_request(variant, page)
        return statistics.median(values) if values else None

    def median_rps(self, variant: str, page: str) -> float | None:
        values = self.rps.get(variant, {}).get(page, [])
        return statistics.median(values) if values else None

    def ratio(self, page: str, comparison: str = "guard") -> Estimate | None:
        """The measured server's requests/s as a share of the other's, from each round's CPU
        per request: the other's over the measured one's."""
        measured, against = COMPARISONS[comparison]
        pairs = zip(
            self._per_request(measured, page), self._per_request(against, page), strict=True
        )
        ratios = [b / a for a, b in pairs if a and b]
        return median_interval(ratios) if ratios else None

    def calibrated(self, page: str) -> bool | None:
        """Whether the A/A run on `page` can judge 2 %; None where it was not measured."""
        estimate = self.ratio(page, "calibration")
        return None if estimate is None else estimate.within(HTTP_CALIBRATION)

    def as_dict(self) -> dict[str, Any]:
        def estimate(page: str, comparison: str) -> dict[str, Any] | None:
            found = self.ratio(page, comparison)
            return None if found is None else dict(found.__dict__)

        return {
            **self.__dict__,
            "cpu_us_per_request": {
                v: {p: self.median_cpu_us(v, p) for p in PAGES} for v in VARIANTS
            },
            "median_rps": {v: {p: self.median_rps(v, p) for p in PAGES} for v in VARIANTS},
            "ratio": {c: {p: estimate(p, c) for p in PAGES} for c in COMPARISONS},
            "calibrated": {p: self.calibrated(p) for p in PAGES},
        }


@dataclass
class Run:
    """One wrk run against one server."""

    requests: int  # that the server answered: those wrk sent
    rps: float  # wrk's Requests/sec, of the responses it received
    failed: int
    cpu_ns: int = 0  # of the server's workers


@dataclass
class Server:
    variant: str
    base: str
    process: subprocess.Popen[bytes]
    workers: list[int] = field(default_factory=list)
    cookie: str = ""

    def find_workers(self, expected: int) -> None:
        """The gunicorn master's children: its workers."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        self.workers = sorted(int(pid) for pid in children.read_text().split())
        if len(self.workers) != expected:
            raise RuntimeError(
                f"The {self.variant} server has {len(self.workers)} workers, not {expected}."
            )

    def cpu_ns(self) -> int:
        total = 0
        for pid in self.workers:
            try:
                # clock_getcpuclockid(3)'s clock of the process: CPUCLOCK_SCHED (2), not
                # per thread.
                total += time.clock_gettime_ns((~pid << 3) | 2)
            except OSError as error:
                raise RuntimeError(
                    f"A worker of the {self.variant} server ({pid}) is gone: gunicorn replaced "
                    "it during the measurement (see the server's log)."
                ) from error
        return total

    def settled_cpu_ns(self, timeout: float = 1.0) -> int:
        """The workers' CPU time once they are idle: after wrk stops, a worker still answers
        the requests left queued, one a connection."""
        deadline = time.monotonic() + timeout
        last = self.cpu_ns()
        while time.monotonic() < deadline:
            time.sleep(0.01)
            now = self.cpu_ns()
            if now == last:
                break
            last = now
        return last

    def url(self, page: str) -> str:
        return f"{self.base}{PAGES[page][0]}"

    def cookie_of(self, page: str) -> str | None:
        return self.cookie if PAGES[page][1] else None


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
    check_signed_in(base, session)
    return session


def check_signed_in(base: str, session: str) -> None:
    request = urllib.request.Request(f"{base}/whoami/", headers={"Cookie": f"sessionid={session}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = response.read().decode()
    if USERNAME not in answer:
        raise RuntimeError(f"the session cookie does not sign in: {answer!r}")


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


# Counts the requests wrk sends. wrk calls request() once more, on its first thread, to check
# what it returns before the run: that one is never sent.
COUNT_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) sent = 0 end
function request() sent = sent + 1 return wrk.request() end
function done(summary, latency, requests)
  local total = -1
  for _, thread in ipairs(threads) do total = total + thread:get("sent") end
  io.write(string.format("Requests sent: %d\\n", total))
end
"""


def wrk(
    url: str,
    seconds: float,
    connections: int,
    cookie: str | None,
    script: Path,
    cpu: int | None = None,
) -> Run:
    """One wrk run: the requests it sent, its requests/s, and the requests that failed or were
    not 2xx/3xx."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script)]
    if cookie:
        argv += ["-H", f"Cookie: sessionid={cookie}"]
    result = proc.run(pinned([*argv, url], cpu), WRK_ENV, seconds + 60)
    if not result.ok:
        raise RuntimeError(f"wrk: {result.failure()}")
    completed = re.search(r"(\d+) requests in ", result.stdout)
    sent = re.search(r"Requests sent: (\d+)", result.stdout)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if not completed or not sent or not rps:
        raise RuntimeError(f"no request counts in wrk's output: {result.stdout[-500:]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", result.stdout)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", result.stdout
    )
    lost = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    unanswered = int(sent.group(1)) - int(completed.group(1))
    if not 0 <= unanswered <= connections + lost:
        raise RuntimeError(
            f"wrk sent {sent.group(1)} requests and received {completed.group(1)} answers, "
            f"with {connections} connections: its script miscounts."
        )
    failed = (int(bad.group(1)) if bad else 0) + (
        int(socket_errors.group(4)) if socket_errors else 0
    )
    return Run(int(sent.group(1)), float(rps.group(1)), failed)


def cpus() -> tuple[int | None, int | None, str]:
    """The cores for wrk and for the servers, and a sentence saying so."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None, "not pinned: the suite may use only one core"
    if not shutil.which("taskset"):
        return None, None, "not pinned: taskset is not installed (util-linux)"
    wrk_cpu, server_cpu = allowed[0], allowed[-1]
    return wrk_cpu, server_cpu, f"servers on core {server_cpu}, wrk on core {wrk_cpu} (taskset)"


def gunicorn(
    backend: Backend, variant: str, port: int, workers: int, cpu: int | None, log: Path
) -> subprocess.Popen[bytes]:
    env = backend.bench_env(
        BENCH_SESSION_ENGINE=ENGINE_OF[variant],
        WEB_CONCURRENCY=str(workers),
        # One hash seed for every server, so that their dictionaries are laid out alike.
        PYTHONHASHSEED="0",
    )
    argv = [
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
    ]
    with log.open("ab") as stream:
        return subprocess.Popen(
            pinned(argv, cpu),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stream,
            stderr=stream,
            start_new_session=True,
        )


def load_together(
    servers: list[Server],
    page: str,
    seconds: float,
    connections: int,
    script: Path,
    cpu: int | None,
) -> list[Run]:
    """Load every server with a wrk of its own at the same time; each run with the CPU time the
    server's workers spent on it."""
    before = [server.settled_cpu_ns() for server in servers]
    with ThreadPoolExecutor(len(servers)) as pool:
        futures = [
            pool.submit(
                wrk, server.url(page), seconds, connections, server.cookie_of(page), script, cpu
            )
            for server in servers
        ]
        runs = [future.result() for future in futures]
    for server, start, run in zip(servers, before, runs, strict=True):
        run.cpu_ns = server.settled_cpu_ns() - start
    return runs


def start_servers(
    backend: Backend,
    workers: int,
    cpu: int | None,
    log: Path,
    cookies: dict[str, str],
    script: Path,
    wrk_cpu: int | None,
    connections: int,
) -> list[Server]:
    """Start the servers, sign in on each (once: `cookies` keeps the sessions for the servers
    started later) and warm their workers up on every page."""
    servers: list[Server] = []
    try:
        for variant in VARIANTS:
            port = free_port()
            process = gunicorn(backend, variant, port, workers, cpu, log)
            servers.append(Server(variant, f"http://127.0.0.1:{port}", process))
        for server in servers:
            wait_until_up(f"{server.base}/", server.process)
            if server.variant in cookies:
                check_signed_in(server.base, cookies[server.variant])
            else:
                cookies[server.variant] = sign_in(server.base)
            server.cookie = cookies[server.variant]
            server.find_workers(workers)
        for page in PAGES:
            load_together(servers, page, 1, connections, script, wrk_cpu)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: list[Server]) -> None:
    for server in servers:
        proc.stop(server.process)


def measure_throughput(backend: Backend, options: Options) -> Throughput:
    result = Throughput(
        seconds=max(1, round(options.http_seconds)),
        connections=options.http_connections,
        workers=options.http_workers,
        rounds=options.http_rounds,
        refresh=options.http_refresh,
    )
    if not shutil.which("wrk"):
        result.skipped = "wrk is not installed (apt-get install wrk)"
        return result
    made = proc.run(runner("make-user", USERNAME, PASSWORD), backend.bench_env(), 120)
    if not made.ok:
        result.error = f"making the user: {made.failure()}"
        return result
    wrk_cpu, server_cpu, result.pinning = cpus()
    script = backend.workdir / "count-requests.lua"
    script.write_text(COUNT_SCRIPT)
    log = backend.workdir / "gunicorn.log"
    cookies: dict[str, str] = {}
    servers: list[Server] = []

    def start() -> list[Server]:
        return start_servers(
            backend,
            options.http_workers,
            server_cpu,
            log,
            cookies,
            script,
            wrk_cpu,
            options.http_connections,
        )

    try:
        orders = list(itertools.permutations(range(len(VARIANTS))))
        for round_ in range(options.http_rounds):
            # Fresh processes now and then: what one process happens to cost more or less
            # than another (its memory layout) weighs on a few rounds, not on all.
            if round_ % max(1, options.http_refresh) == 0:
                stop_servers(servers)
                servers = start()
            for page_index, page in enumerate(PAGES):
                # wrk starts in an order that turns from round to round.
                order = [servers[i] for i in orders[(round_ + page_index) % len(orders)]]
                runs = load_together(
                    order, page, result.seconds, options.http_connections, script, wrk_cpu
                )
                for server, run in zip(order, runs, strict=True):
                    result.record(server.variant, page, run)
    except Exception as error:  # reported, and the suite goes on
        result.error = f"{error} (see {log})"
    finally:
        stop_servers(servers)
    return result
