"""The ways the suite runs Django's session tests."""

from __future__ import annotations

# Django's engines as they are.
PLAIN = "plain"
# The guard around each engine, in a database where no release ever ran: nothing to enforce,
# nothing stamped (test cases that forbid queries cannot read the stamp at all).
GUARDED_NEW = "guarded-before-release"
# The guard around each engine, in a process that read its stamp after a logout: every key it
# makes and every cookie it signs carries the stamp, and every session it loads is checked.
GUARDED = "guarded-after-logout"

MODES = (PLAIN, GUARDED_NEW, GUARDED)
GUARDED_MODES = (GUARDED_NEW, GUARDED)

# FORCE_LOGOUT_VERSION of the release that installs the tool, and of the runs (the next).
FIRST_MARKER = 1
MARKER = 2

MODE_VARIABLE = "DJANGO_SUITE_MODE"
OUT_VARIABLE = "DJANGO_SUITE_OUT"
