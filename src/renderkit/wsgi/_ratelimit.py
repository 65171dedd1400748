"""WSGI rate limiting: the same RateLimitPolicy decision as ASGI, with sync storage calls."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from renderkit._http import mapping_headers
from renderkit.ratelimit import RateLimitPolicy, RequestInfo, Verdict
from renderkit.ratelimit._middleware import PolicyMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["RateLimitMiddleware", "decide", "request_info_from_environ", "status_line"]

logger = logging.getLogger("renderkit.ratelimit")


def request_info_from_environ(
    environ: WSGIEnvironment,
    session: Any = None,
    route: str | None = None,
    limits: tuple[Any, ...] = (),
) -> RequestInfo:
    """The framework-free view of a WSGI request."""
    peer = environ.get("REMOTE_ADDR")
    return RequestInfo(
        method=str(environ.get("REQUEST_METHOD", "GET")),
        path=str(environ.get("PATH_INFO") or "/"),
        headers=mapping_headers(environ),
        peer=peer if isinstance(peer, str) and peer else None,
        session=session,
        native=environ,
        route=route,
        limits=limits,
    )


def status_line(status: int) -> str:
    """``429`` -> ``"429 Too Many Requests"``."""
    return f"{status} {HTTPStatus(status).phrase}"


def str_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """ASGI-style byte header pairs as WSGI string pairs."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def decide(policy: RateLimitPolicy, info: RequestInfo, *, routed: bool = False) -> Verdict | None:
    """``policy.decide(info)``, or None after logging a bug (never a 500 for limiting)."""
    try:
        return policy.decide(info, routed=routed)
    except Exception:
        # The limiter already fails open on storage errors; this guards bugs: never a 500.
        logger.exception("rate-limit check failed; letting the request through")
        return None


def _status_code(status: str) -> int:
    try:
        return int(status.split(" ", 1)[0])
    except ValueError:
        return 500


class RateLimitMiddleware(PolicyMiddleware["WSGIApplication"]):
    """WSGI middleware: ``app.wsgi_app = RateLimitMiddleware(app.wsgi_app, limiter=limiter)``.

    Takes the same options as the ASGI :class:`renderkit.ratelimit.RateLimitMiddleware`. A
    plain WSGI app has no route templates to read, so the default limit is one quota per
    client for the whole app; ``RenderKit(app, limiter=...)`` on Flask counts per route.
    """

    app: WSGIApplication

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        verdict = decide(self.policy, request_info_from_environ(environ))
        if verdict is None or (verdict.allowed and not verdict.headers and not verdict.deferred):
            return self.app(environ, start_response)
        if not verdict.allowed:
            start_response(status_line(verdict.status), str_headers(verdict.headers))
            return [verdict.body]
        policy = self.policy

        def start_with_headers(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            extra = str_headers(policy.settle(verdict, _status_code(status)))
            return start_response(status, [*headers, *extra], exc_info)

        return self.app(environ, start_with_headers)
