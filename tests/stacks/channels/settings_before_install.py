"""The same project before it installed the tool: no `release` app, Django's own session engine.

The stack test builds a slug whose `settings.py` is this file, to make a session before the
install, as a real project's users have.
"""

from __future__ import annotations

from example_project.settings import *  # noqa: F403
from example_project.settings import INSTALLED_APPS

INSTALLED_APPS = [*(app for app in INSTALLED_APPS if app != "release"), "channels"]

SESSION_ENGINE = "django.contrib.sessions.backends.db"

ASGI_APPLICATION = "tests.stacks.channels.asgi.application"
