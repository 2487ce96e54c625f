"""One run of Django's `tests/runtests.py`, in this process, with the suite's settings:
`python -m tests.django_suite.child TESTS_DIR MODE OUT [LABEL...]`."""

from __future__ import annotations

import os
import runpy
import sys

from tests.django_suite.modes import MODE_VARIABLE, MODES, OUT_VARIABLE


def main(argv: list[str]) -> None:
    tests_dir, mode, out, *labels = argv
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    os.environ[MODE_VARIABLE] = mode
    os.environ[OUT_VARIABLE] = out
    runtests = os.path.join(tests_dir, "runtests.py")
    # As `python runtests.py` has it: its own directory first on the path (for its test apps),
    # then this repository (for `release` and these settings).
    sys.path.insert(0, tests_dir)
    sys.argv = [
        runtests,
        *labels,
        "--settings=tests.django_suite.settings",
        "--parallel=1",
        "--noinput",
        "--verbosity=1",
    ]
    runpy.run_path(runtests, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
