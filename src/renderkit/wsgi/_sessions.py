"""WSGI SessionMiddleware: the same stores, cookie format and commit logic as the ASGI one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from renderkit.sessions._core import OnConflict, cookie_values, vary_on_cookie
from renderkit.sessions._engine import SessionEngine
from renderkit.sessions._memory import MemoryStore
from renderkit.sessions._middleware import STARLETTE_MAX_AGE
from renderkit.sessions._signing import SecretKey
from renderkit.sessions._store import SessionStore

__all__ = ["SESSION_KEY", "SessionMiddleware"]

SESSION_KEY = "renderkit.session"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class SessionMiddleware:
    """Put a server-side session at ``environ["renderkit.session"]`` for any WSGI app.

    Takes the options of :class:`renderkit.sessions.SessionMiddleware`. A request with a
    valid session cookie loads its session before the app runs (one without makes no store
    call); it is saved, with its cookie, when the app calls ``start_response``: changes made
    while the body streams are not saved.
    """

    def __init__(
        self,
        app: WSGIApp,
        store: SessionStore | None = None,
        secret_key: SecretKey | Sequence[SecretKey] | None = None,
        session_cookie: str = "session",
        max_age: int | None = STARLETTE_MAX_AGE,
        path: str = "/",
        same_site: str = "lax",
        https_only: bool | None = None,
        domain: str | None = None,
        *,
        ttl: float | None = None,
        rolling: bool = False,
        on_conflict: OnConflict = "merge",
        environ_key: str = SESSION_KEY,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.store = store if store is not None else MemoryStore()
        self.engine = SessionEngine(
            self.store,
            secret_key=secret_key,
            cookie_name=session_cookie,
            max_age=max_age,
            ttl=ttl,
            path=path,
            domain=domain,
            same_site=same_site,
            https_only=https_only,
            rolling=rolling,
            on_conflict=on_conflict,
            environ=environ,
        )
        self.environ_key = environ_key
        self._name = session_cookie

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

    def stats(self) -> dict[str, Any]:
        """The store's stats plus merges, dropped stale writes and store errors."""
        return self.engine.stats()
