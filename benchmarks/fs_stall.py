"""How long this machine's filesystem makes a small write's fdatasync wait while a big file is
deleted: what every COMMIT (PostgreSQL's WAL, InnoDB's redo log) waits for while a TRUNCATE's
old files are freed.

    python -m benchmarks.fs_stall DIR [MB]

DIR: a folder on the database's filesystem (for example /var/lib/postgresql). It writes a file
of MB megabytes (default 400, about a million sessions' table), then deletes it while another
thread appends 512 bytes and calls fdatasync every 2 ms, and prints the worst fdatasync before
and during the deletion. Both files are removed at the end.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path


def main(folder: Path, megabytes: int) -> None:
    big, small = folder / "fs-stall-big.tmp", folder / "fs-stall-small.tmp"
    with big.open("wb") as f:
        for _ in range(megabytes):
            f.write(os.urandom(1 << 20))
        f.flush()
        os.fsync(f.fileno())
    syncs: list[tuple[float, float]] = []
    stop = threading.Event()

    def syncing() -> None:
        fd = os.open(small, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while not stop.is_set():
                started = time.monotonic()
                os.write(fd, b"x" * 512)
                os.fdatasync(fd)
                syncs.append((started, time.monotonic() - started))
                time.sleep(0.002)
        finally:
            os.close(fd)

    thread = threading.Thread(target=syncing)
    thread.start()
    try:
        time.sleep(1)
        deleting = time.monotonic()
        big.unlink()
        deleted = time.monotonic()
        time.sleep(1)
    finally:
        stop.set()
        thread.join()
        big.unlink(missing_ok=True)
        small.unlink(missing_ok=True)
    before = max(d for t, d in syncs if t < deleting)
    during = max(d for t, d in syncs if deleting <= t < deleted + 0.5)
    print(
        f"deleting {megabytes} MB took {(deleted - deleting) * 1000:.0f} ms; worst fdatasync "
        f"before {before * 1000:.1f} ms, during and just after {during * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 400)
