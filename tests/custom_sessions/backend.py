from __future__ import annotations

from django.contrib.sessions.backends.db import SessionStore as DBStore

from tests.custom_sessions.models import UserSession


class SessionStore(DBStore):
    @classmethod
    def get_model_class(cls) -> type[UserSession]:
        return UserSession
