"""The session engine of `LooseSession`, which only a foreign key without a constraint and with
on_delete=DO_NOTHING refers to."""

from __future__ import annotations

from django.contrib.sessions.backends.db import SessionStore as DBStore

from tests.login_records.models import LooseSession


class SessionStore(DBStore):
    @classmethod
    def get_model_class(cls) -> type[LooseSession]:
        return LooseSession
