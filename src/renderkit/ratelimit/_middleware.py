"""ASGI side of rate limiting: the middleware and a route decorator (the FastAPI dependency
is in :mod:`renderkit.ratelimit._fastapi`).

All three translate a request into :class:`~renderkit.ratelimit.RequestInfo` and call the
policy's one decision (:meth:`RateLimitPolicy.adecide`). The middleware resolves the route the
way Starlette's router will (so the default limit is per route template, and ``@limit`` /
``RateLimit`` limits are counted together with it, all or nothing) and leaves its verdict in
``scope["renderkit.ratelimit"]``; a decorator or dependency that finds a routed verdict there
does not decide again.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, Unpack

# Runtime imports (starlette is a core dependency): FastAPI reads the dependency's
# annotations to inject Request and Response.
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from renderkit._asgi import Message, Receive, Scope, Send
from renderkit.errors import RenderKitError
from renderkit.ratelimit._keys import KeyFunc, RequestInfo
from renderkit.ratelimit._limiter import RateLimiter, RateLimitResult
from renderkit.ratelimit._rules import (
    Cost,
    RateLimitPolicy,
    RouteLimit,
    Rule,
    TierFunc,
    Verdict,
)

if TYPE_CHECKING:
    from renderkit._http import ProxyTrust

__all__ = [
    "PENDING_KEY",
    "SCOPE_KEY",
    "HeaderSend",
    "LimitOptions",
    "PolicyMiddleware",
    "RateLimitExceeded",
    "RateLimitMiddleware",
    "SettleSend",
    "add_headers",
    "app_refusal_handler",
    "exempt",
    "limit",
    "refused_response",
    "request_info_from_scope",
    "route_dependencies",
    "route_limit",
    "routed_here",
    "send_app_refusal",
]

logger = logging.getLogger("renderkit.ratelimit")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
SCOPE_KEY = "renderkit.ratelimit"
"""Where the middleware leaves its :class:`Verdict` in the ASGI scope."""
_MEMO_SIZE = 4096


def request_info_from_scope(
    scope: Scope, route: str | None = None, limits: tuple[RouteLimit, ...] = ()
) -> RequestInfo:
    """The framework-free view of an ASGI HTTP request."""
    client = scope.get("client")
    peer = client[0] if client else None
    session = scope.get("session") if "session" in scope else None
    if route is None:
        matched = scope.get("route")
        route = getattr(matched, "path", None) if matched is not None else None
    return RequestInfo(
        scope.get("method", "GET"),
        scope.get("path", "/"),
        scope.get("headers") or [],
        peer if isinstance(peer, str) else None,
        session if session is not None and isinstance(session, Mapping) else None,
        scope,
        route,
        limits,
    )


def route_dependencies(route: Any) -> list[Any]:
    """The rate-limit dependencies (FastAPI ``RateLimit``) anywhere in a route's dependency
    tree, each once: objects whose ``__renderkit_limit__`` is a :class:`RouteLimit`."""
    found: list[Any] = []
    pending = [getattr(route, "dependant", None)]
    while pending:
        dependant = pending.pop()
        if dependant is None:
            continue
        for sub in getattr(dependant, "dependencies", ()):
            call = getattr(sub, "call", None)
            spec = getattr(call, "__renderkit_limit__", None)
            if isinstance(spec, RouteLimit) and all(call is not f for f in found):
                found.append(call)
            pending.append(sub)
    return found


def route_limits(route: Any) -> tuple[RouteLimit, ...]:
    """The limits a route declares: ``@limit`` on its endpoint, ``RateLimit`` dependencies."""
    found = list(getattr(getattr(route, "endpoint", None), "__renderkit_limits__", ()))
    found += [dep.__renderkit_limit__ for dep in route_dependencies(route)]
    return tuple(found)


def _find(routes: Iterable[Any], scope: Scope, prefix: str) -> tuple[str, Any] | None:
    from starlette.routing import Match

    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        template = prefix + getattr(route, "path", "")
        inner = getattr(route, "routes", None)
        if inner is not None and not hasattr(route, "endpoint"):  # a Mount: look inside
            found = _find(inner, {**scope, **child}, template)
            if found is not None:
                return found
            continue
        if match is Match.FULL:
            return template, route
        partial = partial or (template, route)
    return partial


class _Routes:
    """Route templates and route limits of the app, found as its router will find them."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, str], tuple[str | None, tuple[RouteLimit, ...], bool]] = {}
        self._limits: dict[int, tuple[Any, tuple[RouteLimit, ...]]] = {}

    def resolve(self, scope: Scope) -> tuple[str | None, tuple[RouteLimit, ...], bool]:
        routes = getattr(scope.get("app"), "routes", None)
        if routes is None:
            return None, (), False
        memo = self._memo
        key = (scope.get("method", "GET"), scope.get("path", "/"))
        known = memo.get(key)
        if known is None:
            found = _find(routes, scope, "")
            known = (None, (), True) if found is None else (found[0], self._of(found[1]), True)
            if len(memo) >= _MEMO_SIZE:
                del memo[next(iter(memo))]  # the oldest entry, never the whole memo
            memo[key] = known
        return known

    def _of(self, route: Any) -> tuple[RouteLimit, ...]:
        entry = self._limits.get(id(route))
        if entry is None or entry[0] is not route:
            entry = self._limits[id(route)] = (route, route_limits(route))
        return entry[1]


