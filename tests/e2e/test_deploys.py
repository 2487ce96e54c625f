"""Deploys as users meet them: Heroku's release lifecycle, gunicorn, real HTTP, PostgreSQL.

Each test plays one Heroku workflow on apps of its own (see `harness`), with visitors who sign in
through the example's sign-in page and ask its home page who they are.
"""

from __future__ import annotations

from itertools import cycle, islice

import pytest

from tests.e2e.conftest import Engine
from tests.e2e.harness import App, Heroku, Release, Visitor, Web

pytestmark = pytest.mark.e2e

ENGINES = ["db", "cached_db", "signed_cookies"]

INSTALL = "record the markers"
LOGOUT = "log everyone out"
NOTHING = "nobody is logged out"


def released(release: Release, decision: str) -> None:
    """The release phase succeeded and decided `decision`."""
    assert release.succeeded, f"The release phase of {release} failed: {release.phase}"
    assert release.decision == decision, f"{release}: {release.phase}"


def signed_in(app: App, *visitors: Visitor) -> None:
    for visitor in visitors:
        visitor.sign_in(app.web)
        assert visitor.who_am_i(app.web) == visitor.username, f"{visitor.username} signed in"


def still_signed_in(web: Web, *visitors: Visitor) -> None:
    for visitor in visitors:
        who = visitor.who_am_i(web)
        assert who == visitor.username, f"{visitor.username} was signed out: {web} says {who}"


def signed_out(web: Web, *visitors: Visitor) -> None:
    for visitor in visitors:
        who = visitor.who_am_i(web)
        assert who is None, f"{web} still accepts the session of {visitor.username}"


def installed(heroku: Heroku, name: str, *usernames: str, **config: str) -> App:
    """An app whose first release, FORCE_LOGOUT_VERSION = 1, runs, with these users."""
    app = heroku.create_app(name, **config)
    released(app.deploy(heroku.build(1)), INSTALL)
    app.create_users(*usernames)
    return app


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_a_push_with_a_bumped_code_marker_signs_everyone_out_once(
    heroku: Heroku, engine: Engine
) -> None:
    app = installed(heroku, "shop", "alice", "bob", **engine.config)
    alice, bob = Visitor("alice"), Visitor("bob")
    signed_in(app, alice, bob)
    if engine.stores_rows:
        assert app.stored_sessions() == 2
    if engine.redis:
        assert engine.cached_sessions() == 2

    bump = app.deploy(heroku.build(2))

    released(bump, LOGOUT)
    signed_out(app.web, alice, bob)
    if engine.stores_rows:
        assert "removed 2 sessions" in bump.output
    if engine.redis:
        assert engine.cached_sessions() == 0, "the release left cached copies in Redis"
    signed_in(app, alice)

    unbumped = app.deploy(heroku.build(2))

    released(unbumped, NOTHING)
    still_signed_in(app.web, alice)
    assert app.logouts() == [bump.name]
    assert app.applied_markers() == {("code", "1"), ("code", "2")}


def test_config_set_signs_everyone_out_once(heroku: Heroku) -> None:
    app = installed(heroku, "shop", "alice", "bob")
    alice, bob = Visitor("alice"), Visitor("bob")
    signed_in(app, alice, bob)

    incident = app.config_set(FORCE_LOGOUT_ON_DEPLOY="2026-11-25-incident")

    released(incident, LOGOUT)
    signed_out(app.web, alice, bob)
    signed_in(app, alice)

    released(app.config_set(SUPPORT_EMAIL="help@example.com"), NOTHING)
    released(app.deploy(heroku.build(1)), NOTHING)
    released(app.config_set(FORCE_LOGOUT_ON_DEPLOY=" 2026-11-25-incident "), NOTHING)
    released(app.config_unset("FORCE_LOGOUT_ON_DEPLOY"), NOTHING)
    still_signed_in(app.web, alice)
    assert app.logouts() == [incident.name]
    assert ("config", "2026-11-25-incident") in app.applied_markers()


def test_a_redeploy_a_restart_and_a_retry_sign_nobody_out(heroku: Heroku) -> None:
    app = installed(heroku, "shop", "alice")
    bump = app.deploy(heroku.build(2))
    released(bump, LOGOUT)
    alice = Visitor("alice")
    signed_in(app, alice)

    released(app.deploy(heroku.build(2)), NOTHING)
    still_signed_in(app.web, alice)
    app.restart()
    still_signed_in(app.web, alice)
    released(app.retry(), NOTHING)
    still_signed_in(app.web, alice)

    assert app.logouts() == [bump.name]


