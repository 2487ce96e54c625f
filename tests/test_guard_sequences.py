"""Random sequences of deploys, rollbacks, restarts, forced logouts, sign-ins and writes, checked
against the promise, stated in events rather than stamps:

- a process accepts every session it wrote last, whatever happened since, unless a logout removed
  it from the store (nobody is locked out);
- a process started after a logout refuses every session last written before that logout;
- a process whose marker values a release step ran with after a logout refuses every session
  last written by a process whose values had not been released since that logout (the old
  release, during the release phase and preboot);
- a session last written by a process whose values were released after the newest logout, with
  no logout since, is accepted by every process (deploys, restarts and rollbacks that log nobody
  out sign nobody out).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from importlib import import_module
from io import StringIO
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.models import Session
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from pytest_django.fixtures import Settings

import release.guard as guard
from release.guard import Stamp, forget_process_stamp, process_stamp
from release.models import AppliedMarker, Logout, ReleaseEpoch
from tests.conftest import COOKIES, DB, release

CODES = st.sampled_from([1, 2, 3])
CONFIGS = st.sampled_from([None, "a", "b"])
Pair = tuple[int, str | None]


@dataclass
class Process:
    name: str
    pair: Pair
    stamp: Stamp
    logouts_at_start: int
    # How many logouts there had been when a release step last ran with this pair, as of this
    # process's start; None if none ever did.
    released_after: int | None


@dataclass
class Written:
    key: str
    writer: Process
    logouts_at_write: int


class Deploys(RuleBasedStateMachine):
    # Whether a logout removes what the store holds (every engine here but signed cookies).
    removes: bool

    def __init__(self) -> None:
        super().__init__()
        for model in (AppliedMarker, ReleaseEpoch, Logout, Session):
            model.objects.all().delete()
        forget_process_stamp()
        self.logouts = 0
        self.applied: dict[str, set[object]] = {"code": set(), "config": set()}
        self.installed = False
        self.released_after: dict[Pair, int] = {}
        self.processes: list[Process] = []
        self.sessions: list[Written] = []
        self.names = itertools.count()

    # The platform.

    def markers(self, pair: Pair) -> None:
        # On the test's own override of the settings (pytest-django's `settings`), which goes
        # at its end; one override per change would nest thousands deep.
        django_settings.FORCE_LOGOUT_VERSION = pair[0]
        if pair[1] is None:
            os.environ.pop("FORCE_LOGOUT_ON_DEPLOY", None)
        else:
            os.environ["FORCE_LOGOUT_ON_DEPLOY"] = pair[1]

    def start(self, pair: Pair) -> Process:
        self.markers(pair)
        forget_process_stamp()
        process = Process(
            f"p{next(self.names)}",
            pair,
            process_stamp(),
            self.logouts,
            self.released_after.get(pair),
        )
        self.processes.append(process)
        return process

    def store(self, process: Process, key: str | None = None) -> SessionBase:
        guard._stamp = process.stamp
        store_class = import_module(django_settings.SESSION_ENGINE).SessionStore
        store: SessionBase = store_class(key)
        return store

    def accepts(self, process: Process, written: Written) -> bool:
        return self.store(process, written.key).get("user") is not None

    @initialize(code=CODES, config=CONFIGS)
    def install(self, code: int, config: str | None) -> None:
        self.deploy(code, config)

    @rule(code=CODES, config=CONFIGS)
    def deploy(self, code: int, config: str | None) -> None:
        """A push, a config:set, a rollback or a promotion: the release step, then a web."""
        self.markers((code, config))
        release()
        new = [
            (kind, value)
            for kind, value in (("code", str(code)), ("config", config))
            if value is not None and value not in self.applied[kind]
        ]
        if self.installed and new:
            self.logouts += 1
        self.installed = True
        for kind, value in new:
            self.applied[kind].add(value)
        self.released_after[(code, config)] = self.logouts
        self.start((code, config))

    @rule(code=CODES, config=CONFIGS)
    def restart_without_a_release_step(self, code: int, config: str | None) -> None:
        self.start((code, config))

    @rule()
    def force_logout_from_a_laptop(self) -> None:
        from django.core.management import call_command

        self.markers((99, "laptop"))
        call_command("force_logout", "--reason", "test", "--no-input", stdout=StringIO())
        self.logouts += 1

    @precondition(lambda self: self.processes)
    @rule(data=st.data())
    def sign_in(self, data: st.DataObject) -> None:
        process = data.draw(st.sampled_from(self.processes))
        store = self.store(process)
        store["user"] = process.name
        store.save()
        assert store.session_key is not None
        self.sessions.append(Written(store.session_key, process, self.logouts))

    @precondition(lambda self: self.processes and self.sessions)
    @rule(data=st.data())
    def write(self, data: st.DataObject) -> None:
        process = data.draw(st.sampled_from(self.processes))
        written = data.draw(st.sampled_from(self.sessions))
        store = self.store(process, written.key)
        if store.get("user") is None:
            return  # refused: the visitor is anonymous there, and their cookie goes
        store["n"] = store.get("n", 0) + 1
        store.save()
        assert store.session_key is not None
        written.key, written.writer, written.logouts_at_write = (
            store.session_key,
            process,
            self.logouts,
        )

    # The promise.

    @invariant()
    def a_process_accepts_what_it_wrote_last(self) -> None:
        for written in self.sessions:
            if self.removes and written.logouts_at_write < self.logouts:
                continue
            assert self.accepts(written.writer, written), (written, self.logouts)

    @invariant()
    def a_process_started_after_a_logout_refuses_what_came_before_it(self) -> None:
        for process, written in itertools.product(self.processes, self.sessions):
            if written.logouts_at_write < process.logouts_at_start:
                assert not self.accepts(process, written), (process, written)

    @invariant()
    def the_new_release_refuses_what_the_old_one_wrote(self) -> None:
        for process, written in itertools.product(self.processes, self.sessions):
            # Never released counts as released before the first logout.
            mine, theirs = process.released_after, written.writer.released_after or 0
            if mine is not None and theirs < mine:
                assert not self.accepts(process, written), (process, written)

    @invariant()
    def deploys_that_log_nobody_out_sign_nobody_out(self) -> None:
        for written in self.sessions:
            writer = written.writer
            current = writer.released_after == writer.logouts_at_start
            if current and written.logouts_at_write == self.logouts == writer.logouts_at_start:
                for process in self.processes:
                    assert self.accepts(process, written), (process, written)


@pytest.mark.parametrize("engine", [DB, COOKIES])
@pytest.mark.django_db
def test_random_deploys_keep_the_promise(
    engine: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.RELEASE_SESSION_ENGINE = engine
    settings.FORCE_LOGOUT_VERSION = 1
    monkeypatch.delenv("FORCE_LOGOUT_ON_DEPLOY", raising=False)
    Deploys.removes = engine != COOKIES
    machine: Any = Deploys.TestCase
    machine.settings = settings_for_ci()
    try:
        machine().runTest()
    finally:
        os.environ.pop("FORCE_LOGOUT_ON_DEPLOY", None)
        forget_process_stamp()


def settings_for_ci() -> settings:
    return settings(
        max_examples=int(os.environ.get("GUARD_SEQUENCES", "60")),
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
