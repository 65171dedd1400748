"""SessionMiddleware: server-side sessions at ``scope["session"]`` (pure ASGI)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from renderkit._asgi import ASGIApp, Message, Receive, Scope, Send
from renderkit.sessions._base import DEFAULT_TTL, SessionStore
from renderkit.sessions._core import OnConflict, SessionEngine, cookie_values
from renderkit.sessions._memory import MemoryStore
from renderkit.sessions._session import Session
from renderkit.sessions._signing import SecretKey

__all__ = ["SessionMiddleware"]


def _vary_cookie(headers: list[Any]) -> None:
    """Add ``Vary: Cookie`` (a response that depends on the session must not be shared)."""
    for index, (key, value) in enumerate(headers):
        if key.lower() == b"vary":
            if b"cookie" not in value.lower() and value.strip() != b"*":
                headers[index] = (key, value + b", Cookie")
            return
    headers.append((b"vary", b"Cookie"))


class SessionMiddleware:
    """Put a server-side :class:`Session` at ``scope["session"]`` (``request.session``).

    A drop-in for Starlette's ``SessionMiddleware``: it takes the same keyword arguments with
    the same meaning (``secret_key``, ``session_cookie``, ``max_age``, ``path``,
    ``same_site``, ``https_only``, ``domain``), and ``store`` defaults to a
    :class:`MemoryStore`. The cookie carries only a signed random id; the data stays in the
    store.

    - ``secret_key``: one secret or a list (the first signs, all verify: key rotation);
      defaults to the SESSION_SECRET variable.
    - ``max_age``: cookie lifetime in seconds (None: a browser-session cookie); also the
      stored session's lifetime unless ``ttl`` is given. Default 7 days.
    - ``https_only``: the ``Secure`` flag; None (default) follows ``FORCE_HTTPS`` when set,
      else sets it in production (``renderkit.config.environment()``).
    - ``rolling``: extend the session on activity (refreshed at most every 1% of the TTL).
    - ``on_conflict``: ``"merge"`` (default) re-applies this request's changes on top of a
      newer write; ``"raise"`` raises :class:`SessionConflict`.

    A request without a valid session cookie never calls the store. With a store that does
    network I/O (Redis, Postgres) a request that carries a valid cookie loads the session
    once before the handler runs; with :class:`MemoryStore` the load happens on first access.
    """

    def __init__(
        self,
        app: ASGIApp,
        store: SessionStore | None = None,
        secret_key: SecretKey | Sequence[SecretKey] | None = None,
        session_cookie: str = "session",
        max_age: int | None = DEFAULT_TTL,
        path: str = "/",
        same_site: str = "lax",
        https_only: bool | None = None,
        domain: str | None = None,
        *,
        ttl: float | None = None,
        rolling: bool = False,
        on_conflict: OnConflict = "merge",
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
        self._needle = session_cookie.encode("latin-1") + b"="
        self._name = session_cookie
        self._preload = self.store.blocking

    def _cookie_values(self, scope: Scope) -> list[str]:
        needle = self._needle
        raw = [
            value.decode("latin-1")
            for key, value in scope["headers"]
            if key == b"cookie" and needle in value
        ]
        if not raw:
            return []
        return cookie_values(raw, self._name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return
        engine = self.engine
        values = self._cookie_values(scope)
        if values:
            session = engine.open(values, lazy=not self._preload)
            if self._preload and session._id is not None:
                await engine.apreload(session)
        else:
            session = Session()  # no cookie: what engine.open gives, without the detour
        scope["session"] = session
        if scope_type == "websocket":
            await self.app(scope, receive, send)
            return
        had_cookie = bool(values)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                # An untouched request without a session id needs no plan (the common case).
                plan = (
                    engine.plan(session, had_cookie)
                    if session.modified or session._id is not None
                    else None
                )
                if plan is not None:
                    await engine.acommit(plan)
                if session.accessed or (plan is not None and plan.cookie is not None):
                    headers: list[Any] = list(message.get("headers", ()))
                    if plan is not None and plan.cookie is not None:
                        headers.append((b"set-cookie", plan.cookie))
                    if session.accessed:
                        _vary_cookie(headers)
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def stats(self) -> dict[str, Any]:
        """The store's stats plus merges, dropped stale writes and store errors."""
        return self.engine.stats()
