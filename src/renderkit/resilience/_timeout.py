"""Request timeouts: answer 504 instead of letting a stuck handler hold a connection forever."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from renderkit._asgi import Message, Receive, Scope, Send, path_matcher, send_error_response
from renderkit._context import correlation_id_var

if TYPE_CHECKING:
    from renderkit._asgi import ASGIApp

__all__ = ["TimeoutMiddleware"]

logger = logging.getLogger("renderkit.resilience")


class TimeoutMiddleware:
    """Pure ASGI middleware: a handler that has not started its response after ``timeout``
    seconds is cancelled and the client gets a 504 with a JSON body.

    Once the response has started (a streaming or SSE response under way), the deadline is
    lifted: a half-sent body cannot become a 504, so it is left alone. ``exempt_paths``
    (``"/x"`` or ``"/x/*"``) never time out. ``timeout=None`` turns the middleware off.
    Handlers running in a thread (sync endpoints) are abandoned, not stopped: the thread finishes
    on its own while the client already has its 504.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        timeout: float | None = 30.0,
        exempt_paths: Sequence[str] = (),
    ) -> None:
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise ValueError(
                f"TimeoutMiddleware(timeout={timeout!r}): use a number of seconds > 0, "
                "or None to disable"
            )
        self.app = app
        self.timeout = float(timeout) if timeout is not None else None
        patterns = tuple(exempt_paths)
        self._exempt = path_matcher(patterns) if patterns else None

    @classmethod
    def from_env(
        cls, app: ASGIApp, environ: Mapping[str, str] | None = None, **options: object
    ) -> TimeoutMiddleware:
        """Read ``REQUEST_TIMEOUT`` ("30s", "2m", "0" or "off" disables; default 30 s)."""
        import os

        from renderkit.config import parse_duration
        from renderkit.errors import ConfigError, ConfigProblem

        env = os.environ if environ is None else environ
        raw = env.get("REQUEST_TIMEOUT", "").strip()
        timeout: float | None = 30.0
        if raw.lower() in ("0", "off", "none", "false"):
            timeout = None
        elif raw:
            try:
                timeout = parse_duration(raw).total_seconds()
            except ValueError as exc:
                raise ConfigError(
                    ConfigProblem("REQUEST_TIMEOUT", f"{exc}; use a duration such as 30s or 2m")
                ) from None
            if timeout <= 0:
                timeout = None
        return cls(app, timeout=timeout, **options)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self.timeout is None
            or (self._exempt is not None and self._exempt(scope["path"]))
        ):
            await self.app(scope, receive, send)
            return
        try:
            asyncio.current_task()
        except RuntimeError:  # not on asyncio (trio through anyio): use a cancel scope
            timed_out = await self._call_with_cancel_scope(scope, receive, send)
        else:
            timed_out = await self._call_with_asyncio_timeout(scope, receive, send)
        if timed_out:
            await self._answer_504(scope, send)

    async def _call_with_asyncio_timeout(self, scope: Scope, receive: Receive, send: Send) -> bool:
        # asyncio.timeout costs one timer handle; reschedule(None) lifts it at the first byte.
        started = False
        timeout = asyncio.timeout(self.timeout)

        async def send_lifting_deadline(message: Message) -> None:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                timeout.reschedule(None)
            await send(message)

        try:
            async with timeout:
                await self.app(scope, receive, send_lifting_deadline)
        except TimeoutError:
            if not timeout.expired() or started:
                raise
            return True
        return False

    async def _call_with_cancel_scope(self, scope: Scope, receive: Receive, send: Send) -> bool:
        import anyio

        started = False
        with anyio.CancelScope(deadline=anyio.current_time() + self.timeout) as cancel_scope:  # type: ignore[operator]

            async def send_lifting_deadline(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    cancel_scope.deadline = math.inf
                await send(message)

            await self.app(scope, receive, send_lifting_deadline)
        return cancel_scope.cancelled_caught and not started

    async def _answer_504(self, scope: Scope, send: Send) -> None:
        request_id = correlation_id_var.get()
        logger.warning(
            "request timed out after %.1fs: %s %s (request_id %s); answered 504",
            self.timeout,
            scope.get("method"),
            scope.get("path"),
            request_id or "-",
        )
        body = {
            "error": "gateway_timeout",
            "detail": f"The server did not finish the request within {self.timeout:g} seconds.",
        }
        if request_id is not None:
            body["request_id"] = request_id
        await send_error_response(send, 504, json.dumps(body).encode(), b"application/json")
