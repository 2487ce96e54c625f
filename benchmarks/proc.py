"""Running one command: its wall time, its peak memory, and a timeout it cannot outlive."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from benchmarks.config import ROOT


@dataclass
class Command:
    argv: list[str]
    returncode: int | None
    seconds: float
    peak_rss_mb: float  # NaN when it timed out: killed with the process that measures it
    stdout: str
    stderr: str
    timed_out: bool
    started: float  # time.monotonic() when it started, comparable across processes
    ended: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def failure(self) -> str:
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s"
        tail = (self.stderr.strip() or self.stdout.strip()).splitlines()[-3:]
        return f"exit code {self.returncode}: {' / '.join(tail)}"


LAUNCHER = ROOT / "benchmarks" / "launch.py"


def run(argv: list[str], env: dict[str, str], timeout: float) -> Command:
    """Run `argv` in the repository root; kill its process group after `timeout` seconds.

    The command's start, end and peak resident set size come from benchmarks/launch.py, a small
    process that starts it and reads wait4(), the kernel's own account of that process (and of
    children it waited for): from this process, the peak would count this one's memory too.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as report,
    ):
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(LAUNCHER), str(report.fileno()), *argv],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            pass_fds=(report.fileno(),),
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            # The process has not been reaped yet (see below), so its group still exists.
            with contextlib.suppress(ProcessLookupError):  # it ended at that very moment
                os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            # Wait for the exit without reaping it, so that the timer can never signal a
            # process group whose number was given to someone else; then reap with wait4.
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
            ended = time.monotonic()
        finally:
            timer.cancel()
            timer.join()
        _, status, _ = os.wait4(process.pid, 0)
        peak_rss_mb = math.nan
        report.seek(0)
        account = report.read().split()
        if account:  # the launcher saw the command end
            started, ended = float(account[0]), float(account[1])
            status = int(account[2])
            peak_rss_mb = int(account[3]) / 1024  # kilobytes on Linux
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Command(
            argv=argv,
            returncode=process.returncode,
            seconds=ended - started,
            peak_rss_mb=peak_rss_mb,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            timed_out=timed_out.is_set(),
            started=started,
            ended=ended,
        )


def stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM a process started in its own session, then SIGKILL its group after `grace`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
