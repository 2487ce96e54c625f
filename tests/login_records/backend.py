"""The session engine of `LoginSession`, the table the other models of this app refer to."""

from __future__ import annotations

from django.contrib.sessions.backends.db import SessionStore as DBStore

from tests.login_records.models import LoginSession


class SessionStore(DBStore):
    @classmethod
    def get_model_class(cls) -> type[LoginSession]:
        return LoginSession
