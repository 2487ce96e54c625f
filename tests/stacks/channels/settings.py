"""The example project served by Django Channels: HTTP through Django's ASGI app, websockets
through Channels' AuthMiddlewareStack (see `asgi`). The guard is the example's session engine,
`SESSION_ENGINE = "release.sessions"`, which Channels' SessionMiddleware builds its store from."""

from __future__ import annotations

from example_project.settings import *  # noqa: F403
from example_project.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "channels"]

ASGI_APPLICATION = "tests.stacks.channels.asgi.application"
