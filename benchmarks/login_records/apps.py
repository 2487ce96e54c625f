from __future__ import annotations

from django.apps import AppConfig


class LoginRecordsConfig(AppConfig):
    name = "benchmarks.login_records"
    label = "bench_logins"
    default_auto_field = "django.db.models.BigAutoField"
