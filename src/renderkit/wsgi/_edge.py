"""WSGI middleware for the HTTP edge policies: correlation id, HTTPS redirect, security headers
and request metrics. The decisions are the concern modules' policy objects; this only
translates WSGI's environ / ``start_response`` to them.

Values other layers read go into the environ: ``renderkit.request_id`` and
``renderkit.csp_nonce``. A framework can name the matched route template for metrics by setting
``environ["renderkit.route"]`` (the Flask extension does) before the response starts.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Unpack
from urllib.parse import quote

from renderkit._asgi import path_matcher
from renderkit._context import correlation_id_var
from renderkit._http import effective_scheme, mapping_headers
from renderkit.correlation import CorrelationId, CorrelationOptions
from renderkit.metrics import RequestMetrics
from renderkit.security import HeadersOptions, HTTPSRedirect, RedirectOptions, headers_setup

__all__ = [
    "CorrelationIdMiddleware",
    "HTTPSRedirectMiddleware",
    "RequestMetricsMiddleware",
    "SecurityHeadersMiddleware",
]

logger = logging.getLogger("renderkit.wsgi")

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

REQUEST_ID_KEY = "renderkit.request_id"
CSP_NONCE_KEY = "renderkit.csp_nonce"
ROUTE_KEY = "renderkit.route"
_500 = b"Internal Server Error"


class ClosingIterable:
    """Wrap a response body so work runs once, when the server closes it (after the last byte).

    With ``at_end`` the work already runs when the body is exhausted or raises, whichever of
    that and ``close()`` comes first (PEP 3333 servers close; a careless one may not).
    """

    __slots__ = ("_at_end", "_body", "_done", "_on_close")

    def __init__(
        self, body: Iterable[bytes], on_close: Callable[[], None], *, at_end: bool = False
    ) -> None:
        self._body = body
        self._on_close = on_close
        self._at_end = at_end
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self._until_end() if self._at_end else iter(self._body)

    def _until_end(self) -> Iterator[bytes]:
        try:
            yield from self._body
        finally:
            self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._on_close()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish()


def _error_response(start_response: StartResponse, exc: BaseException) -> list[bytes]:
    """Log an unhandled exception and answer a plain 500 (headers get added on the way out)."""
    logger.error("unhandled exception in the WSGI app; answered 500", exc_info=exc)
    start_response(
        "500 Internal Server Error",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_500)))],
        (type(exc), exc, exc.__traceback__),
    )
    return [_500]


def _call_guarded(
    app: WSGIApp, environ: Environ, start_response: StartResponse, started: list[bool]
) -> Iterable[bytes]:
    """Run the app; an exception before the response started becomes a logged 500."""
    try:
        return app(environ, start_response)
    except Exception as exc:
        if started[0]:
            raise
        return _error_response(start_response, exc)


class _ContextBody:
    """A response body whose iteration and ``close()`` run inside the request's context."""

    __slots__ = ("_body", "_context")

    def __init__(self, body: Iterable[bytes], context: contextvars.Context) -> None:
        self._body = body
        self._context = context

    def __iter__(self) -> Iterator[bytes]:
        run = self._context.run
        chunks = run(iter, self._body)
        while True:
            try:
                chunk = run(next, chunks)
            except StopIteration:
                return
            yield chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._context.run(close)


