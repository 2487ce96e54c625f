from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.utils.module_loading import import_string

from release.guard import guarded_store_class


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's SessionMiddleware, with the session guard (`release.guard`) on its store.

    Use it in place of `django.contrib.sessions.middleware.SessionMiddleware`.
    """

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.SessionStore = guarded_store_class(self.SessionStore)


DJANGO_SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
GUARD_MIDDLEWARE = "release.middleware.SessionMiddleware"


def installed_session_middleware() -> tuple[bool, bool]:
    """Whether MIDDLEWARE has (the guard's SessionMiddleware, Django's plain one)."""
    guard = plain = False
    for path in settings.MIDDLEWARE:
        try:
            middleware = import_string(path)
        except ImportError:
            continue  # Django's own check reports it
        if isinstance(middleware, type) and issubclass(middleware, SessionMiddleware):
            guard = True
        elif isinstance(middleware, type) and issubclass(middleware, DjangoSessionMiddleware):
            plain = True
    return guard, plain
