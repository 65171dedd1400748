"""SessionMiddleware: server-side sessions at ``scope["session"]`` (pure ASGI)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypedDict, TypeVar, Unpack

from renderkit._asgi import ASGIApp, Message, Receive, Scope, Send
from renderkit.sessions._core import OnConflict, cookie_values, vary_on_cookie
from renderkit.sessions._engine import SessionEngine
from renderkit.sessions._memory import MemoryStore
from renderkit.sessions._session import Session
from renderkit.sessions._signing import SecretKey
from renderkit.sessions._store import SessionStore

__all__ = [
    "STARLETTE_MAX_AGE",
    "EngineOptions",
    "SessionAdapter",
    "SessionMiddleware",
    "engine_options",
    "get_session",
]

AppT = TypeVar("AppT")

#: Starlette's default cookie lifetime (14 days), kept so the migration is one import line.
STARLETTE_MAX_AGE = 14 * 24 * 3600


def get_session(request: Any) -> Session:
    """The typed :class:`Session` of a Starlette/FastAPI ``request`` (or an ASGI scope).

    ``request.session`` is typed ``dict`` by Starlette; this gives mypy the extras
    (``regenerate()``, ``user_id``). Raises ``RuntimeError`` when no SessionMiddleware ran.
    """
    scope = request if isinstance(request, Mapping) else request.scope
    session = scope.get("session")
    if not isinstance(session, Session):
        raise RuntimeError(
            "no renderkit session on this request: add "
            "renderkit.sessions.SessionMiddleware to the app"
        )
    return session


class EngineOptions(TypedDict, total=False):
    """The keyword options every session adapter (ASGI and WSGI ``SessionMiddleware``,
    Flask's ``RenderKitSessionInterface``) hands unchanged to :class:`SessionEngine`, whose
    defaults apply: ``ttl`` None (the cookie's ``max_age``), ``rolling`` False,
    ``on_conflict`` ``"merge"``, ``environ`` None (the process environment).

    Spelled out (not ``**options: Any``) so that ``Middleware(SessionMiddleware, ...)`` and
    ``app.add_middleware(SessionMiddleware, ...)`` type-check.
    """

    ttl: float | None
    rolling: bool
    on_conflict: OnConflict
    environ: Mapping[str, str] | None


def engine_options(owner: str, options: EngineOptions) -> EngineOptions:
    """``options`` once no key is foreign to :class:`EngineOptions`: a misspelt option fails
    when the adapter is built, also where the engine comes later (Flask's, per app)."""
    unknown = sorted(set(options) - EngineOptions.__optional_keys__)
    if unknown:
        allowed = ", ".join(sorted(EngineOptions.__optional_keys__))
        raise TypeError(
            f"{owner}() got an unexpected keyword argument {unknown[0]!r}; besides the cookie "
            f"options it takes {allowed}"
        )
    return options


class SessionAdapter(Generic[AppT]):
    """What the ASGI and the WSGI ``SessionMiddleware`` share: Starlette's options, the engine."""

    def __init__(
        self,
        app: AppT,
        store: SessionStore | None = None,
        secret_key: SecretKey | Sequence[SecretKey] | None = None,
        session_cookie: str = "session",
        max_age: int | None = STARLETTE_MAX_AGE,
        path: str = "/",
        same_site: str = "lax",
        https_only: bool | None = None,
        domain: str | None = None,
        partitioned: bool = False,
        **options: Unpack[EngineOptions],
    ) -> None:
        self.app = app
        self.store = store if store is not None else MemoryStore()
        self.engine = SessionEngine(
            self.store,
            secret_key=secret_key,
            cookie_name=session_cookie,
            max_age=max_age,
            path=path,
            domain=domain,
            same_site=same_site,
            https_only=https_only,
            partitioned=partitioned,
            **engine_options(type(self).__name__, options),
        )
        self._name = session_cookie
        self._needle = session_cookie.encode("latin-1") + b"="

    def stats(self) -> dict[str, Any]:
        """The store's stats plus merges, dropped stale writes and store errors."""
        return self.engine.stats()


class SessionMiddleware(SessionAdapter[ASGIApp]):
    """Put a server-side :class:`Session` (a ``dict``) at ``scope["session"]``.

    A drop-in for Starlette's ``SessionMiddleware``: it takes the same keyword arguments with
    the same meaning (``secret_key``, ``session_cookie``, ``max_age``, ``path``,
    ``same_site``, ``https_only``, ``domain``), and ``store`` defaults to a
    :class:`MemoryStore`. The cookie carries only a signed random id; the data stays in the
    store.

    - ``secret_key``: one secret or a list (the first signs, all verify: key rotation);
      defaults to the SESSION_SECRET variable; at least 32 bytes in production.
    - ``max_age``: cookie lifetime in seconds, default 14 days as in Starlette (None: a
      browser-session cookie; 0 or less: expired at once); also the stored session's
      lifetime unless ``ttl`` is given.
    - ``https_only``: the ``Secure`` flag; None (default) follows ``FORCE_HTTPS`` when set,
      else sets it in production (``renderkit.config.environment()``).
    - ``partitioned``: the ``Partitioned`` attribute (CHIPS), for an app embedded in other
      sites' frames; browsers require ``Secure`` with it.
    - ``secret_key`` may also be Starlette's ``Secret`` (``Config(..., cast=Secret)``).
    - ``rolling``: extend the session on activity (refreshed at most every 1% of the TTL).
    - ``on_conflict``: ``"merge"`` (default) applies this request's changed keys on top of a
      concurrent write; ``"raise"`` raises :class:`SessionConflict`.

    A request without a session cookie never calls the store; one with a valid cookie loads
    the session once, before the handler runs.
    """

    def _cookie_values(self, scope: Scope) -> list[str]:
        needle = self._needle
        raw: list[str] = []
        for key, value in scope["headers"]:  # a loop: most requests carry no session cookie
            if key == b"cookie" and needle in value:
                raw.append(value.decode("latin-1"))
        return cookie_values(raw, self._name) if raw else raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return
        engine = self.engine
        values = self._cookie_values(scope)
        # No cookie: what engine.aopen gives, without the detour (the common case).
        session = await engine.aopen(values) if values else Session()
        scope["session"] = session
        if scope_type == "websocket":
            await self.app(scope, receive, send)
            return
        had_cookie = bool(values)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and (
                session.modified or session.cookie_id is not None or session.accessed
            ):
                cookie = await engine.afinish(session, had_cookie)
                if session.accessed or cookie is not None:
                    headers: list[Any] = list(message.get("headers", ()))
                    if cookie is not None:
                        headers.append((b"set-cookie", cookie))
                    if session.accessed:
                        vary_on_cookie(headers, text=False)
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)
