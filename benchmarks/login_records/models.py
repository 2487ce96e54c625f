"""Login records with foreign keys to `django_session`, as apps that record logins keep them:
installed (`BENCH_LOGIN_RECORDS=1`, see benchmarks.settings) only for the suite's "with login
records" methods, whose tables exist only while those run."""

from __future__ import annotations

from django.contrib.sessions.models import Session
from django.db import models


class CascadeLogin(models.Model):
    session = models.ForeignKey(Session, models.CASCADE, related_name="+")
    user_agent = models.CharField(max_length=200)
    created = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.user_agent} {self.created}"


class NullLogin(models.Model):
    session = models.ForeignKey(Session, models.SET_NULL, null=True, related_name="+")
    user_agent = models.CharField(max_length=200)
    created = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.user_agent} {self.created}"
