from __future__ import annotations

from django.db import models
from django.utils import timezone


class Logout(models.Model):
    """One applied event: the install baseline, a marker-triggered logout or a forced logout.

    Rows are only ever added, by the release and force_logout commands; the admin shows them
    read-only.
    """

    class Kind(models.TextChoices):
        INSTALL = "install", "First release with the tool"
        MARKERS = "markers", "A marker changed"
        FORCED = "forced", "Forced by an operator"

    applied_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # How many logouts this database had applied after this event. A session is stamped with
    # the epoch its process enforces, and refused where a newer epoch is enforced.
    epoch = models.PositiveBigIntegerField(unique=True)
    logged_out = models.BooleanField()
    reason = models.TextField()
    code_marker = models.TextField(null=True, blank=True)
    config_marker = models.TextField(null=True, blank=True)
    session_engine = models.CharField(max_length=255)
    # None where the engine cannot count what it removed.
    sessions_removed = models.BigIntegerField(null=True, blank=True)
    duration_seconds = models.FloatField(default=0.0)
    release_version = models.CharField(max_length=64, blank=True)
    slug_commit = models.CharField(max_length=64, blank=True)
    triggered_by = models.CharField(max_length=255)

    class Meta:
        ordering = ["-epoch"]
        get_latest_by = "epoch"

    def __str__(self) -> str:
        return f"#{self.epoch} {self.get_kind_display()} at {self.applied_at:%Y-%m-%d %H:%M:%S}"


class AppliedMarker(models.Model):
    """A marker value this database has applied: it never triggers a logout again."""

    class Kind(models.TextChoices):
        CODE = "code", "FORCE_LOGOUT_VERSION"
        CONFIG = "config", "FORCE_LOGOUT_ON_DEPLOY"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    # sha256 of the value: values may be long, and a unique index on a long text column is not
    # portable (MariaDB), nor may a prefix of a value stand for it.
    digest = models.CharField(max_length=64)
    value = models.TextField()
    logout = models.ForeignKey(Logout, on_delete=models.PROTECT, related_name="applied_markers")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "digest"], name="release_applied_marker_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}={self.value!r}"


class ReleaseEpoch(models.Model):
    """For each pair of marker values a release ran with: the epoch its processes enforce.

    A process looks its own pair up once. Old processes keep the epoch of their pair while a
    newer release logs everyone out, so the sessions they keep making are refused by the new
    release; a rollback runs the release command again, which moves its pair to the newest epoch.
    """

    digest = models.CharField(max_length=64, unique=True)
    code_marker = models.TextField(null=True, blank=True)
    config_marker = models.TextField(null=True, blank=True)
    epoch = models.PositiveBigIntegerField()
    released_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"epoch {self.epoch} for {self.code_marker!r}/{self.config_marker!r}"


class ReleaseLock(models.Model):
    """A single row that the release and force_logout commands update first in their
    transaction: the row lock (PostgreSQL, MariaDB) or write lock (SQLite) makes a second
    command wait until the first has committed, and then see what it recorded."""

    held_since = models.DateTimeField(null=True, blank=True)
    holder = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return f"release lock, last taken by {self.holder!r} at {self.held_since}"
