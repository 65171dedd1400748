"""Request timeouts: answer 504 instead of letting a stuck handler hold a connection forever."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from renderkit._asgi import Message, Receive, Scope, Send, path_matcher, send_error_response
from renderkit._context import correlation_id_var
from renderkit.config import Seconds, Settings, env

if TYPE_CHECKING:
    from renderkit._asgi import ASGIApp

__all__ = ["TimeoutMiddleware"]

logger = logging.getLogger("renderkit.resilience")


class TimeoutSettings(Settings):
    """Request timeouts (renderkit.resilience.TimeoutMiddleware.from_env)."""

    timeout: Seconds | None = env("REQUEST_TIMEOUT", default="30s", minimum="0s")
    """Answer 504 when a request takes longer (30s, 2m); 0 or off disables it. Keep it under the
    proxy's own limit so the client gets renderkit's answer."""


class _Deadline:
    """One request's deadline inside a :class:`_Watchdog`."""

    __slots__ = ("at", "expired", "task")

    def __init__(self, task: asyncio.Task[Any], at: float) -> None:
        self.task = task
        self.at = at
        self.expired = False


class _Watchdog:
    """The deadlines of one middleware's requests on one event loop, kept by ONE timer.

    Every request gets the same timeout and the loop clock is monotonic, so deadlines are
    added in the order they fall due: the dict's insertion order is deadline order and the
    first entry is always the next to expire. One timer handle at that first deadline does
    the work ``asyncio.timeout()`` does with a handle (and a heap push, and a cancellation)
    per request; a request costs a dict insert and a dict pop. The timer fires at most once
    per pending deadline it finds, then re-arms itself at the next one.
    """

    __slots__ = ("handle", "loop", "pending", "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.pending: dict[_Deadline, None] = {}
        self.handle: asyncio.TimerHandle | None = None

    def add(self, task: asyncio.Task[Any]) -> _Deadline:
        deadline = _Deadline(task, self.loop.time() + self.timeout)
        self.pending[deadline] = None
        if self.handle is None:
            self.handle = self.loop.call_at(deadline.at, self._fire)
        return deadline

    def _fire(self) -> None:
        self.handle = None
        now = self.loop.time()
        pending = self.pending
        while pending:
            deadline = next(iter(pending))
            if deadline.at > now:
                self.handle = self.loop.call_at(deadline.at, self._fire)
                return
            del pending[deadline]
            deadline.expired = True
            deadline.task.cancel()


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
        self._watchdog: _Watchdog | None = None

    @classmethod
    def from_env(
        cls, app: ASGIApp, environ: Mapping[str, str] | None = None, **options: object
    ) -> TimeoutMiddleware:
        """Read ``REQUEST_TIMEOUT`` ("30s", "2m", "0" or "off" disables; default 30 s).

        Raises :class:`~renderkit.errors.ConfigError` naming the variable when it is not a
        duration.
        """
        seconds = TimeoutSettings.load(environ).timeout
        timeout = float(seconds) if seconds else None
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
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on asyncio (trio through anyio): use a cancel scope
            if await self._call_with_cancel_scope(scope, receive, send):
                await self._answer_504(scope, send)
            return
        watchdog = self._watchdog
        if watchdog is None or watchdog.loop is not loop:
            # First request, or the app moved to another loop (a new TestClient, a second
            # server thread): a fresh watchdog. Requests in flight keep the one they started
            # with, so each watchdog is only ever touched from its own loop.
            watchdog = self._watchdog = _Watchdog(loop, self.timeout)
        task = asyncio.current_task(loop)
        if task is None:  # a coroutine driven by hand, outside any task: nothing to cancel
            await self.app(scope, receive, send)
            return
        cancelling = task.cancelling()
        deadline = watchdog.add(task)
        pending = watchdog.pending
        started = False

        async def send_lifting_deadline(message: Message) -> None:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                pending.pop(deadline, None)
            await send(message)

        try:
            await self.app(scope, receive, send_lifting_deadline)
        except asyncio.CancelledError:
            if not deadline.expired:
                raise  # cancelled by someone else (client gone, server shutting down)
            deadline.expired = False
            if task.uncancel() > cancelling:
                raise  # also cancelled by someone else: that cancellation wins
            if started:  # the handler caught the cancellation and began a response
                raise TimeoutError("request timed out after its response started") from None
        else:
            return
        finally:
            pending.pop(deadline, None)
            if deadline.expired:  # cancelled, but the handler swallowed it and finished
                task.uncancel()
        await self._answer_504(scope, send)

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
