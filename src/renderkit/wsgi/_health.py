"""WSGI side of renderkit.health and renderkit.shutdown: a health app and a drain middleware.

The decisions live in :class:`renderkit.health.Health` and
:class:`renderkit.shutdown.ShutdownCoordinator`; these classes only translate WSGI to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from renderkit._http import mapping_headers
from renderkit.health import EndpointKind, Health, RequestFacts
from renderkit.health._endpoint import RESERVED_NAMES, response_headers
from renderkit.shutdown._middleware import REFUSAL_BODY, checked_coordinator, refusal_headers
from renderkit.wsgi._edge import ClosingIterable

if TYPE_CHECKING:
    from renderkit.shutdown import ShutdownCoordinator

__all__ = ["HealthApp", "ShutdownMiddleware", "request_facts"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_REASONS = {
    200: "200 OK",
    401: "401 Unauthorized",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


def request_facts(environ: dict[str, Any]) -> RequestFacts:
    """What a health endpoint needs from a WSGI request (shared with the Flask blueprint)."""
    return RequestFacts(
        peer=environ.get("REMOTE_ADDR") or None,
        headers=mapping_headers(environ),
        query=str(environ.get("QUERY_STRING") or ""),
    )


def health_answer(
    health: Health, kind: EndpointKind, environ: dict[str, Any], check: str | None = None
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body (empty for HEAD) of one health request."""
    code, body, content_type = health.respond_sync(kind, request_facts(environ), check=check)
    head = environ.get("REQUEST_METHOD") == "HEAD"
    status = _REASONS.get(code, f"{code} Status")
    return status, response_headers(code, body, content_type), b"" if head else body


class HealthApp:
    """A WSGI app serving ``prefix``, ``prefix/live``, ``prefix/ready`` and
    ``prefix/instance`` from a :class:`~renderkit.health.Health` registry (plus
    ``prefix/diagnostics`` when it has ``diagnostics``, and ``prefix/<check>`` with
    ``per_check=True``).

    Mount it with a dispatcher, or pass ``app`` to answer those paths and hand every other
    request to ``app`` (``app.wsgi_app = HealthApp(health, app=app.wsgi_app)``).
    """

    def __init__(
        self,
        health: Health,
        *,
        prefix: str = "/health",
        app: WSGIApp | None = None,
        per_check: bool = False,
    ) -> None:
        if not isinstance(health, Health):
            raise TypeError(
                "HealthApp(health=...) needs a renderkit.health.Health, got "
                f"{type(health).__name__}"
            )
        if prefix == "/":
            raise ValueError("HealthApp(prefix='/'): use a path such as /health")
        try:
            self._paths = health.paths(prefix)
        except ValueError as exc:
            raise ValueError(f"HealthApp({exc})") from None
        self.health = health
        self.app = app
        self._check_prefix = f"{prefix}/" if per_check else None

    def _route(self, path: str) -> tuple[EndpointKind, str | None] | None:
        kind = self._paths.get(path)
        if kind is not None:
            return kind, None
        if self._check_prefix is not None and path.startswith(self._check_prefix):
            name = path[len(self._check_prefix) :]
            if name and "/" not in name and name not in RESERVED_NAMES:
                return "check", name
        return None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = self._route(str(environ.get("PATH_INFO") or "/"))
        if route is None:
            if self.app is not None:
                return self.app(environ, start_response)
            return _plain(start_response, 404, b"not found")
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _plain(start_response, 405, b"use GET or HEAD", [("Allow", "GET, HEAD")])
        status, headers, body = health_answer(self.health, route[0], environ, route[1])
        start_response(status, headers)
        return [body]


def _plain(
    start_response: StartResponse,
    code: int,
    body: bytes,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    start_response(
        _REASONS[code],
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *(extra or []),
        ],
    )
    return [body]


class ShutdownMiddleware:
    """WSGI twin of :class:`renderkit.shutdown.ShutdownMiddleware`: counts in-flight requests
    (thread-safe) for the drain; once shutdown begins, adds ``Connection: close`` to every
    response so clients retire keep-alive connections; once the coordinator stops accepting,
    answers 503 with ``Connection: close`` and ``Retry-After``. A request counts until its body
    is closed."""

    def __init__(self, app: WSGIApp, *, coordinator: ShutdownCoordinator) -> None:
        self.app = app
        self.coordinator = checked_coordinator(coordinator)
        self._headers = refusal_headers(coordinator.retry_after)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        coordinator = self.coordinator
        if not coordinator.admit():
            start_response("503 Service Unavailable", list(self._headers))
            return [REFUSAL_BODY]

        def start_closing(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            if not any(k.lower() == "connection" for k, _ in headers):
                headers = [*headers, ("Connection", "close")]
            return start_response(status, headers, *exc_info)

        try:
            body = self.app(environ, start_closing if coordinator.retiring else start_response)
        except BaseException:
            coordinator.release()
            raise
        # In flight until sent: released when the body is exhausted or closed, whichever first.
        return ClosingIterable(body, coordinator.release, at_end=True)
