"""WSGI rate limiting: the same RateLimitPolicy as ASGI, with sync storage calls."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from renderkit._http import mapping_headers
from renderkit.ratelimit import RateLimiter, RateLimitPolicy, RateLimitResult, RequestInfo

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["RateLimitMiddleware", "request_info_from_environ", "status_line"]

logger = logging.getLogger("renderkit.ratelimit")


def request_info_from_environ(environ: WSGIEnvironment, session: Any = None) -> RequestInfo:
    """The framework-free view of a WSGI request."""
    peer = environ.get("REMOTE_ADDR")
    return RequestInfo(
        method=str(environ.get("REQUEST_METHOD", "GET")),
        path=str(environ.get("PATH_INFO") or "/"),
        headers=mapping_headers(environ),
        peer=peer if isinstance(peer, str) and peer else None,
        session=session,
        native=environ,
    )


def status_line(status: int) -> str:
    """``429`` -> ``"429 Too Many Requests"``."""
    return f"{status} {HTTPStatus(status).phrase}"


def str_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """ASGI-style byte header pairs as WSGI string pairs."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def hit(policy: RateLimitPolicy, info: RequestInfo) -> tuple[Any, RateLimitResult | None]:
    """Run the policy's check for ``info``: (check, result), or (None, None) when unlimited."""
    check = policy.check_for(info)
    if check is None:
        return None, None
    try:
        return check, policy.limiter.hit(check.key, check.items, check.cost)
    except Exception:
        # The limiter already fails open on storage errors; this guards bugs: never a 500.
        logger.exception("rate-limit check failed; letting the request through")
        return None, None


class RateLimitMiddleware:
    """WSGI middleware: ``app.wsgi_app = RateLimitMiddleware(app.wsgi_app, limiter=limiter)``.

    Takes the same options as the ASGI :class:`renderkit.ratelimit.RateLimitMiddleware`.
    """

    def __init__(
        self,
        app: WSGIApplication,
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

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        check, result = hit(self.policy, request_info_from_environ(environ))
        if check is None or result is None:
            return self.app(environ, start_response)
        if not result.allowed:
            status, headers, body = self.policy.refusal(result, check)
            start_response(status_line(status), str_headers(headers))
            return [body]
        extra = str_headers(self.policy.response_headers(result, check))
        if not extra:
            return self.app(environ, start_response)

        def start_with_headers(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            return start_response(status, [*headers, *extra], exc_info)

        return self.app(environ, start_with_headers)
