"""Wording shared by every message: one-line errors, counts with their nouns, durations."""

from __future__ import annotations


def folded(error: BaseException) -> str:
    """An exception's whole message on one line."""
    return " ".join(str(error).split())


def one_line(error: BaseException) -> str:
    """An exception's message with its line breaks folded and no closing full stop, for a
    one-line error that goes on after it."""
    return " ".join(str(error).split()).rstrip(".") or type(error).__name__


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`1 session`, `2,000 sessions`."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def shown(value: object) -> str:
    """`repr(value)` for a message, also for an int too long to be shown in full."""
    try:
        return repr(value)
    except ValueError:  # more digits than Python turns into text
        bits = value.bit_length() if isinstance(value, int) else 0
        return f"<an int of {bits:,} bits>"


def duration(seconds: float) -> str:
    """`12 ms`, `3.4 s`, `2 min 5 s`, `1 h 3 min`: as long as it took, for people."""
    if seconds < 0.001:
        return "under 1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, whole = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {whole} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