def test_a_rollback_signs_nobody_out(heroku: Heroku) -> None:
    app = installed(heroku, "shop", "alice", "bob")
    first = app.releases[0]
    incident = app.config_set(FORCE_LOGOUT_ON_DEPLOY="incident-1")
    bump = app.deploy(heroku.build(2))
    released(incident, LOGOUT)
    released(bump, LOGOUT)
    alice, bob = Visitor("alice"), Visitor("bob")
    signed_in(app, alice, bob)

    to_incident = app.rollback(incident)

    released(to_incident, NOTHING)
    assert to_incident.slug == incident.slug
    assert app.config.get("FORCE_LOGOUT_ON_DEPLOY") == "incident-1"
    still_signed_in(app.web, alice, bob)

    to_first = app.rollback(first)

    released(to_first, NOTHING)
    assert "FORCE_LOGOUT_ON_DEPLOY" not in app.config
    still_signed_in(app.web, alice, bob)
    released(app.rollback(bump), NOTHING)
    still_signed_in(app.web, alice, bob)
    assert app.logouts() == [incident.name, bump.name]


def test_a_pipeline_signs_each_apps_users_out_once(heroku: Heroku) -> None:
    staging = installed(heroku, "shop-staging", "alice")
    production = heroku.create_app("shop-production")
    released(heroku.promote(staging, production), INSTALL)
    production.create_users("alice")
    # Two hosts in real life: one cookie jar each, since both apps share 127.0.0.1 here.
    on_staging, on_production = Visitor("alice"), Visitor("alice")
    signed_in(staging, on_staging)
    signed_in(production, on_production)

    bump = heroku.build(2)
    staged = staging.deploy(bump)

    released(staged, LOGOUT)
    signed_out(staging.web, on_staging)
    still_signed_in(production.web, on_production)
    signed_in(staging, on_staging)

    promoted = heroku.promote(staging, production)

    released(promoted, LOGOUT)
    assert promoted.slug == staged.slug
    signed_out(production.web, on_production)
    still_signed_in(staging.web, on_staging)
    signed_in(production, on_production)

    released(staging.deploy(heroku.build(2)), NOTHING)
    released(heroku.promote(staging, production), NOTHING)
    still_signed_in(staging.web, on_staging)
    still_signed_in(production.web, on_production)
    assert staging.logouts() == [staged.name]
    assert production.logouts() == [promoted.name]


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_a_session_the_old_web_makes_during_the_release_phase_is_refused(
    heroku: Heroku, engine: Engine
) -> None:
    app = installed(heroku, "shop", "alice", "bob", **engine.config)
    alice, bob = Visitor("alice"), Visitor("bob")
    signed_in(app, alice)
    old = app.web

    bump = app.release_phase(heroku.build(2), app.config, "Deploy with a bumped marker")
    released(bump, LOGOUT)
    bob.sign_in(old)
    still_signed_in(old, bob)
    if engine.stores_rows:
        assert app.stored_sessions() == 1, "bob's session, saved after the release removed all"
    new = app.boot(bump)

    assert not old.running
    signed_out(new, alice, bob)
    signed_in(app, bob)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_with_preboot_the_new_web_refuses_every_session_the_old_one_makes(
    heroku: Heroku, engine: Engine
) -> None:
    app = installed(heroku, "shop", "alice", "bob", "carol", **engine.config)
    alice, bob, carol = Visitor("alice"), Visitor("bob"), Visitor("carol")
    signed_in(app, alice)
    old = app.web

    released(app.deploy(heroku.build(2), preboot=True), LOGOUT)
    new = app.web

    assert app.webs == [old, new]
    assert old.running, "preboot keeps the old web serving beside the new one"
    signed_out(new, alice)
    for _ in range(2):
        bob.sign_in(old)
        still_signed_in(old, bob)
        signed_out(new, bob)
    refused = 0
    made_by: Web | None = None
    for web in islice(cycle([old, new]), 8):
        who = carol.who_am_i(web)
        if made_by is old and web is new:
            assert who is None, "the new web accepted a session the old web made after the logout"
            refused += 1
        elif made_by is not None:
            assert who == "carol", f"{web} refused the session {made_by} made"
        if who is None:
            carol.sign_in(web)
            made_by = web
    assert (refused, made_by) == (1, new), "carol signed in on each web once, then stayed in"

    app.end_preboot()

    assert not old.running
    still_signed_in(new, carol)
    signed_out(new, alice, bob)


def test_a_failed_release_phase_stops_the_deploy(heroku: Heroku) -> None:
    app = installed(heroku, "shop", "alice")
    alice = Visitor("alice")
    signed_in(app, alice)
    old = app.web

    with app.database.outage():
        failed = app.deploy(heroku.build(2))

    assert failed.phase is not None
    assert failed.phase.returncode == 1, f"{failed.phase}"
    assert "Nobody was logged out and nothing was recorded." in failed.output
    assert app.webs == [old], "the deploy stopped before the new web"
    assert old.running, "the old web keeps serving"
    still_signed_in(old, alice)
    assert [event.release for event in app.history()] == ["v1"]
    assert ("code", "2") not in app.applied_markers()

    retried = app.retry()

    released(retried, LOGOUT)
    assert retried.slug == failed.slug
    signed_out(app.web, alice)
    assert app.logouts() == [retried.name]
