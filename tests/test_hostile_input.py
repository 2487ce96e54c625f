"""Marker values of every shape: no crash, no SQL error, and no value mistaken for another."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

import pytest
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import transaction
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pytest_django.fixtures import Settings

from release.checks import check_code_marker
from release.conf import CONFIG_MARKER_VAR
from release.decision.markers import Markers, normalise_config_marker
from release.models import AppliedMarker, Logout
from tests.conftest import make_sessions, release

# How a release that may go out without its logout (FORCE_LOGOUT_FAIL_OPEN) says it failed.
FAILED_OPEN = "WARNING: THE LOGOUT FAILED AND THIS RELEASE GOES OUT ANYWAY"
# What a config var can hold: any text but NUL (no environment variable can hold one).
ENV_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
HOSTILE = [
    "x" * 10_000,
    "x" * 9_999 + "y",
    "'; DROP TABLE django_session; --",
    'quote " and \\ backslash',
    "line one\nline two",
    "ünïcødé ✓ 🚀 日本語",
    "%s %(name)s {}",
    "\t",
]
examples = hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Rollback(Exception):
    pass


@contextmanager
def rolled_back() -> Iterator[None]:
    """Each example starts from the same database: what it wrote is rolled back."""
    try:
        with transaction.atomic():
            yield
            raise Rollback
    except Rollback:
        pass


@pytest.mark.django_db
@examples
@given(first=ENV_TEXT, second=ENV_TEXT)
@example(first=HOSTILE[0], second=HOSTILE[1])
@example(first=HOSTILE[2], second=HOSTILE[3])
@example(first=HOSTILE[4], second=HOSTILE[5])
@example(first=HOSTILE[6], second=HOSTILE[7])
def test_config_marker_values(
    installed: None, monkeypatch: pytest.MonkeyPatch, first: str, second: str
) -> None:
    with rolled_back():
        make_sessions(2)
        monkeypatch.setenv(CONFIG_MARKER_VAR, first)
        release()
        if normalise_config_marker(first) is None:
            assert Session.objects.count() == 2, "an empty value never logs out"
        else:
            assert Session.objects.count() == 0
            stored = AppliedMarker.objects.get(kind="config")
            assert stored.value == first.strip(), "stored whole, never truncated"

        make_sessions(1)
        monkeypatch.setenv(CONFIG_MARKER_VAR, first)
        release()
        assert Session.objects.count() in {1, 3}, "the same value again logs nobody out"

        monkeypatch.setenv(CONFIG_MARKER_VAR, second)
        before = Logout.objects.count()
        release()
        new = normalise_config_marker(second)
        logged_out = Logout.objects.count() > before
        assert logged_out == (new is not None and new != normalise_config_marker(first))


@pytest.mark.django_db
@examples
@given(value=st.one_of(st.integers(), st.text(min_size=1).filter(lambda s: s.strip())))
@example(value="a\x00b")
@example(value="\udc80 lone surrogate")
@example(value=2**80)
def test_code_marker_values(installed: None, settings: Settings, value: int | str) -> None:
    with rolled_back():
        settings.FORCE_LOGOUT_VERSION = value
        assert check_code_marker() == []

        first = release()
        second = release()

        expect_logout = str(value).strip() != "1"
        assert ("Decision: log everyone out" in first) == expect_logout
        assert "Decision: nobody is logged out" in second


@examples
@given(
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.floats(),
        st.lists(st.integers()),
        st.dictionaries(st.text(), st.integers()),
        st.just(""),
        st.text(st.sampled_from(" \t\n")),
    )
)
def test_wrong_code_marker_types_are_a_check_error(settings: Settings, value: object) -> None:
    settings.FORCE_LOGOUT_VERSION = value

    errors = check_code_marker()

    assert [error.id for error in errors] == ["release.E001"]
    assert repr(value) in errors[0].msg


@given(a=st.one_of(st.none(), ENV_TEXT), b=st.one_of(st.none(), ENV_TEXT))
@example(a=None, b="None")
@example(a="", b=None)
@example(a="-", b=None)
def test_distinct_marker_pairs_have_distinct_digests(a: str | None, b: str | None) -> None:
    if a == b:
        return
    assert Markers(code=a, config=None).digest != Markers(code=b, config=None).digest
    assert Markers(code=None, config=a).digest != Markers(code=None, config=b).digest
    assert Markers(code=a, config=b).digest != Markers(code=b, config=a).digest


ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.just(10**5000),
    st.floats(),
    st.text(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.sampled_from(
        [
            "release.sessions",
            "django.contrib.sessions.backends.base",
            "django.contrib.sessions.backends.db",
            "django.contrib.sessions.backends.signed_cookies",
            "tests.unknown_engine",
            ".",
            "os",
            "no.such.engine",
        ]
    ),
)


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    version=ANY_VALUE,
    on_deploy=st.one_of(st.none(), ENV_TEXT),
    engine=ANY_VALUE,
    fail_open=ANY_VALUE,
)
@example(
    version=10**5000, on_deploy=None, engine="django.contrib.sessions.backends.db", fail_open=False
)
@example(version=0, on_deploy=None, engine="tests.unknown_engine", fail_open=True)
def test_no_setting_value_ends_in_a_traceback(
    installed: None,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    version: object,
    on_deploy: str | None,
    engine: object,
    fail_open: object,
) -> None:
    """Whatever the four settings hold, the release ends in its summary, in one clear error (a
    system check, or a CommandError) or, with FORCE_LOGOUT_FAIL_OPEN, in its warning that the
    logout failed; never in another exception."""
    with rolled_back():
        settings.FORCE_LOGOUT_VERSION = version
        settings.RELEASE_SESSION_ENGINE = engine
        settings.FORCE_LOGOUT_FAIL_OPEN = fail_open
        if on_deploy is None:
            monkeypatch.delenv(CONFIG_MARKER_VAR, raising=False)
        else:
            monkeypatch.setenv(CONFIG_MARKER_VAR, on_deploy)
        out = StringIO()
        failure = ""
        try:
            call_command("release", "--skip-migrate", skip_checks=False, stdout=out, stderr=out)
        except CommandError as error:
            failure = str(error)
        output = out.getvalue()
        assert failure.strip() or "Decision:" in output or FAILED_OPEN in output


def test_an_int_too_long_to_show_is_a_check_error(settings: Settings) -> None:
    settings.FORCE_LOGOUT_VERSION = 10**5000

    errors = check_code_marker()

    assert [error.id for error in errors] == ["release.E001"]
    assert "is an int of 16,610 bits, too long to store as text" in errors[0].msg
