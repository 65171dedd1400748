"""ASGI side of rate limiting: a pure ASGI middleware, a FastAPI dependency, a route decorator."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

# Runtime imports (starlette is a core dependency): FastAPI reads the dependency's
# annotations to inject Request and Response.
from starlette.requests import Request
from starlette.responses import Response

from renderkit._asgi import Message, Receive, Scope, Send
from renderkit.ratelimit._keys import KeyFunc, RequestInfo
from renderkit.ratelimit._limiter import RateLimiter, RateLimitResult
from renderkit.ratelimit._rules import Check, RateLimitPolicy, Rule

if TYPE_CHECKING:
    from renderkit._http import ProxyTrust

__all__ = ["RateLimit", "RateLimitMiddleware", "limit", "request_info_from_scope"]

logger = logging.getLogger("renderkit.ratelimit")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def request_info_from_scope(scope: Scope) -> RequestInfo:
    """The framework-free view of an ASGI HTTP request."""
    client = scope.get("client")
    peer = client[0] if client else None
    session = scope.get("session") if "session" in scope else None
    return RequestInfo(
        method=scope.get("method", "GET"),
        path=scope.get("path", "/"),
        headers=scope.get("headers") or [],
        peer=peer if isinstance(peer, str) else None,
        session=session if isinstance(session, Mapping) else None,
        native=scope,
    )


async def _hit(policy: RateLimitPolicy, check: Check) -> RateLimitResult | None:
    try:
        return await policy.limiter.ahit(check.key, check.items, check.cost)
    except Exception:
        # The limiter already fails open on storage errors; this is a bug guard: never a 500.
        logger.exception("rate-limit check failed; letting the request through")
        return None


class RateLimitMiddleware:
    """Pure ASGI middleware: count each HTTP request, add RateLimit headers, refuse with 429.

    ``app.add_middleware(RateLimitMiddleware, limiter=limiter)``; every other keyword goes to
    :class:`RateLimitPolicy` (``key``, ``trust``, ``tiers``, ``tier``, ``rules``,
    ``exempt_paths``, ``exempt_keys``, ``legacy_headers``, ``problem_json``, ...), or pass a
    ready ``policy``. Health endpoints are always exempt; WebSocket and lifespan scopes pass
    straight through. With ``fail_open=False`` on the limiter, a storage outage answers 503.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter | None = None,
        *,
        policy: RateLimitPolicy | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        if policy is None:
            if limiter is None:
                raise TypeError("RateLimitMiddleware needs limiter=RateLimiter(...) or policy=")
            policy = RateLimitPolicy(limiter, **options)
        elif limiter is not None or options:
            raise TypeError("RateLimitMiddleware: pass policy= alone, or limiter= with options")
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        if policy._ip_only:
            client = scope.get("client")
            peer = client[0] if client else None
            check = policy._check_ip(
                scope.get("method", "GET"),
                scope.get("path", "/"),
                peer if isinstance(peer, str) else None,
                scope.get("headers") or [],
            )
        else:
            check = policy.check_for(request_info_from_scope(scope))
        if check is None:
            await self.app(scope, receive, send)
            return
        try:
            result = await policy.limiter.ahit(check.key, check.items, check.cost)
        except Exception:
            # The limiter already fails open on storage errors; this is a bug guard: never a 500.
            logger.exception("rate-limit check failed; letting the request through")
            await self.app(scope, receive, send)
            return
        if not result.allowed:
            status, headers, body = policy.refusal(result, check)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        extra = policy.response_headers(result, check)
        if not extra:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _HeaderSend(send, extra))


class _HeaderSend:
    """The ``send`` of a limited request: appends the RateLimit headers to the response start."""

    __slots__ = ("extra", "send")

    def __init__(self, send: Send, extra: list[tuple[bytes, bytes]]) -> None:
        self.send = send
        self.extra = extra

    def __call__(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            headers = message.get("headers")
            message["headers"] = [*headers, *self.extra] if headers else self.extra
        return self.send(message)


class _RouteLimit:
    """Shared by the FastAPI dependency and the route decorator: one limit for one route."""

    def __init__(
        self,
        limit: str,
        *,
        limiter: RateLimiter,
        key: KeyFunc | None = None,
        trust: ProxyTrust | None = None,
        name: str | None = None,
        methods: Iterable[str] | None = None,
        cost: int = 1,
        legacy_headers: bool = False,
        problem_json: bool = False,
    ) -> None:
        rule = Rule(
            "/*",
            limit,
            methods=list(methods) if methods else None,
            name=name or f"route-{limit}",
            cost=cost,
        )
        self.policy = RateLimitPolicy(
            limiter,
            key=key,
            trust=trust,
            rules=[rule],
            limit_unmatched=False,
            legacy_headers=legacy_headers,
            problem_json=problem_json,
        )

    async def _check(self, request: Request) -> tuple[Check | None, RateLimitResult | None]:
        info = request_info_from_scope(request.scope)
        check = self.policy.check_for(info)
        if check is None:
            return None, None
        return check, await _hit(self.policy, check)


class RateLimit(_RouteLimit):
    """A FastAPI dependency: ``Depends(RateLimit("10/minute", limiter=limiter))``.

    Adds the RateLimit headers to the route's response; a refused request raises
    ``HTTPException`` (429, or 503 when failing closed) carrying ``Retry-After``.
    """

    async def __call__(self, request: Request, response: Response) -> None:
        check, result = await self._check(request)
        if check is None or result is None:
            return
        if not result.allowed:
            from starlette.exceptions import HTTPException

            status, headers, _body = self.policy.refusal(result, check)
            raise HTTPException(
                status_code=status,
                detail="rate limit exceeded" if status == 429 else "rate limiting unavailable",
                headers={
                    k.decode("latin-1"): v.decode("latin-1")
                    for k, v in headers
                    if k not in (b"content-type", b"content-length")
                },
            )
        for name, value in self.policy.response_headers(result, check):
            response.headers.append(name.decode("latin-1"), value.decode("latin-1"))


Endpoint = Callable[..., Awaitable["Response"]]


def limit(
    value: str,
    *,
    limiter: RateLimiter,
    key: KeyFunc | None = None,
    trust: ProxyTrust | None = None,
    name: str | None = None,
    methods: Iterable[str] | None = None,
    cost: int = 1,
    legacy_headers: bool = False,
    problem_json: bool = False,
) -> Callable[[Endpoint], Endpoint]:
    """Decorate a Starlette endpoint ``async def endpoint(request)`` with its own limit."""
    route = _RouteLimit(
        value,
        limiter=limiter,
        key=key,
        trust=trust,
        name=name,
        methods=methods,
        cost=cost,
        legacy_headers=legacy_headers,
        problem_json=problem_json,
    )

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
            check, result = await route._check(request)
            if check is None or result is None:
                return await endpoint(request, *args, **kwargs)
            if not result.allowed:
                from starlette.responses import Response as StarletteResponse

                status, headers, body = route.policy.refusal(result, check)
                response = StarletteResponse(body, status_code=status)
                response.raw_headers = list(headers)
                return response
            response = await endpoint(request, *args, **kwargs)
            for header_name, header_value in route.policy.response_headers(result, check):
                response.headers.append(
                    header_name.decode("latin-1"), header_value.decode("latin-1")
                )
            return response

        return wrapper

    return decorate
