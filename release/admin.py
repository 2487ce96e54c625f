from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest

from release.models import Logout

if TYPE_CHECKING:
    LogoutAdminBase = admin.ModelAdmin[Logout]
else:
    LogoutAdminBase = admin.ModelAdmin


@admin.register(Logout)
class LogoutAdmin(LogoutAdminBase):
    """The history, read-only: rows are added by the commands and never edited or deleted."""

    list_display = [
        "epoch",
        "applied_at",
        "kind",
        "logged_out",
        "sessions_removed",
        "duration_seconds",
        "code_marker",
        "config_marker",
        "release_version",
        "triggered_by",
    ]
    list_filter = ["kind", "logged_out", ("applied_at", admin.DateFieldListFilter)]
    date_hierarchy = "applied_at"
    search_fields = ["reason", "code_marker", "config_marker", "triggered_by", "slug_commit"]
    ordering = ["-epoch"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
