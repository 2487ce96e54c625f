"""A custom database session engine as a project might write one: a `SessionBase` of its own,
with no get_model_class(), that reaches its model through the models module, so that no session
model is in this module's namespace either. Only RELEASE_SESSION_MODEL can tell the release
where its sessions are ("custom_sessions.UserSession").
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError, IntegrityError, router, transaction
from django.utils import timezone

from tests.custom_sessions import models


class SessionStore(SessionBase):
    def load(self) -> dict[str, Any]:
        try:
            row = models.UserSession.objects.get(
                session_key=self.session_key, expire_date__gt=timezone.now()
            )
        except (models.UserSession.DoesNotExist, SuspiciousOperation):
            self._session_key = None
            return {}
        data: dict[str, Any] = self.decode(row.session_data)
        return data

    def exists(self, session_key: str) -> bool:
        return models.UserSession.objects.filter(session_key=session_key).exists()

    def create(self) -> None:
        while True:
            self._session_key = self._get_new_session_key()  # type: ignore[attr-defined]
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            self.create()
            return
        row = models.UserSession(
            session_key=self.session_key,
            session_data=self.encode(self._get_session(no_load=must_create)),  # type: ignore[attr-defined]
            expire_date=self.get_expiry_date(),
        )
        using = router.db_for_write(models.UserSession, instance=row)
        try:
            with transaction.atomic(using=using):
                row.save(force_insert=must_create, force_update=not must_create, using=using)
        except IntegrityError:
            if must_create:
                raise CreateError from None
            raise
        except DatabaseError:
            if not must_create:
                raise UpdateError from None
            raise

    def delete(self, session_key: str | None = None) -> None:
        key = session_key or self.session_key
        if key is not None:
            models.UserSession.objects.filter(session_key=key).delete()

    @classmethod
    def clear_expired(cls) -> None:
        models.UserSession.objects.filter(expire_date__lt=timezone.now()).delete()
