from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from release import text
from release.apply import preview_release
from release.decision.history import history_alias
from release.exceptions import ReleaseError
from release.models import Logout
from release.report import decision_lines


def next_release_lines() -> list[str]:
    """The status view's forecast, without counting the sessions (a page view must be quick)."""
    try:
        return list(decision_lines(preview_release(count=False)))
    except ReleaseError as error:
        return [f"The next release would fail: {text.one_line(error)}"]


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
        "duration",
        "code_marker",
        "config_marker",
        "release_version",
        "triggered_by",
    ]
    list_filter = ["kind", "logged_out", ("applied_at", admin.DateFieldListFilter)]
    date_hierarchy = "applied_at"
    search_fields = ["reason", "code_marker", "config_marker", "triggered_by", "slug_commit"]
    ordering = ["-epoch"]

    @admin.display(description="Took", ordering="duration_seconds")
    def duration(self, record: Logout) -> str:
        return text.duration(record.duration_seconds)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Logout]:
        # Where the commands write the history: a replica may not have the newest rows yet.
        return super().get_queryset(request).using(history_alias())

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(
            request, {**(extra_context or {}), "next_release": next_release_lines()}
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
