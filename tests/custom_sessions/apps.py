from __future__ import annotations

from django.apps import AppConfig


class CustomSessionsConfig(AppConfig):
    name = "tests.custom_sessions"
    label = "custom_sessions"
    default_auto_field = "django.db.models.BigAutoField"
