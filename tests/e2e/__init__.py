"""End-to-end deploys: Heroku's release lifecycle, reproduced locally over real HTTP."""

from __future__ import annotations
