from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Model


class TestRouter:
    """Sends every model to `settings.TEST_ROUTE_TO`, to act as another app's database."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return settings.TEST_ROUTE_TO

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return settings.TEST_ROUTE_TO


class ReadsElsewhereRouter:
    """Django's documented primary/replica router, with the `pipeline` database standing for a
    replica that has none of the primary's rows."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        return "pipeline"

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return "default"
