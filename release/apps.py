from __future__ import annotations

from django.apps import AppConfig


class ReleaseConfig(AppConfig):
    name = "release"
    verbose_name = "Release logouts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from release import checks

        checks.register()
