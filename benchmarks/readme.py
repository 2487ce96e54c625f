"""Puts a full run's tables into the README.

    python -m benchmarks.readme RUN_DIR [--readme README.md]

RUN_DIR is a run's output folder (`--out`). The README's line that names the machine and the
command becomes the run's, everything from its "#### Targets" to "## License" becomes the run's
results.md from "### Targets" on (one heading level down), and the run's clear-time.png is copied
to docs/. The prose between them cites the run's numbers by hand: read it again after.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from benchmarks.config import REPORT_TITLE, ROOT

RUN_LINE = re.compile(
    r"^Measured with nothing else running: .*? Command:\n`python -m benchmarks[^`]*` \([^)]*\)\.$",
    re.MULTILINE,
)
TABLES_START, TABLES_END = "#### Targets", "\n## License"


class SpliceError(Exception):
    pass


def spliced(readme: str, results: str) -> str:
    """The README with the run line and the tables of `results` (a run's results.md)."""
    machine, _, rest = results.partition("\n\nCommand: ")
    machine = machine.removeprefix(f"{REPORT_TITLE}\n\n")
    command, found, rest = rest.partition("\n\n### Targets\n")
    if not found or "\n" in machine or "\n" in command:
        raise SpliceError(
            "The results file does not start with the machine, the command and '### Targets': "
            "pass the folder of a run of `python -m benchmarks` (its results.md)."
        )
    if len(RUN_LINE.findall(readme)) != 1:
        raise SpliceError(
            "The README has no single line 'Measured with nothing else running: ... Command:' "
            "followed by the command: restore it before splicing."
        )
    run_line = f"Measured with nothing else running: {machine} Command:\n{command}"
    readme = RUN_LINE.sub(lambda _: run_line, readme)
    start, end = readme.find(TABLES_START), readme.find(TABLES_END)
    if start < 0 or end < start:
        raise SpliceError(f"The README has no {TABLES_START!r} before {TABLES_END.strip()!r}.")
    tables = re.sub(r"^###", "####", "### Targets\n" + rest, flags=re.MULTILINE)
    return readme[:start] + tables.rstrip("\n") + "\n" + readme[end:]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.readme", description=__doc__)
    p.add_argument("run", type=Path, help="the run's output folder")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = p.parse_args(argv)
    try:
        text = spliced(args.readme.read_text(), (args.run / "results.md").read_text())
    except (OSError, SpliceError) as error:
        print(f"benchmarks.readme: {error}", file=sys.stderr)
        return 1
    args.readme.write_text(text)
    plot = args.run / "clear-time.png"
    if plot.exists():
        shutil.copyfile(plot, args.readme.parent / "docs" / "clear-time.png")
    print(f"updated {args.readme}" + (" and docs/clear-time.png" if plot.exists() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
