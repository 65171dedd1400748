"""FastAPI side of rate limiting: the ``RateLimit`` dependency and ``install(app)``.

A dependency can raise but not answer, and FastAPI merges the headers of its injected
``Response`` only into responses it builds itself (``fastapi/routing.py``: a ``Response`` the
endpoint returns is sent as it is). So a refusal raises :class:`RateLimitExceeded`, carrying the
:class:`~renderkit.ratelimit.Verdict`, and :func:`install` registers the handler that renders it
as the one problem+json refusal, plus a header pass (no counting) that puts an allowed
request's ``RateLimit`` pairs on whatever response the endpoint produced, settling
``deduct_when`` limits on its status. With :class:`RateLimitMiddleware` in the app neither is
needed: the middleware decides and the dependency does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Unpack

# Runtime imports (starlette is a core dependency): FastAPI reads the dependency's
# annotations to inject Request and Response.
from starlette.requests import Request
from starlette.responses import Response

from renderkit._asgi import Message, Receive, Scope, Send
from renderkit.ratelimit._limiter import RateLimiter
from renderkit.ratelimit._middleware import (
    PENDING_KEY,
    LimitOptions,
    RateLimitExceeded,
    add_headers,
    declared,
    refused_response,
    request_info_from_scope,
    route_dependencies,
    routed_here,
)
from renderkit.ratelimit._rules import RateLimitPolicy, RouteLimit, Verdict

__all__ = ["RateLimit", "RateLimitExceeded", "install", "rate_limit_handler"]

logger = logging.getLogger("renderkit.ratelimit")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_DECIDED = "renderkit.ratelimit.decided"
"""Scope key: ids of the ``RateLimit`` dependencies already decided for this request."""
_warned: list[bool] = []


async def rate_limit_handler(request: Request, exc: Exception) -> Response:
    """The exception handler for :class:`RateLimitExceeded`: the documented problem+json 429.

    ``app.add_exception_handler(RateLimitExceeded, rate_limit_handler)``; :func:`install`
    does this for you.
    """
    if not isinstance(exc, RateLimitExceeded):
        raise TypeError(f"rate_limit_handler handles RateLimitExceeded, not {exc!r}")
    return refused_response(exc.verdict)


class _HeaderPass:
    """Pure ASGI: puts the ``RateLimit`` pairs a dependency decided on the response start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pending: list[tuple[RateLimitPolicy, Verdict]] = []
        scope[PENDING_KEY] = pending

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and pending:
                extra: list[tuple[bytes, bytes]] = []
                for policy, verdict in pending:
                    extra += await policy.asettle(verdict, message["status"])
                pending.clear()
                message["headers"] = [*(message.get("headers") or []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: Any) -> None:
    """Make ``Depends(RateLimit(...))`` answer as :class:`RateLimitMiddleware` does, without it.

    One line after ``app = FastAPI()``: registers :func:`rate_limit_handler` for
    :class:`RateLimitExceeded` (the problem+json refusal) and a header pass, so an allowed
    request's ``RateLimit`` pairs reach every response, a ``Response`` the endpoint returns
    itself included, and ``deduct_when`` limits are charged on the response status. Call it
    before the app starts (Starlette refuses middleware added later).
    """
    app.add_exception_handler(RateLimitExceeded, rate_limit_handler)
    app.add_middleware(_HeaderPass)


class RateLimit:
    """A FastAPI dependency: ``Depends(RateLimit("10/minute", limiter=limiter))``.

    With :class:`RateLimitMiddleware` in the app the middleware counts this limit with the
    route's others and the default, all or nothing, and the dependency does nothing. Without
    it, call :func:`install` once: the route's ``RateLimit`` dependencies on one limiter are
    decided together (refused by one, charged to none), a refusal is the problem+json 429 and
    the headers reach every response. Options as :class:`~renderkit.ratelimit.RouteLimit`
    (``shared``, ``cost``, ``exempt_when``, ``deduct_when``, ``on_breach``,
    ``override_defaults``, ``fail_closed``).
    """

    def __init__(
        self,
        limit: str | Mapping[str, str],
        *,
        limiter: RateLimiter,
        **options: Unpack[LimitOptions],
    ) -> None:
        self.spec, self.policy = declared(limit, limiter, options)
        self._peers: dict[int, tuple[Any, tuple[RateLimit, ...]]] = {}

    @property
    def __renderkit_limit__(self) -> RouteLimit:
        """The limit this dependency declares (how the middleware finds it on a route)."""
        return self.spec

    def peers(self, route: Any) -> tuple[RateLimit, ...]:
        """This route's ``RateLimit`` dependencies counting on this one's limiter (self first)."""
        entry = self._peers.get(id(route))
        if entry is None or entry[0] is not route:
            limiter = self.policy.limiter
            same = tuple(
                dep
                for dep in route_dependencies(route)
                if isinstance(dep, RateLimit) and dep is not self and dep.policy.limiter is limiter
            )
            entry = self._peers[id(route)] = (route, (self, *same))
        return entry[1]

    async def __call__(self, request: Request, response: Response) -> None:
        scope = request.scope
        if routed_here(scope):
            return  # the middleware counted this route's limits already
        decided: set[int] = scope.setdefault(_DECIDED, set())
        if id(self) in decided:
            return  # decided together with a sibling dependency of this route
        route = scope.get("route")
        peers = (self,) if route is None else self.peers(route)
        decided.update(id(peer) for peer in peers)
        specs = tuple(peer.spec for peer in peers)
        verdict = await self.policy.adecide(request_info_from_scope(scope, None, specs))
        pending = scope.get(PENDING_KEY)
        if pending is None:
            _warn_once()
        if not verdict.allowed:
            raise RateLimitExceeded(verdict)
        if pending is not None:
            pending.append((self.policy, verdict))
        else:
            add_headers(response, verdict.headers)


def _warn_once() -> None:
    if _warned:
        return
    _warned.append(True)
    logger.warning(
        "Depends(RateLimit(...)) runs without renderkit.ratelimit.install(app) or "
        "RateLimitMiddleware: refusals get FastAPI's {'detail': ...} body instead of the "
        "problem+json one, a Response the endpoint returns itself gets no RateLimit headers, "
        "and deduct_when limits are never charged. Call renderkit.ratelimit.install(app) once "
        "after app = FastAPI()."
    )
