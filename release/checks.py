"""System checks: configuration mistakes surface on `check`, `migrate` and `release`."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import apps
from django.contrib.messages.middleware import MessageMiddleware
from django.core import checks
from django.utils.module_loading import import_string

from release import conf
from release.clearing import clearer_for
from release.conf import CODE_MARKER_SETTING
from release.decision.markers import InvalidMarker, current_markers
from release.exceptions import SessionModelMissing, UnsupportedEngine
from release.middleware import DOTTED_PATH, LogoutMessageMiddleware
from release.text import one_line, shown
from release.vendors import database

USE_GUARD = (
    f"Set SESSION_ENGINE = {conf.GUARD_ENGINE!r} and {conf.STORAGE_ENGINE_SETTING} to the "
    "engine that keeps the sessions (now SESSION_ENGINE)."
)


def register() -> None:
    checks.register(check_code_marker, "release")
    checks.register(check_session_engine, "release")
    checks.register(check_fail_open, "release")
    checks.register(check_logout_message, "release")
    checks.register(check_database_vendor, "release", checks.Tags.database)


def check_database_vendor(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Oracle's MySQL is not MariaDB: the clear uses MariaDB's syntax (NOWAIT, SET STATEMENT)."""
    problems: list[checks.CheckMessage] = []
    for alias in databases or []:
        problem = database(alias).unsupported()
        if problem is not None:
            problems.append(
                checks.Error(
                    problem,
                    hint=(
                        "Use MariaDB, PostgreSQL or SQLite for the database that keeps the "
                        "sessions and the release history; MySQL is not supported."
                    ),
                    id="release.E006",
                )
            )
    return problems


def check_fail_open(**kwargs: Any) -> list[checks.CheckMessage]:
    problem = conf.fail_open_problem()
    if problem is None:
        return []
    return [
        checks.Error(
            problem,
            hint=(
                f"Leave {conf.FAIL_OPEN_SETTING} out (a failed logout fails the release), or set "
                "it to True to let releases out when their logout fails."
            ),
            id="release.E004",
        )
    ]


MESSAGES_APP = "django.contrib.messages"
MESSAGE_MIDDLEWARE = "django.contrib.messages.middleware.MessageMiddleware"


def check_logout_message(**kwargs: Any) -> list[checks.CheckMessage]:
    problem = conf.logout_message_problem()
    if problem is not None:
        return [
            checks.Error(
                problem,
                hint=(
                    f"Set {conf.LOGOUT_MESSAGE_SETTING} to the sentence shown to users whose "
                    "session a logout ended, or leave it out to show nothing."
                ),
                id="release.E007",
            )
        ]
    if conf.logout_message() is None:
        return []
    problems: list[checks.CheckMessage] = []
    ours = _middleware_index(LogoutMessageMiddleware)
    if ours is None:
        problems.append(
            checks.Warning(
                f"{conf.LOGOUT_MESSAGE_SETTING} is set, but {DOTTED_PATH!r} is not in "
                "MIDDLEWARE: nobody is shown the message.",
                hint=f"Add {DOTTED_PATH!r} to MIDDLEWARE, after {MESSAGE_MIDDLEWARE!r}.",
                id="release.W004",
            )
        )
    theirs = _middleware_index(MessageMiddleware)
    if not apps.is_installed(MESSAGES_APP) or theirs is None:
        problems.append(
            checks.Warning(
                f"{conf.LOGOUT_MESSAGE_SETTING} is set, but Django's messages framework is not "
                "set up: nobody is shown the message.",
                hint=(
                    f"Add {MESSAGES_APP!r} to INSTALLED_APPS and {MESSAGE_MIDDLEWARE!r} to "
                    "MIDDLEWARE, and show `messages` in your templates."
                ),
                id="release.W005",
            )
        )
    elif ours is not None and ours < theirs:
        problems.append(
            checks.Warning(
                f"{DOTTED_PATH!r} comes before {MESSAGE_MIDDLEWARE!r} in MIDDLEWARE: the "
                "message is added after MessageMiddleware has stored the response's messages, "
                "and is lost.",
                hint=f"Move {DOTTED_PATH!r} after {MESSAGE_MIDDLEWARE!r}.",
                id="release.W006",
            )
        )
    return problems


