"""The ASGI application of the Channels stack: Django for HTTP, Channels for websockets."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.stacks.channels.settings")
# Django first: Channels' middleware imports models.
django_asgi_app = get_asgi_application()

from channels.auth import (  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: E402
    AuthMiddlewareStack,
)
from channels.routing import (  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: E402
    ProtocolTypeRouter,
    URLRouter,
)
from channels.security.websocket import (  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: E402
    AllowedHostsOriginValidator,
)
from django.urls import path  # noqa: E402

from tests.stacks.channels.consumers import WhoAmI  # noqa: E402
from tests.stacks.channels.served_by import serving_by  # noqa: E402

WEBSOCKET_PATH = "ws/whoami/"

application = ProtocolTypeRouter(
    {
        "http": serving_by(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path(WEBSOCKET_PATH, WhoAmI.as_asgi())]))
        ),
    }
)