class CorrelationIdMiddleware:
    """WSGI twin of :class:`renderkit.correlation.CorrelationIdMiddleware` (same options).

    The id is in ``environ["renderkit.request_id"]``, in the request header the app reads
    (``request.headers["X-Request-ID"]``) and the correlation ContextVar from the
    call until the server closes the body, so logs written while streaming carry it; each
    gunicorn thread has its own. An exception before the response started is logged and
    answered with a 500 that carries the id.
    """

    def __init__(self, app: WSGIApp, **options: Unpack[CorrelationOptions]) -> None:
        self.policy = CorrelationId.from_options(options)
        self.app = app
        self._header = self.policy.header
        self._lower = self.policy.header.lower()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # The app, its body iteration and close() all run in a copy of the caller's context:
        # the id is visible while streaming and can never leak into the server thread's own
        # context, whether or not the server (or a test client) closes the body.
        context = contextvars.copy_context()
        body = context.run(self._run, environ, start_response)
        return _ContextBody(body, context)

    def _run(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        policy = self.policy
        request_id = policy.resolve(mapping_headers(environ))
        environ[REQUEST_ID_KEY] = request_id
        if policy.update_request_header:
            environ[policy.environ_key] = request_id
        correlation_id_var.set(request_id)
        policy.bind(request_id)
        started = [False]
        name, lower = self._header, self._lower

        def start_with_id(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            started[0] = True
            headers = [(k, v) for k, v in headers if k.lower() != lower]
            headers.append((name, request_id))
            return (
                start_response(status, headers, exc_info)
                if exc_info
                else start_response(status, headers)
            )

        return _call_guarded(self.app, environ, start_with_id, started)


class SecurityHeadersMiddleware:
    """WSGI twin of :class:`renderkit.security.SecurityHeadersMiddleware`.

    The nonce is in ``environ["renderkit.csp_nonce"]`` (Flask: ``g.csp_nonce``; ``""`` when the
    policy uses none).
    """

    def __init__(self, app: WSGIApp, **options: Unpack[HeadersOptions]) -> None:
        self.app = app
        self.policy, self.trust = headers_setup(options)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        policy = self.policy.for_path(environ.get("PATH_INFO") or "/")
        nonce = policy.new_nonce()
        environ[CSP_NONCE_KEY] = nonce or ""  # "" without a nonce: templates still render
        https = (
            effective_scheme(
                environ.get("wsgi.url_scheme", "http"),
                environ.get("REMOTE_ADDR"),
                mapping_headers(environ) if self.trust.enabled else [],
                self.trust,
            )
            == "https"
        )
        started = [False]

        def start_with_headers(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            started[0] = True
            merged = policy.apply(
                [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
                https=https,
                nonce=nonce,
            )
            out = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in merged]
            return (
                start_response(status, out, exc_info) if exc_info else start_response(status, out)
            )

        return _call_guarded(self.app, environ, start_with_headers, started)


class HTTPSRedirectMiddleware:
    """WSGI twin of :class:`renderkit.security.HTTPSRedirectMiddleware` (same options)."""

    def __init__(self, app: WSGIApp, **options: Unpack[RedirectOptions]) -> None:
        self.app = app
        self.redirect = HTTPSRedirect.from_options(options)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        redirect = self.redirect
        path = environ.get("PATH_INFO") or "/"
        if redirect.is_exempt(path):
            return self.app(environ, start_response)
        headers = mapping_headers(environ)
        if not redirect.needs_redirect(
            environ.get("wsgi.url_scheme", "http"), environ.get("REMOTE_ADDR"), headers
        ):
            return self.app(environ, start_response)
        full_path = (environ.get("SCRIPT_NAME") or "") + path
        # PEP 3333 carries the raw path bytes decoded as Latin-1: re-encode, then %-escape.
        raw_path = quote(full_path.encode("latin-1", "replace"), safe="/:@!$&'()*+,;=-._~%")
        query = quote(environ.get("QUERY_STRING", ""), safe="=&;:@!$'()*+,/?%-._~")
        status, result = redirect.location(
            environ.get("HTTP_HOST") or environ.get("SERVER_NAME"),
            raw_path.encode("ascii"),
            query.encode("ascii"),
        )
        if status:
            assert isinstance(result, str)
            body = result.encode()
            start_response(
                "400 Bad Request",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]
        assert isinstance(result, bytes)
        code = (
            "301 Moved Permanently"
            if environ.get("REQUEST_METHOD") in ("GET", "HEAD")
            else "308 Permanent Redirect"
        )
        start_response(code, [("Location", result.decode("ascii")), ("Content-Length", "0")])
        return [b""]


class RequestMetricsMiddleware:
    """WSGI twin of :class:`renderkit.metrics.RequestMetricsMiddleware`.

    The route label is ``environ["renderkit.route"]`` (set by the framework integration), else
    the shared unmatched label; the time runs until the server closes the body.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        metrics: RequestMetrics | None = None,
        exclude_paths: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics if metrics is not None else RequestMetrics()
        patterns = tuple(exclude_paths)
        self._excluded = path_matcher(patterns) if patterns else None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self._excluded is not None and self._excluded(environ.get("PATH_INFO") or "/"):
            return self.app(environ, start_response)
        start = time.perf_counter()
        status = [0]
        method = environ.get("REQUEST_METHOD", "GET")

        def start_timed(
            status_line: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            try:
                status[0] = int(status_line[:3])
            except ValueError:
                status[0] = 500
            return (
                start_response(status_line, headers, exc_info)
                if exc_info
                else (start_response(status_line, headers))
            )

        def finish(error: bool = False) -> None:
            route = environ.get(ROUTE_KEY)
            self.metrics.record(
                method,
                route if isinstance(route, str) else None,
                status[0] or 500,
                time.perf_counter() - start,
                error=error,
            )

        try:
            body = self.app(environ, start_timed)
        except BaseException:
            finish(error=True)
            raise
        return ClosingIterable(body, finish)