class RateLimitOptions(TypedDict, total=False):
    """The keyword options :class:`RateLimitMiddleware` passes on to :class:`RateLimitPolicy`.

    Spelled out (not ``**options: Any``) so that ``Middleware(RateLimitMiddleware, ...)`` and
    ``app.add_middleware(RateLimitMiddleware, ...)`` type-check: Starlette's ``ParamSpec``
    cannot be matched against a bare ``**kwargs: Any``.
    """

    key: KeyFunc | None
    trust: ProxyTrust | None
    default: str | Sequence[str] | bool | None
    tiers: Mapping[str, str] | None
    tier: TierFunc | None
    default_tier: str | None
    rules: Iterable[Rule]
    exempt_paths: Sequence[str]
    exempt_keys: Iterable[str]
    limit_unmatched: bool
    shared_default: bool
    headers: bool
    legacy_headers: bool
    problem_json: bool
    watch_keys: bool
    environ: Mapping[str, str] | None


def policy_from(
    limiter: RateLimiter | None, policy: RateLimitPolicy | None, options: RateLimitOptions
) -> RateLimitPolicy:
    """The middleware's policy: ``policy`` alone, or one built from ``limiter`` and options
    (shared by the ASGI and WSGI middleware)."""
    if policy is None:
        if limiter is None:
            raise TypeError("RateLimitMiddleware needs limiter=RateLimiter(...) or policy=")
        return RateLimitPolicy(limiter, **options)
    if limiter is not None or options:
        raise TypeError("RateLimitMiddleware: pass policy= alone, or limiter= with options")
    return policy


AppT = TypeVar("AppT")


class PolicyMiddleware(Generic[AppT]):
    """What the ASGI and WSGI middleware share: the app they wrap, and the policy in force
    (``policy`` alone, or one built from ``limiter`` and the :class:`RateLimitPolicy`
    options)."""

    def __init__(
        self,
        app: AppT,
        limiter: RateLimiter | None = None,
        *,
        policy: RateLimitPolicy | None = None,
        **options: Unpack[RateLimitOptions],
    ) -> None:
        self.app = app
        self.policy: RateLimitPolicy = policy_from(limiter, policy, options)


class RateLimitMiddleware(PolicyMiddleware[ASGIApp]):
    """Pure ASGI middleware: one decision per HTTP request, RateLimit headers, 429 refusals.

    ``app.add_middleware(RateLimitMiddleware, limiter=limiter)``; every other keyword goes to
    :class:`RateLimitPolicy` (``key``, ``trust``, ``default``, ``tiers``, ``tier``, ``rules``,
    ``exempt_paths``, ``exempt_keys``, ``legacy_headers``, ...), or pass a ready ``policy``.
    Health endpoints are always exempt; WebSocket and lifespan scopes pass straight through.
    With ``fail_open=False`` on the limiter, a storage outage answers 503.
    """

    @functools.cached_property
    def _routes(self) -> _Routes:
        """The app's route templates and route limits, found as its router finds them."""
        return _Routes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, limits, routed = self._routes.resolve(scope)
        try:
            verdict = await self.policy.adecide(
                request_info_from_scope(scope, route, limits), routed=routed
            )
        except Exception:
            # The limiter already fails open on storage errors; this is a bug guard: never a 500.
            logger.exception("rate-limit check failed; letting the request through")
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = verdict
        if not verdict.allowed:
            handler = app_refusal_handler(scope)
            if handler is not None:
                await send_app_refusal(handler, scope, receive, send, verdict)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": verdict.status,
                    "headers": verdict.headers,
                }
            )
            await send({"type": "http.response.body", "body": verdict.body, "more_body": False})
            return
        if verdict.deferred:
            await self.app(scope, receive, SettleSend(send, self.policy, verdict))
        elif verdict.headers:
            await self.app(scope, receive, HeaderSend(send, verdict.headers))
        else:
            await self.app(scope, receive, send)


