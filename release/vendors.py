"""Which databases the release can clear sessions on."""

from __future__ import annotations

from django.db import connections


def unsupported_database(alias: str) -> str | None:
    """Why database `alias` cannot be used, or None. Oracle's MySQL identifies itself as
    `mysql`, like MariaDB, but lacks the MariaDB syntax the clear relies on."""
    connection = connections[alias]
    if connection.vendor != "mysql" or connection.mysql_is_mariadb:  # type: ignore[attr-defined]
        return None
    version = ".".join(str(part) for part in connection.mysql_version)  # type: ignore[attr-defined]
    return (
        f"Database {alias!r} is MySQL {version}, not MariaDB: the release clears sessions with "
        "MariaDB's syntax (TRUNCATE ... NOWAIT, SET STATEMENT ... FOR), which MySQL does not "
        "have, so every logout there would fail."
    )
