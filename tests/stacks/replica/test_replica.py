"""Deploys behind a PostgreSQL replica that replays the primary 8 s late.

The app reads through Django's primary/replica router (`routers.py`): every read from the
replica, but the sessions. The release command and the session guard must read the app's tables
from the primary (`router.db_for_write`): a new process that read its stamp from the replica
would enforce the state from before the logout for its whole life, accepting the sessions the
release removed or the old release made, and stamping what it saves with that old state.

Every check of a new process is followed by a check that the replica still lacks what the
release phase wrote: the process read its stamp while the replica was behind.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import pytest

from tests.conftest import COOKIES, DB
from tests.e2e.harness import PASSWORD, Heroku, Release, Visitor, Web
from tests.stacks.replica.conftest import LaggingApp, needs_replica

pytestmark = needs_replica

ENGINES = [pytest.param(DB, id="db"), pytest.param(COOKIES, id="signed_cookies")]

INSTALL = "record the markers"
LOGOUT = "log everyone out"
NOTHING = "nobody is logged out"


@dataclass
class Person(Visitor):
    """A visitor who also writes to their session (the example's cart) and uses the admin."""

    def csrf_token(self) -> str:
        tokens = [cookie.value for cookie in self.cookies if cookie.name == "csrftoken"]
        assert tokens, f"{self.username} has no CSRF cookie"
        assert tokens[0] is not None
        return tokens[0]

    def add_to_cart(self, web: Web) -> None:
        """A request that saves the session without signing in: `request.session["cart"]`."""
        page = self._request(web, "/cart/add/", {"csrfmiddlewaretoken": self.csrf_token()})
        assert (page.status, page.location) == (302, "/"), f"cart on {web}: {page.status}"

    def sign_in_to_admin(self, web: Web) -> None:
        form = self._request(web, "/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.body)
        assert token, f"The admin's sign-in page on {web} has no CSRF token"
        fields = {
            "csrfmiddlewaretoken": token.group(1),
            "username": self.username,
            "password": PASSWORD,
            "next": "/admin/",
        }
        done = self._request(web, "/admin/login/?next=/admin/", fields)
        assert (done.status, done.location) == (302, "/admin/"), f"admin sign-in: {done.status}"

    def admin_page(self, web: Web, path: str) -> str:
        page = self._request(web, path)
        assert page.status == 200, f"{path} on {web} answered {page.status}"
        return page.body


def released(release: Release, decision: str) -> None:
    assert release.succeeded, f"The release phase of {release} failed: {release.phase}"
    assert release.decision == decision, f"{release}: {release.phase}"


def signed_in(web: Web, *people: Person) -> None:
    for person in people:
        person.sign_in(web)
        assert person.who_am_i(web) == person.username, f"{person.username} signed in on {web}"


def still_signed_in(web: Web, *people: Person) -> None:
    for person in people:
        who = person.who_am_i(web)
        assert who == person.username, f"{person.username} was signed out: {web} says {who}"


def signed_out(web: Web, *people: Person) -> None:
    for person in people:
        assert person.who_am_i(web) is None, f"{web} accepts the session of {person.username}"


def still_behind(lagging: LaggingApp, since: float, what: str, behind: bool) -> None:
    """The replica had not replayed `what` yet (checked after the processes read their stamp)."""
    assert behind, (
        f"The replica had replayed {what} {time.monotonic() - since:.1f} s after it: this "
        "machine was too slow to show the lag, and nothing was tested against a stale replica"
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_the_race_and_preboot_with_the_replica_8_s_behind(
    heroku: Heroku, lagging: LaggingApp, engine: str
) -> None:
    app = lagging.app
    app.config["DJANGO_SESSION_ENGINE"] = engine
    build_1 = heroku.build(1)
    before = lagging.before_the_tool(build_1)
    lagging.create_users(before, "alice", "bob", "carol", "dave")
    lagging.create_users(before, "root", staff=True)
    lagging.wait_for_users_on_replica("alice", "bob", "carol", "dave", "root")
    alice, bob, carol, dave, root = (Person(n) for n in ("alice", "bob", "carol", "dave", "root"))
    web_0 = lagging.web_of(before)
    try:
        signed_in(web_0, alice)  # with Django's own engine, before the release app
    finally:
        web_0.stop()

    released(app.deploy(build_1), INSTALL)  # R1 installs the tool
    still_signed_in(app.web, alice)
    signed_in(app.web, bob)
    old = app.web

    logged_out_at = time.monotonic()
    bump = app.release_phase(heroku.build(2), app.config, "Deploy with a bumped marker")
    released(bump, LOGOUT)
    [epoch] = lagging.logouts_on_primary()
    signed_in(old, carol)  # the race: on R1, after R2's release phase, before R2 serves
    new = app.boot(bump, preboot=True)

    signed_out(new, alice)  # R2's process reads its stamp here
    still_behind(lagging, logged_out_at, "the logout", lagging.logouts_on_replica() == [])
    signed_out(new, bob, carol)
    status = app.run("python manage.py release_status --json")
    assert status.ok, f"{status}"
    assert json.loads(status.stdout)["history"][0]["epoch"] == epoch, status.stdout
    root.sign_in_to_admin(new)
    assert f">{epoch}<" in root.admin_page(new, "/admin/release/logout/"), "stale admin history"
    still_behind(
        lagging,
        logged_out_at,
        "the logout (read by release_status and the admin)",
        lagging.logouts_on_replica() == [],
    )

    # Preboot: R1 and R2 side by side.
    signed_in(old, dave)
    signed_out(new, dave)  # a session R1 makes is refused by R2
    signed_in(new, dave)
    still_signed_in(old, dave)  # R2's sessions are accepted by R1 too
    dave.add_to_cart(old)
    still_signed_in(old, dave)
    signed_out(new, dave)  # R1 wrote to it: refused by R2
    signed_in(new, carol)
    carol.add_to_cart(new)
    still_signed_in(old, carol)
    still_signed_in(new, carol)
    app.end_preboot()

    assert not old.running
    lagging.wait_until_replayed()
    assert lagging.logouts_on_replica() == [epoch]
    still_signed_in(new, carol)
    signed_out(new, alice, bob, dave)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_redeploy_and_a_rollback_right_after_the_logout(
    heroku: Heroku, lagging: LaggingApp, engine: str
) -> None:
    app = lagging.app
    app.config["DJANGO_SESSION_ENGINE"] = engine
    released(app.deploy(heroku.build(1)), INSTALL)
    first = app.releases[0]
    app.create_users("alice", "bob")
    lagging.wait_for_users_on_replica("alice", "bob")
    alice, bob = Person("alice"), Person("bob")
    signed_in(app.web, alice)

    logged_out_at = time.monotonic()
    bump = app.deploy(heroku.build(2))
    released(bump, LOGOUT)
    [epoch] = lagging.logouts_on_primary()
    signed_out(app.web, alice)
    signed_in(app.web, bob)

    redeploy = app.deploy(heroku.build(2))

    released(redeploy, NOTHING)  # the release command read the history on the primary
    signed_out(app.web, alice)  # the redeploy's process reads its stamp here
    still_behind(lagging, logged_out_at, "the logout", lagging.logouts_on_replica() == [])
    still_signed_in(app.web, bob)
    bob.add_to_cart(app.web)  # saved with the stamp the process read
    still_signed_in(app.web, bob)
    signed_in(app.web, alice)

    rolled_back_at = time.monotonic()
    to_first = app.rollback(first)

    released(to_first, NOTHING)
    still_signed_in(app.web, bob)  # the rollback's process reads its stamp here
    assert lagging.pair_epochs("1") == [epoch], "the rollback moves R1's pair to the newest epoch"
    still_behind(
        lagging,
        rolled_back_at,
        "the rollback's release step",
        lagging.pair_epochs("1", on_replica=True) != [epoch],
    )
    still_signed_in(app.web, alice)
    bob.add_to_cart(app.web)
    still_signed_in(app.web, alice, bob)

    lagging.wait_until_replayed()
    app.restart()  # new processes, with the replica caught up: they accept the same sessions
    still_signed_in(app.web, alice, bob)
    assert app.logouts() == [bump.name]
