"""The signal the session guard sends when it refuses a session.

`session_refused` is sent once for each session the guard refuses, on every engine, on the sync
(`load()`) and async (`aload()`) paths alike, before the store returns the empty session it
refuses it as. Its arguments:

- `sender`: the guarded store's class, `import_module(settings.SESSION_ENGINE).SessionStore`
  (a subclass of `RELEASE_SESSION_ENGINE`'s).
- `session`: the store itself, `request.session` where the request's middleware made it. Its
  `release_refused` is True from then on, and its session key is None: the session it was made
  for is gone, and the next save makes a new one.

Receivers run inside the session's load, so they should be quick, and an exception they raise
reaches the code that read the session, as with Django's own signals. On the async path sync
receivers run in a thread (`Signal.asend()`); async ones stay on the event loop.

Nothing is sent for a request without a session, or for a cookie that is invalid or expired.
"""

from __future__ import annotations

from django.dispatch import Signal

session_refused = Signal()
