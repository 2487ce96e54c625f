"""What the dyno says about the release it runs, where Heroku provides it.

`HEROKU_RELEASE_VERSION` and `HEROKU_SLUG_COMMIT` exist only with
`heroku labs:enable runtime-dyno-metadata`; `DYNO` names the dyno (`release.1234`, `run.5678`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DynoMetadata:
    release_version: str
    slug_commit: str
    dyno: str


def dyno_metadata() -> DynoMetadata:
    return DynoMetadata(
        release_version=os.environ.get("HEROKU_RELEASE_VERSION", "")[:64],
        slug_commit=os.environ.get("HEROKU_SLUG_COMMIT", "")[:64],
        dyno=os.environ.get("DYNO", ""),
    )
