"""The process types of a Procfile, read as Heroku reads them: `type: command` lines."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROCESS_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PROCESS_LINE.match(line)
        assert match, f"Not a Procfile process line in {path}: {line!r}"
        name, command = match.groups()
        assert name not in processes, f"Process type {name!r} declared twice in {path}"
        processes[name] = command.strip()
    return processes
