"""`decide()` case by case, with no database: the markers and a history in, a plan out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from release.decision.history import History
from release.decision.markers import Markers
from release.decision.plan import Status, decide, next_epoch
from release.exceptions import ReleaseError
from release.models import Logout

NOW = 1_800_000_000


def applied(epoch: int) -> Logout:
    return Logout(
        epoch=epoch, applied_at=datetime(2026, 11, 1, tzinfo=UTC), triggered_by="release.1"
    )


def history(
    newest: int | None = 5, previous: Markers | None = None, **applied_by: Logout
) -> History:
    return History(
        newest=newest, previous=previous or Markers(code="1", config=None), applied=applied_by
    )


def test_the_first_release_records_the_markers_and_logs_nobody_out() -> None:
    plan = decide(Markers(code="1", config="a"), History(), now=NOW)

    assert plan.kind is Logout.Kind.INSTALL
    assert plan.decision == "install"
    assert not plan.logs_out
    assert plan.epoch == 0
    assert [state.status for state in plan.states] == [Status.BASELINE, Status.BASELINE]
    assert [state.current for state in plan.applies] == ["1", "a"]
    assert plan.releases_markers
    assert "--logout-on-install would" in plan.reason


def test_the_first_release_with_logout_on_install_takes_a_new_epoch() -> None:
    plan = decide(Markers(code="1", config=None), History(), logout_on_install=True, now=NOW)

    assert plan.kind is Logout.Kind.INSTALL
    assert plan.logs_out
    assert plan.epoch == NOW
    assert [state.status for state in plan.states] == [Status.BASELINE, Status.UNSET]
    assert [state.current for state in plan.applies] == ["1"]


def test_logout_on_install_has_no_effect_later() -> None:
    plan = decide(Markers(code="1", config=None), history(code=applied(5)), logout_on_install=True)

    assert plan.kind is None
    assert not plan.logs_out


def test_a_new_code_marker_logs_everyone_out() -> None:
    plan = decide(Markers(code="2", config=None), history(newest=7), now=NOW)

    assert plan.kind is Logout.Kind.MARKERS
    assert plan.decision == "logout"
    assert plan.logs_out
    assert plan.epoch == NOW
    code, config = plan.states
    assert (code.previous, code.current, code.status) == ("1", "2", Status.NEW)
    assert config.status is Status.UNSET
    assert [state.current for state in plan.applies] == ["2"]
    assert plan.reason == "FORCE_LOGOUT_VERSION is '2', which this database has never applied"


def test_two_new_markers_are_both_named_and_both_applied() -> None:
    plan = decide(Markers(code="2", config="b"), history(), now=NOW)

    assert " and FORCE_LOGOUT_ON_DEPLOY is 'b'" in plan.reason
    assert [state.current for state in plan.applies] == ["2", "b"]


def test_values_already_applied_log_nobody_out() -> None:
    by = applied(3)
    plan = decide(Markers(code="1", config="a"), history(code=by, config=by), now=NOW)

    assert plan.kind is None
    assert plan.decision == "nothing"
    assert plan.epoch == 5  # the newest stays
    assert plan.applies == []
    assert plan.releases_markers  # the release step still moves its markers to the newest epoch
    assert [state.applied_by for state in plan.states] == [by, by]
    assert "(epoch 3, 2026-11-01 00:00:00 UTC, by release.1)" in plan.states[0].line()


def test_a_rollback_to_an_older_value_applied_before_logs_nobody_out() -> None:
    plan = decide(
        Markers(code="1", config=None),
        history(previous=Markers(code="2", config=None), code=applied(4)),
    )

    assert not plan.logs_out
    assert plan.states[0].line().startswith("FORCE_LOGOUT_VERSION: '2' -> '1', already applied")


def test_unsetting_a_marker_logs_nobody_out() -> None:
    plan = decide(Markers(code=None, config=None), history(previous=Markers("1", "a")))

    assert not plan.logs_out
    assert plan.states[1].line() == "FORCE_LOGOUT_ON_DEPLOY: 'a' -> unset, unset: never triggers"


def test_a_forced_logout_ignores_the_markers_and_applies_none() -> None:
    plan = decide(Markers(code="1", config=None), history(code=applied(5)), forced="leak", now=NOW)

    assert plan.kind is Logout.Kind.FORCED
    assert plan.logs_out
    assert plan.epoch == NOW
    assert plan.applies == []
    assert not plan.releases_markers
    assert plan.reason == "an operator forced it: 'leak'"


def test_a_forced_logout_needs_a_baseline() -> None:
    with pytest.raises(ReleaseError, match="no baseline to log out from"):
        decide(Markers(code="1", config=None), History(), forced="leak")


@pytest.mark.parametrize(
    ("newest", "now", "epoch"),
    [(None, NOW, NOW), (5, NOW, NOW), (NOW, NOW, NOW + 1), (NOW + 100, NOW, NOW + 101)],
    ids=["first", "clock ahead", "same second", "restored database ahead of the clock"],
)
def test_a_new_epoch_is_now_and_after_every_epoch_recorded(
    newest: int | None, now: int, epoch: int
) -> None:
    assert next_epoch(newest, now) == epoch
