"""Models that record logins by foreign keys to a session table, one for each `on_delete`.

`LoginSession` stands for the session table (`tests.login_records.backend` is its engine): the
rest of the suite keeps `django_session` without foreign keys, so that a release there still
goes by TRUNCATE. Django applies the same rules to foreign keys to `django_session`.
"""

from __future__ import annotations

from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models

SIGNED_OUT = "signed-out"


def gone() -> str:
    """What SET(gone) writes."""
    return "gone"


class Record(models.Model):
    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.pk}"


class Label(Record):
    name = models.CharField(max_length=20)


class LoginSession(AbstractBaseSession):
    # A many-to-many from the session model: its through table refers to the sessions.
    labels = models.ManyToManyField(Label, blank=True, related_name="sessions")

    @classmethod
    def get_session_store_class(cls) -> type:
        from tests.login_records.backend import SessionStore

        return SessionStore


class Device(Record):
    """A many-to-many to the session model, from the other side."""

    name = models.CharField(max_length=20)
    sessions = models.ManyToManyField(LoginSession, blank=True, related_name="devices")


class CascadeLogin(Record):
    session = models.ForeignKey(LoginSession, models.CASCADE, related_name="cascade_logins")
    user_agent = models.CharField(max_length=40, blank=True)
    # Within the rows that go: a SET_NULL to the same model.
    previous = models.ForeignKey("self", models.SET_NULL, null=True, blank=True, related_name="+")


class LoginEvent(Record):
    """Cascades from CascadeLogin, so goes with the sessions too."""

    login = models.ForeignKey(CascadeLogin, models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20)
    # A CASCADE back to the same model: rows along it stop the release.
    cause = models.ForeignKey(
        "self", models.CASCADE, null=True, blank=True, related_name="consequences"
    )


class EventNote(Record):
    """SET_NULL from a model that cascades from the sessions."""

    event = models.ForeignKey(LoginEvent, models.SET_NULL, null=True, related_name="notes")
    text = models.CharField(max_length=40)


class EventReceipt(Record):
    """PROTECT from a model that cascades from the sessions."""

    event = models.ForeignKey(LoginEvent, models.PROTECT, related_name="receipts")


class SessionProfile(Record):
    session = models.OneToOneField(
        LoginSession, models.CASCADE, primary_key=True, related_name="profile"
    )
    theme = models.CharField(max_length=20)


class LooseCascadeLogin(Record):
    """Nullable, and no constraint in the database: CASCADE still applies."""

    session = models.ForeignKey(
        LoginSession, models.CASCADE, null=True, db_constraint=False, related_name="+"
    )


class NullLogin(Record):
    # related_name="+": no reverse accessor, still a foreign key to the sessions.
    session = models.ForeignKey(LoginSession, models.SET_NULL, null=True, related_name="+")
    user_agent = models.CharField(max_length=40, blank=True)


class DefaultLogin(Record):
    session = models.ForeignKey(
        LoginSession,
        models.SET_DEFAULT,
        default=SIGNED_OUT,
        db_constraint=False,
        related_name="default_logins",
    )


class SetLogin(Record):
    session = models.ForeignKey(
        LoginSession, models.SET(gone), db_constraint=False, related_name="set_logins"
    )


class ProtectedLogin(Record):
    session = models.ForeignKey(LoginSession, models.PROTECT, related_name="protected_logins")


class RestrictedLogin(Record):
    session = models.ForeignKey(LoginSession, models.RESTRICT, related_name="restricted_logins")
    # Django's RESTRICT lets a row go that also goes by CASCADE from what is deleted.
    login = models.ForeignKey(
        CascadeLogin, models.CASCADE, null=True, blank=True, related_name="restricted"
    )


class UncheckedLogin(Record):
    """DO_NOTHING without a constraint: left as it is, referring to sessions that are gone."""

    session = models.ForeignKey(
        LoginSession, models.DO_NOTHING, db_constraint=False, related_name="unchecked_logins"
    )


class ConstrainedLogin(Record):
    """DO_NOTHING with the database's constraint: the database refuses."""

    session = models.ForeignKey(LoginSession, models.DO_NOTHING, related_name="constrained_logins")


class AuditRecord(Record):
    created = models.DateTimeField(auto_now_add=True)


class KioskLogin(AuditRecord):
    """Multi-table inheritance: a row of AuditRecord with each row of this table."""

    session = models.ForeignKey(LoginSession, models.CASCADE, related_name="kiosk_logins")


class LooseSession(AbstractBaseSession):
    @classmethod
    def get_session_store_class(cls) -> type:
        from tests.login_records.loose_backend import SessionStore

        return SessionStore


class LooseRecord(Record):
    session = models.ForeignKey(
        LooseSession, models.DO_NOTHING, db_constraint=False, related_name="records"
    )
