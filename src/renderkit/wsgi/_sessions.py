"""WSGI SessionMiddleware: the same stores, cookie format and commit logic as the ASGI one."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from renderkit.sessions._core import cookie_values, vary_on_cookie
from renderkit.sessions._middleware import SessionAdapter

__all__ = ["SESSION_KEY", "SessionMiddleware"]

SESSION_KEY = "renderkit.session"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class SessionMiddleware(SessionAdapter[WSGIApp]):
    """Put a server-side session at ``environ["renderkit.session"]`` for any WSGI app.

    Takes the options of :class:`renderkit.sessions.SessionMiddleware`. A request with a
    valid session cookie loads its session before the app runs (one without makes no store
    call); it is saved, with its cookie, when the app calls ``start_response``: changes made
    while the body streams are not saved.
    """

    #: Where the session is put in the WSGI environ (a subclass may change it).
    environ_key = SESSION_KEY

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        engine = self.engine
        raw = environ.get("HTTP_COOKIE")
        values = cookie_values([raw], self._name) if isinstance(raw, str) and raw else []
        session = engine.open(values)
        environ[self.environ_key] = session
        committed = False

        def start_with_cookie(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            nonlocal committed
            if not committed:
                committed = True
                cookie = engine.finish(session, bool(values))
                if cookie is not None or session.accessed:
                    headers = list(headers)
                    if cookie is not None:
                        headers.append(("Set-Cookie", cookie.decode("latin-1")))
                    if session.accessed:
                        vary_on_cookie(headers, text=True)
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_cookie)
