"""Wording shared by every message."""

from __future__ import annotations

import pytest

from release.text import counted, duration


@pytest.mark.parametrize(
    ("number", "text"), [(0, "0 sessions"), (1, "1 session"), (2_000, "2,000 sessions")]
)
def test_counts_carry_their_noun(number: int, text: str) -> None:
    assert counted(number, "session") == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "under 1 ms"),
        (0.011875897000038549, "12 ms"),
        (0.9994, "999 ms"),
        (1.0, "1.0 s"),
        (3.44, "3.4 s"),
        (59.96, "1 min 0 s"),
        (125.4, "2 min 5 s"),
        (3_599.6, "1 h 0 min"),
        (3_780, "1 h 3 min"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text
