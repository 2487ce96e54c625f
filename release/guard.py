"""The session guard: no session older than this release's last logout is accepted.

Every session a guarded store saves carries the logout epoch its process enforces. A process
reads that epoch once, for its own pair of marker values (see `ReleaseEpoch`), and from then on
refuses every session stamped with an older one, on any engine, without another query or cache
round trip. So sessions the old release keeps making while the release phase runs, or beside the
new release during preboot, are refused by the new release, and a rollback, whose release phase
moves the old markers to the newest epoch, refuses nobody new.
"""

from __future__ import annotations

import threading
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends.base import SessionBase
from django.db import router

from release.markers import current_markers
from release.models import Logout, ReleaseEpoch

# The key inside session data. Sessions from before the install have none: they are accepted
# until the first logout, so installing the tool logs nobody out.
STAMP = "_release_epoch"

_lock = threading.Lock()
_epoch: int | None = None


def read_epoch() -> int:
    """The epoch processes with this release's markers enforce, from the database."""
    alias = router.db_for_read(ReleaseEpoch)
    released = (
        ReleaseEpoch.objects.using(alias)
        .filter(digest=current_markers().digest)
        .values_list("epoch", flat=True)
        .first()
    )
    if released is not None:
        return released
    # These markers never went through the release command here (`runserver`, an app without
    # the release line): enforce every logout there has been.
    newest = (
        Logout.objects.using(router.db_for_read(Logout))
        .order_by("-epoch")
        .values_list("epoch", flat=True)
        .first()
    )
    return newest or 0


def process_epoch() -> int:
    """`read_epoch()`, read once per process: re-reading it would let an old release, still
    serving, learn the new epoch and stamp its sessions with it."""
    global _epoch
    if _epoch is None:
        with _lock:
            if _epoch is None:
                _epoch = read_epoch()
    return _epoch


def forget_process_epoch() -> None:
    """Make the next session read the epoch again (tests stand for a new process this way)."""
    global _epoch
    with _lock:
        _epoch = None


def is_refused(data: dict[str, Any], epoch: int) -> bool:
    stamp = data.get(STAMP, 0)
    return not isinstance(stamp, int) or stamp < epoch


_guarded: dict[type[SessionBase], type[SessionBase]] = {}


def guarded_store_class(store_class: type[SessionBase]) -> type[SessionBase]:
    """A subclass of `store_class` that stamps what it saves and refuses stale sessions."""
    if store_class not in _guarded:
        _guarded[store_class] = type(
            f"Guarded{store_class.__name__}",
            (GuardedStoreMixin, store_class),
            {"__module__": store_class.__module__, "__qualname__": store_class.__qualname__},
        )
    return _guarded[store_class]


class GuardedStoreMixin(SessionBase):
    def load(self) -> dict[str, Any]:
        return self._refuse_stale(super().load(), process_epoch())

    async def aload(self) -> dict[str, Any]:
        # First: the file and signed_cookies engines' aload() calls load(), which must then
        # find the epoch read already, not query from the event loop.
        epoch = await sync_to_async(process_epoch)()
        return self._refuse_stale(await super().aload(), epoch)

    def save(self, must_create: bool = False) -> None:
        self._get_session(no_load=must_create).setdefault(  # type: ignore[attr-defined]
            STAMP, process_epoch()
        )
        super().save(must_create)

    async def asave(self, must_create: bool = False) -> None:
        epoch = await sync_to_async(process_epoch)()
        data = await self._aget_session(no_load=must_create)  # type: ignore[attr-defined]
        data.setdefault(STAMP, epoch)
        await super().asave(must_create)

    def _refuse_stale(self, data: dict[str, Any], epoch: int) -> dict[str, Any]:
        if data and is_refused(data, epoch):
            # As the engines treat a missing session: a new key on the next save, and the
            # middleware deletes the cookie of a session that ends up empty.
            self._session_key = None
            return {}
        return data
