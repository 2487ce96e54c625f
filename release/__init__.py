"""Log every user out on the deploy that needs it, once per marker value and database."""

from __future__ import annotations

__version__ = "0.1.0"