def _middleware_index(wanted: type) -> int | None:
    """Where MIDDLEWARE has `wanted` or a subclass of it, as Django's admin checks look."""
    for index, path in enumerate(conf.middleware()):
        try:
            found = import_string(path)
        except ImportError:
            continue
        if isinstance(found, type) and issubclass(found, wanted):
            return index
    return None


def check_code_marker(**kwargs: Any) -> list[checks.CheckMessage]:
    try:
        current_markers()
    except InvalidMarker as error:
        return [
            checks.Error(
                str(error),
                hint=(
                    f"Set {CODE_MARKER_SETTING} to an int such as 1 or a short string such as "
                    "'2026-11-password-fix', and change it when everyone must sign in again."
                ),
                id="release.E001",
            )
        ]
    return []


def check_session_engine(**kwargs: Any) -> list[checks.CheckMessage]:
    guarded = conf.is_guarded()
    if guarded:
        problem = _guarded_engine_problem()
        if problem is not None:
            return [
                checks.Error(
                    problem,
                    hint=(
                        f"Set {conf.STORAGE_ENGINE_SETTING} to the dotted path of the engine "
                        "that keeps the sessions, such as "
                        f"{conf.DEFAULT_STORAGE_ENGINE!r} (the default)."
                    ),
                    id="release.E003",
                )
            ]
    elif conf.has_guarded_engine_setting():
        return [
            checks.Warning(
                f"{conf.STORAGE_ENGINE_SETTING} is set, but SESSION_ENGINE is "
                f"{conf.session_engine()!r}, not {conf.GUARD_ENGINE!r}: no session is guarded.",
                hint=f"Set SESSION_ENGINE = {conf.GUARD_ENGINE!r}.",
                id="release.W003",
            )
        ]
    try:
        store = clearer_for()
    except SessionModelMissing as error:
        return [
            checks.Error(
                str(error),
                hint=(
                    "Add the app that keeps the sessions to INSTALLED_APPS, or set "
                    f"{conf.STORAGE_ENGINE_SETTING} to the engine of the app installed in its "
                    "place (such as 'qsessions.backends.db' or 'user_sessions.backends.db' "
                    "where it replaced 'django.contrib.sessions'). No session can be saved, and "
                    "no release can run, until then."
                ),
                id="release.E005",
            )
        ]
    except UnsupportedEngine as error:
        return [
            checks.Warning(
                str(error),
                hint=(
                    "A release whose marker changed will fail until the sessions can be found: "
                    "one of Django's engines, a subclass of one, a store with get_model_class(), "
                    f"or {conf.SESSION_MODEL_SETTING} naming the model."
                ),
                id="release.W001",
            )
        ]
    if guarded:
        return []
    if not store.complete:
        return [
            checks.Error(
                f"SESSION_ENGINE {store.engine!r} keeps sessions that a release cannot all "
                f"remove ({store.describe()}), and nothing refuses them afterwards.",
                hint=f"{USE_GUARD} A release that logs everyone out fails until then.",
                id="release.E002",
            )
        ]
    return [
        checks.Warning(
            f"SESSION_ENGINE is {conf.session_engine()!r}, not {conf.GUARD_ENGINE!r}, so "
            "sessions that the old release makes while the release phase runs, or during "
            "preboot, survive a logout.",
            hint=USE_GUARD,
            id="release.W002",
        )
    ]


def _guarded_engine_problem() -> str | None:
    engine = conf.guarded_engine_setting()
    if not isinstance(engine, str) or not engine:
        return f"{conf.STORAGE_ENGINE_SETTING} must be a dotted path, not {shown(engine)}."
    if engine == conf.GUARD_ENGINE:
        return (
            f"{conf.STORAGE_ENGINE_SETTING} is {engine!r}, the guard itself: the guard needs "
            "an engine to keep the sessions in."
        )
    try:
        import_module(engine).SessionStore  # noqa: B018
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        # ValueError, TypeError: a path such as "." or one with a NUL in it.
        return f"{conf.STORAGE_ENGINE_SETTING} {engine!r} cannot be imported: {one_line(error)}."
    except RuntimeError:
        return None  # its models' app is not installed: release.E005 says so
    return None
