"""`LogoutMessageMiddleware`: tells a user whose session the guard refused why, on the next page.

With `FORCE_LOGOUT_MESSAGE` set, it adds that text as an INFO message, through
`django.contrib.messages`, to the response of a request whose session the guard refused. It goes
after `MessageMiddleware` in MIDDLEWARE, so that `MessageMiddleware` stores the message with the
response (in a cookie, by default) and the next page that shows messages shows it, once.

It never loads a session: it reads the store's `release_refused` after the view has run, set
only where something loaded the session and the guard refused it. Django's SessionMiddleware
deletes the refused session's cookie, so the next request has no session to refuse again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib import messages
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponseBase

from release import conf

DOTTED_PATH = "release.middleware.LogoutMessageMiddleware"


class LogoutMessageMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        # As Django's own middlewares: async under ASGI, so that no request leaves the loop.
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        response: HttpResponseBase = self.get_response(request)
        tell_why(request)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        response = await get_response(request)
        tell_why(request)
        return response


def tell_why(request: HttpRequest) -> None:
    """Add the logout message where the guard refused this request's session."""
    session = getattr(request, "session", None)
    if session is None or not getattr(session, "release_refused", False):
        return
    # The session was loaded to be refused: reading it costs nothing. Someone who signed in
    # on this very request (a sign-in form sent with the refused cookie) needs no explanation.
    if SESSION_KEY in session:
        return
    text = conf.logout_message()
    if text is not None:
        messages.info(request, text, fail_silently=True)
