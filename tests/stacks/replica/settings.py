"""The example project behind a lagging PostgreSQL replica: its dynos' DJANGO_SETTINGS_MODULE.

DATABASE_URL is the primary; REPLICA_DATABASE_URL is the same database on the replica, which
replays the primary's changes 8 s late (tests/services/replica.sh). Every read goes to the
replica (`routers.PrimaryReplicaRouter`, but for the sessions), every write to the primary.

The dynos run the build's `example_project` (whose settings carry the build's
FORCE_LOGOUT_VERSION) and find this module through PYTHONPATH. STACK_WITHOUT_RELEASE=1 plays the
app before it added the release app: Django's plain session engine, no `release` app.
"""

from __future__ import annotations

import os

import dj_database_url

from example_project.settings import *  # noqa: F403
from example_project.settings import DATABASES, INSTALLED_APPS, RELEASE_SESSION_ENGINE

DATABASES["replica"] = dj_database_url.parse(
    os.environ["REPLICA_DATABASE_URL"], conn_max_age=600, conn_health_checks=True
)
DATABASE_ROUTERS = ["tests.stacks.replica.routers.PrimaryReplicaRouter"]

if os.environ.get("STACK_WITHOUT_RELEASE"):
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "release"]
    SESSION_ENGINE = RELEASE_SESSION_ENGINE
