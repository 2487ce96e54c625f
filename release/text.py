"""Wording shared by every message: one-line errors, counts with their nouns."""

from __future__ import annotations


def one_line(error: BaseException) -> str:
    """An exception's message with its line breaks folded, for a one-line error."""
    return " ".join(str(error).split())


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`1 session`, `2,000 sessions`."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"
