"""A custom session engine in the style of django-user-sessions and django-qsessions."""

from __future__ import annotations

from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models


class UserSession(AbstractBaseSession):
    user_agent = models.CharField(max_length=200, blank=True)

    @classmethod
    def get_session_store_class(cls) -> type:
        from tests.custom_sessions.backend import SessionStore

        return SessionStore
