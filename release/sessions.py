"""The session engine that guards another: `SESSION_ENGINE = "release.sessions"`.

The sessions stay where `RELEASE_SESSION_ENGINE` (default `django.contrib.sessions.backends.db`)
keeps them; `SessionStore` here is a subclass of that engine's store that refuses every session
from before a logout and stamps what it saves (see `release.guard`). Everything that builds its
store from SESSION_ENGINE is guarded: Django's SessionMiddleware, the middlewares of
django-qsessions and django-user-sessions, Channels, the test client's `login()`, scripts.

A store that refuses the session it was made for says so: its `release_refused` is True (read
it without loading anything), and `release.signals.session_refused` is sent.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieStore
from django.core.exceptions import ImproperlyConfigured

from release import conf
from release.guard import (
    Stamp,
    known_stamp,
    process_stamp,
    read_on_start,
    stamp_from_text,
    stamp_of_key,
)
from release.signals import session_refused

# Where a signed cookie's data carries the stamp; it never shows in the session's own API.
COOKIE_STAMP = "_release_stamp"


class GuardedStore(SessionBase):
    """What every guarded store adds to the store it subclasses."""

    # Django salts encoded data with the class's name: the wrapped store's, so that data stays
    # readable by it (`Session.get_decoded()`, the admin, a project that stops using the guard).
    _wrapped: type[SessionBase]

    # True once this store has refused the session it was made for.
    release_refused = False

    @property
    def key_salt(self) -> str:
        return "django.contrib.sessions." + self._wrapped.__qualname__

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_unpickled, (self._wrapped,), self.__dict__)

    def load(self) -> dict[str, Any]:
        if self._refused(process_stamp()):
            self._refuse()
            session_refused.send(sender=type(self), session=self)
            return {}
        return super().load()

    async def aload(self) -> dict[str, Any]:
        stamp = known_stamp() or await sync_to_async(process_stamp)()
        if self._refused(stamp):
            self._refuse()
            await session_refused.asend(sender=type(self), session=self)
            return {}
        return await super().aload()

    def save(self, must_create: bool = False) -> None:
        if self._stale_key(process_stamp()):
            self.cycle_key()
        super().save(must_create)

    async def asave(self, must_create: bool = False) -> None:
        stamp = known_stamp() or await sync_to_async(process_stamp)()
        if self._stale_key(stamp):
            await self.acycle_key()
        await super().asave(must_create)

    def _refused(self, stamp: Stamp) -> bool:
        """Whether the session can be refused before it is loaded."""
        return False

    def _stale_key(self, stamp: Stamp) -> bool:
        return False

    def _refuse(self) -> None:
        """Refuse the session this store was made for; the caller sends `session_refused`."""
        self.release_refused = True
        self._forget()

    def _forget(self) -> None:
        # As the engines treat a missing session: a new key on the next save, and Django's
        # middleware deletes the cookie of a session that ends up empty.
        self._session_key = None


class KeyStampedStore(GuardedStore):
    """Engines that look sessions up by key: the stamp is the key's first 14 characters."""

    def _refused(self, stamp: Stamp) -> bool:
        return self.session_key is not None and not stamp.accepts(stamp_of_key(self.session_key))

    def _stale_key(self, stamp: Stamp) -> bool:
        # Written by a process with another stamp (one it accepts is newer; one it did not
        # make): the session takes this process's stamp, with a new key, as if this process had
        # made it. So the new release refuses what the old one wrote to, and no process ever
        # refuses a session it saved itself.
        key = self.session_key
        return key is not None and stamp_of_key(key) != stamp

    def _get_new_session_key(self) -> str:
        stamp = process_stamp()
        if stamp.is_blank:
            return super()._get_new_session_key()  # type: ignore[misc, no-any-return]
        while True:
            key = stamp.new_key()
            if not self.exists(key):
                return key

    async def _aget_new_session_key(self) -> str:
        stamp = known_stamp() or await sync_to_async(process_stamp)()
        if stamp.is_blank:
            return await super()._aget_new_session_key()  # type: ignore[misc, no-any-return]
        while True:
            key = stamp.new_key()
            if not await self.aexists(key):
                return key