class HeaderSend:
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


class SettleSend:
    """The ``send`` of a request with ``deduct_when`` limits: at the response start (the status
    is known) charge them or not, then add the headers as they stand after that."""

    __slots__ = ("policy", "send", "verdict")

    def __init__(self, send: Send, policy: RateLimitPolicy, verdict: Verdict) -> None:
        self.send = send
        self.policy = policy
        self.verdict = verdict

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            extra = await self.policy.asettle(self.verdict, message["status"])
            message["headers"] = [*(message.get("headers") or []), *extra]
        await self.send(message)


def routed_here(scope: Scope, endpoint: object = None) -> bool:
    """True when the middleware decided this request with this endpoint's limits."""
    verdict = scope.get(SCOPE_KEY)
    if verdict is None or not verdict.routed:
        return False
    return endpoint is None or scope.get("endpoint") is endpoint


class RateLimitExceeded(HTTPException, RenderKitError):
    """A refused request (429, or 503 failing closed), as an ``HTTPException``.

    ``verdict`` holds the decision; ``headers`` carries ``Retry-After`` and every ``RateLimit``
    pair, for a handler of your own. A ``RateLimit`` dependency raises it; ``@limit`` and
    :class:`RateLimitMiddleware` raise it (the decorator) or call the handler (the
    middleware) only when the app registered one for it,
    ``app.add_exception_handler(RateLimitExceeded, handler)`` as slowapi users do, and answer
    the documented problem+json refusal otherwise. :func:`rate_limit_handler` (registered by
    :func:`install`) renders that refusal.
    """

    def __init__(self, verdict: Verdict) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in verdict.headers:
            if raw_name in (b"content-type", b"content-length"):
                continue
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        result = verdict.result
        detail = "Rate limit exceeded." if result is None else _detail(verdict)
        HTTPException.__init__(self, verdict.status, detail=detail, headers=headers)
        self.verdict = verdict


def _detail(verdict: Verdict) -> str:
    import json

    detail: str = json.loads(verdict.body).get("detail", "Rate limit exceeded.")
    return detail


def app_refusal_handler(scope: Scope) -> Callable[..., Any] | None:
    """The handler the Starlette/FastAPI app registered for :class:`RateLimitExceeded`
    (``app.add_exception_handler``), or None: renderkit's own refusal is sent then."""
    handlers = getattr(scope.get("app"), "exception_handlers", None)
    return handlers.get(RateLimitExceeded) if isinstance(handlers, dict) else None


async def send_app_refusal(
    handler: Callable[..., Any], scope: Scope, receive: Receive, send: Send, verdict: Verdict
) -> None:
    """Answer a refused request with the app's own handler as Starlette's exception
    middleware would (a plain function in the thread pool): the middleware runs outside it,
    so it calls the handler itself."""
    from starlette.concurrency import run_in_threadpool

    request, exc = Request(scope, receive), RateLimitExceeded(verdict)
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):
        response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    await response(scope, receive, send)


def refused_response(verdict: Verdict) -> Response:
    """The refusal a verdict describes (problem+json, ``Retry-After``, the header pairs)."""
    response = Response(verdict.body, status_code=verdict.status)
    response.raw_headers = list(verdict.headers)
    return response


def add_headers(response: Response, headers: list[tuple[bytes, bytes]]) -> None:
    """Append raw header pairs to a Starlette response (repeated names stay repeated)."""
    for name, value in headers:
        response.headers.append(name.decode("latin-1"), value.decode("latin-1"))


