"""A session engine whose model belongs to no installed app, as django-user-sessions' engine is
where 'user_sessions' is not in INSTALLED_APPS: importing it raises Django's RuntimeError."""

from __future__ import annotations

from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.contrib.sessions.base_session import AbstractBaseSession


class OrphanSession(AbstractBaseSession):
    pass


class SessionStore(DBStore):
    @classmethod
    def get_model_class(cls) -> type[OrphanSession]:
        return OrphanSession
