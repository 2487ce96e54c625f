from __future__ import annotations

from django.apps import AppConfig


class LoginRecordsConfig(AppConfig):
    name = "tests.login_records"
    label = "login_records"
    default_auto_field = "django.db.models.BigAutoField"