def route_limit(value: str | Mapping[str, str], **options: Any) -> RouteLimit:
    """The :class:`RouteLimit` of a decorator or dependency (None options left at default)."""
    return RouteLimit(value, **{k: v for k, v in options.items() if v is not None})


class LimitOptions(TypedDict, total=False):
    """The keyword options of :func:`limit` and ``RateLimit``: who a request counts against and
    how headers look when the limit decides alone (``key``, ``trust``, ``legacy_headers``;
    ``problem_json`` is accepted and changes nothing), then the :class:`RouteLimit` options."""

    key: KeyFunc | None
    trust: ProxyTrust | None
    legacy_headers: bool
    problem_json: bool
    shared: str | None
    methods: Iterable[str] | None
    cost: Cost
    exempt_when: Callable[..., bool] | None
    deduct_when: Callable[[int], bool] | None
    on_breach: Callable[[RequestInfo, RateLimitResult], object] | None
    override_defaults: bool
    fail_closed: bool
    name: str | None


def declared(
    value: str | Mapping[str, str], limiter: RateLimiter, options: LimitOptions
) -> tuple[RouteLimit, RateLimitPolicy]:
    """The limit a decorator or dependency declares, and the policy that decides it when no
    middleware does (its own key and headers, no app-wide default)."""
    rest: dict[str, Any] = dict(options)
    key, trust = rest.pop("key", None), rest.pop("trust", None)
    legacy, _ = bool(rest.pop("legacy_headers", False)), rest.pop("problem_json", None)
    spec = route_limit(value, key=key, **rest)
    policy = RateLimitPolicy(limiter, key=key, trust=trust, default=None, legacy_headers=legacy)
    return spec, policy


Endpoint = Callable[..., Any]
PENDING_KEY = "renderkit.ratelimit.pending"
"""Scope key of ``install(app)``'s header pass: (policy, allowed verdict) pairs whose headers
go on the response start, for endpoints that return a value instead of a ``Response``."""
_REQUEST_PARAM = "_renderkit_request"
"""The keyword ``@limit`` asks FastAPI for when the endpoint takes no ``Request`` itself."""
_warned_value: list[bool] = []


def _takes_request(annotation: Any) -> bool:
    if isinstance(annotation, str):  # an annotation FastAPI resolves later
        return annotation.rsplit(".", 1)[-1] == "Request"
    return isinstance(annotation, type) and issubclass(annotation, Request)


