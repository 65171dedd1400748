"""ASGI side of the drain: track requests, retire keep-alive connections, refuse after close."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from renderkit._asgi import ASGIApp, Message, Receive, Scope, Send
    from renderkit.shutdown._coordinator import ShutdownCoordinator

__all__ = ["REFUSAL_BODY", "ShutdownMiddleware", "checked_coordinator", "refusal_headers"]

REFUSAL_BODY = b'{"error":"service is restarting, retry shortly"}'


def refusal_headers(retry_after: int) -> list[tuple[str, str]]:
    """Headers of the 503 a draining app answers with (ASGI and WSGI send the same)."""
    return [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(REFUSAL_BODY))),
        ("Connection", "close"),
        ("Retry-After", str(retry_after)),
        ("Cache-Control", "no-store"),
    ]


_CLOSE = (b"connection", b"close")


def checked_coordinator(coordinator: object) -> ShutdownCoordinator:
    """The ``coordinator=`` of either ShutdownMiddleware, or a TypeError naming what came."""
    from renderkit.shutdown._coordinator import ShutdownCoordinator

    if not isinstance(coordinator, ShutdownCoordinator):
        raise TypeError(
            "ShutdownMiddleware(coordinator=...) needs a ShutdownCoordinator, got "
            f"{type(coordinator).__name__}"
        )
    return coordinator


def _closing(send: Send) -> Send:
    """Wrap ``send`` so the response says ``Connection: close``."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or ())
            if not any(key.lower() == b"connection" for key, _ in headers):
                headers.append(_CLOSE)
            message = {**message, "headers": headers}
        await send(message)

    return send_closing


class ShutdownMiddleware:
    """Pure ASGI middleware: track in-flight requests for the drain; once shutdown begins,
    answer every response with ``Connection: close`` (so keep-alive connections are retired
    by their clients, never cut while idle); once the coordinator stops accepting, answer new
    requests with 503, ``Connection: close`` and ``Retry-After`` (new WebSocket connections
    are closed with code 1012, "service restart")."""

    def __init__(self, app: ASGIApp, *, coordinator: ShutdownCoordinator) -> None:
        self.app = app
        self.coordinator = checked_coordinator(coordinator)
        self._start = {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in refusal_headers(coordinator.retry_after)
            ],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        coordinator = self.coordinator
        task = asyncio.current_task()
        if not coordinator.admit(task):
            await self._refuse(kind, send)
            return
        try:
            if coordinator.retiring and kind == "http":
                await self.app(scope, receive, _closing(send))
            else:
                # A request already running at the signal keeps its connection; the keep-alive
                # window waits for quiet, so such a connection is idle long before it closes.
                await self.app(scope, receive, send)
        finally:
            coordinator.release(task)

    async def _refuse(self, kind: str, send: Send) -> None:
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1012, "reason": "service restart"})
            return
        message: dict[str, Any] = dict(self._start)
        await send(message)
        await send({"type": "http.response.body", "body": REFUSAL_BODY})
