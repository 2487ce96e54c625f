"""`python -I -S benchmarks/launch.py REPORT_FD COMMAND...`: run COMMAND, then write to the file
descriptor REPORT_FD when it started and ended (time.monotonic()), its wait status and its peak
resident set size in KB, as wait4() gives them.

The suite starts each command through this small process because on Linux a process's peak counts
the memory of the one that started it: a child made by fork or vfork starts with its parent's
pages, and exec keeps that address space's high-water mark. Started from the suite's own process,
70-80 MB, every command measured at least that; the release itself peaks at 47-68 MB. This
process holds about 10 MB, less than any Python command it starts. It imports nothing of the
suite, so that it stays that small.
"""

from __future__ import annotations

import os
import sys
import time


def main() -> None:
    report_fd, argv = int(sys.argv[1]), sys.argv[2:]
    started = time.monotonic()
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    ended = time.monotonic()
    os.write(report_fd, f"{started} {ended} {status} {usage.ru_maxrss}\n".encode())
    os._exit(0)


if __name__ == "__main__":
    main()