def _signature_with_request(endpoint: Endpoint) -> inspect.Signature | None:
    """``endpoint``'s signature as FastAPI should see it on the wrapper: unchanged when a
    parameter takes the ``Request``, else with a keyword-only ``_renderkit_request: Request``
    (before any ``**kwargs``), so FastAPI hands the wrapper the request. Starlette passes the
    request positionally and never reads it."""
    try:
        signature = inspect.signature(endpoint)
    except (TypeError, ValueError):  # no signature to read (a builtin, a C callable)
        return None
    with contextlib.suppress(Exception):  # an annotation that does not evaluate here stays a
        signature = inspect.signature(endpoint, eval_str=True)  # string FastAPI resolves later
    parameters = list(signature.parameters.values())
    if any(_takes_request(p.annotation) for p in parameters):
        return signature
    extra = inspect.Parameter(_REQUEST_PARAM, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
    at = next((i for i, p in enumerate(parameters) if p.kind is p.VAR_KEYWORD), len(parameters))
    parameters.insert(at, extra)
    return signature.replace(parameters=parameters)


def _request_among(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    """The request Starlette passed positionally, or FastAPI by its parameter's name."""
    request = kwargs.pop(_REQUEST_PARAM, None)
    if request is not None:
        return request  # type: ignore[no-any-return]
    if args and isinstance(args[0], Request):
        return args[0]
    return next((v for v in kwargs.values() if isinstance(v, Request)), None)


async def _deliver(scope: Scope, policy: RateLimitPolicy, verdict: Verdict, result: Any) -> None:
    """Put an allowed verdict's headers on what the endpoint returned (settling
    ``deduct_when`` limits on its status): on a ``Response`` here, else through
    ``install(app)``'s header pass when the app has one."""
    if isinstance(result, Response):
        add_headers(result, await policy.asettle(verdict, result.status_code))
        return
    pending = scope.get(PENDING_KEY)
    if pending is not None:
        pending.append((policy, verdict))
    elif not _warned_value:
        _warned_value.append(True)
        logger.warning(
            "@limit on an endpoint that returns a value, not a Response, in an app without "
            "RateLimitMiddleware or renderkit.ratelimit.install(app): the limit counts, but "
            "its RateLimit headers are not sent and deduct_when limits are not charged. Add "
            "RateLimitMiddleware, or call renderkit.ratelimit.install(app) after app = FastAPI()."
        )


def limit(
    value: str | Mapping[str, str], *, limiter: RateLimiter, **options: Unpack[LimitOptions]
) -> Callable[[Endpoint], Endpoint]:
    """Give a Starlette or FastAPI endpoint (``async def`` or plain ``def``) its own limit.

    Scoped to the route template and method unless ``shared="name"``; with
    :class:`RateLimitMiddleware` the middleware counts it, else the decorator does. Options as
    :class:`~renderkit.ratelimit.RouteLimit`. Stack several ``@limit`` to stack limits: they
    are charged together, all or none. The endpoint keeps its own parameters (a FastAPI one
    needs no ``request``); without the middleware, a FastAPI endpoint returning a value gets
    its headers from :func:`~renderkit.ratelimit.install`.
    """
    spec, policy = declared(value, limiter, options)

    def decorate(endpoint: Endpoint) -> Endpoint:
        if inspect.isclass(endpoint) or not callable(endpoint):
            raise TypeError(
                f"@limit decorates an endpoint function, not {endpoint!r}; for an HTTPEndpoint "
                "class, use RateLimitMiddleware with a Rule for its path"
            )
        original = getattr(endpoint, "__renderkit_endpoint__", endpoint)
        specs = (*getattr(endpoint, "__renderkit_limits__", ()), spec)
        is_async = inspect.iscoroutinefunction(original)

        @functools.wraps(original)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = _request_among(args, kwargs)
            if request is None:
                raise TypeError(
                    f"@limit on {original.__qualname__}: no Request among its arguments; "
                    "decorate a Starlette or FastAPI route endpoint"
                )
            verdict = None
            if not routed_here(request.scope, wrapper):
                verdict = await policy.adecide(request_info_from_scope(request.scope, None, specs))
                if not verdict.allowed:
                    if app_refusal_handler(request.scope) is not None:
                        raise RateLimitExceeded(verdict)  # the app's handler answers
                    return refused_response(verdict)
            if is_async:
                result = await original(*args, **kwargs)
            else:
                from starlette.concurrency import run_in_threadpool

                result = await run_in_threadpool(original, *args, **kwargs)
            if verdict is not None:
                await _deliver(request.scope, policy, verdict, result)
            return result

        signature = _signature_with_request(original)
        if signature is not None:
            wrapper.__signature__ = signature  # type: ignore[attr-defined]
        wrapper.__renderkit_limits__ = specs  # type: ignore[attr-defined]
        wrapper.__renderkit_endpoint__ = original  # type: ignore[attr-defined]
        return wrapper

    return decorate


@functools.cache
def _exempt_mark() -> RouteLimit:
    """The mark @exempt adds, built on first use (a RouteLimit parses with ``limits``, which
    importing renderkit.ratelimit must not load)."""
    return RouteLimit("1/second", exempt_when=lambda: True, name="exempt", scope="exempt")


def exempt(endpoint: Endpoint) -> Endpoint:
    """Exempt an endpoint from the app-wide default limit (Starlette, FastAPI or Flask view).

    Its own ``@limit`` limits, if any, still count; a health or webhook endpoint with none is
    not limited at all. The endpoint is returned unchanged, marked for the middleware and for
    ``RenderKit``'s hook.
    """
    if not callable(endpoint):
        raise TypeError(f"@exempt marks an endpoint function, not {endpoint!r}")
    marks = (*getattr(endpoint, "__renderkit_limits__", ()), _exempt_mark())
    try:
        endpoint.__renderkit_limits__ = marks  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError(f"@exempt cannot mark {endpoint!r}; decorate a plain function") from None
    return endpoint