class CookieStampedStore(GuardedStore):
    """Signed cookies: the stamp is signed into the cookie with the data, and taken out again
    when it is loaded."""

    async def aload(self) -> dict[str, Any]:
        # Django's signed-cookie aload() is load(): read the stamp first, off the event loop.
        if known_stamp() is None:
            await sync_to_async(process_stamp)()
        data = self._checked()
        if data is None:
            await session_refused.asend(sender=type(self), session=self)
            return {}
        return data

    def load(self) -> dict[str, Any]:
        data = self._checked()
        if data is None:
            session_refused.send(sender=type(self), session=self)
            return {}
        return data

    def _checked(self) -> dict[str, Any] | None:
        """The cookie's data without its stamp, or None where the guard refuses it."""
        # The engine's own load, then the stamp taken out; first the common case, a cookie that
        # this process signed (the whole check costs the engine's load a few percent).
        stamp = process_stamp()
        data: dict[str, Any] = self._wrapped.load(self)
        if data.get(COOKIE_STAMP) == _text_of(stamp):
            del data[COOKIE_STAMP]
            return data
        held = bool(data)
        written = stamp_from_text(data.pop(COOKIE_STAMP, None))
        if stamp.accepts(written):
            return data
        if not held:
            # Nothing to refuse: a cookie that is invalid or expired, which the engine has
            # already treated as missing.
            self._forget()
            return {}
        self._refuse()
        return None

    def _get_session_key(self) -> str:
        # The cookie's value: the data and this process's stamp, signed together.
        stamp = process_stamp()
        if stamp.is_blank:
            return super()._get_session_key()  # type: ignore[return-value]
        # As Django's own: the data of the session, loaded from its cookie if not yet loaded
        # (cycle_key() of a session never read re-signs its data, not an empty session).
        data: dict[str, Any] = self._session  # type: ignore[attr-defined]
        self._session_cache = {**data, COOKIE_STAMP: stamp.as_text()}
        try:
            return super()._get_session_key()  # type: ignore[return-value]
        finally:
            self._session_cache = data


# The text of the last stamp a cookie was checked against (the process's, nearly always).
_last_text: tuple[Stamp | None, str] = (None, "")


def _text_of(stamp: Stamp) -> str:
    global _last_text
    seen, text = _last_text
    if seen is not stamp:
        text = stamp.as_text()
        _last_text = (stamp, text)
    return text


class SharedClassCache(type):
    """The metaclass of the guarded stores: what a store caches on its class at run time (the
    file engine's `_storage_path`) is kept on the wrapped class, so that there is one cache, and
    code that resets it on either class (`del FileStore._storage_path` after a change of
    SESSION_FILE_PATH, as Django's own tests do) resets it for both."""

    SHARED = frozenset({"_storage_path"})

    def __setattr__(cls, name: str, value: Any) -> None:
        if name in SharedClassCache.SHARED:
            setattr(cls.__dict__["_wrapped"], name, value)
        else:
            super().__setattr__(name, value)

    def __delattr__(cls, name: str) -> None:
        if name in SharedClassCache.SHARED:
            delattr(cls.__dict__["_wrapped"], name)
        else:
            super().__delattr__(name)


_guarded: dict[type[SessionBase], type[SessionBase]] = {}


def guarded_store_class(store_class: type[SessionBase]) -> type[SessionBase]:
    """The guarded subclass of `store_class`, made once per class."""
    if issubclass(store_class, GuardedStore):
        return store_class
    if store_class not in _guarded:
        guard = CookieStampedStore if issubclass(store_class, CookieStore) else KeyStampedStore
        # A store with a metaclass of its own keeps it (and its class caches apart).
        meta: type[type] = SharedClassCache if type(store_class) is type else type(store_class)
        _guarded[store_class] = cast(
            "type[SessionBase]",
            meta(
                "SessionStore",
                (guard, store_class),
                {"__module__": __name__, "_wrapped": store_class},
            ),
        )
    return _guarded[store_class]


def _unpickled(store_class: type[SessionBase]) -> SessionBase:
    guarded = guarded_store_class(store_class)
    return guarded.__new__(guarded)


def wrapped_store_class() -> type[SessionBase]:
    """The store of RELEASE_SESSION_ENGINE."""
    engine = conf.storage_engine()
    if engine == __name__:
        raise ImproperlyConfigured(
            f"{conf.STORAGE_ENGINE_SETTING} names {__name__!r} itself; name the engine that "
            "keeps the sessions, such as 'django.contrib.sessions.backends.db'."
        )
    store_class: type[SessionBase] = import_module(engine).SessionStore
    return store_class


def __getattr__(name: str) -> Any:
    # SessionStore follows RELEASE_SESSION_ENGINE, which tests may change at run time.
    if name == "SessionStore":
        store_class = guarded_store_class(wrapped_store_class())
        read_on_start()
        return store_class
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
