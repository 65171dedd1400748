"""Event-loop lag: :class:`EventLoopMonitor`, a restart-worthy check without a thread or task."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from renderkit._options import ordered_options, seconds_option
from renderkit.health._result import CheckResult

__all__ = ["EventLoopMonitor", "run_blocking"]

T = TypeVar("T")
logger = logging.getLogger("renderkit.health")

# Set while Health.run_sync / a WSGI-side refresh drives a throwaway event loop: there is no
# serving loop to watch then, and starting a monitor on that loop would measure nothing.
_BLOCKING_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "renderkit_health_blocking_run", default=False
)


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a throwaway event loop (a WSGI thread has none), marked as such."""
    token = _BLOCKING_RUN.set(True)
    try:
        return asyncio.run(coro)
    finally:
        _BLOCKING_RUN.reset(token)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


class EventLoopMonitor:
    """Measures event-loop lag: how late a periodic ``loop.call_later`` tick fires.

    Every ``interval`` seconds a tick is due; when handlers block the loop (sync I/O,
    ``time.sleep``, heavy CPU work) the tick runs late, and the delay is the time every other
    request on this instance waited too. The last ``window`` seconds of samples are kept (a
    bounded deque); :meth:`health_check` is healthy while the worst of them stays under
    ``warn``, degraded above it, unhealthy at ``fail``.

    Nothing runs until :meth:`start` (from the ASGI lifespan: :meth:`lifespan`), or until the
    first :meth:`health_check` starts it on the loop running the check. No task and no thread:
    one timer handle on the loop, cancelled by :meth:`stop`. Use it from one event loop.
    """

    def __init__(
        self, *, interval: float = 0.5, window: float = 10.0, warn: float = 0.1, fail: float = 2.0
    ) -> None:
        self.interval = seconds_option(interval, "EventLoopMonitor(interval)")
        self.window = seconds_option(window, "EventLoopMonitor(window)")
        self.warn = seconds_option(warn, "EventLoopMonitor(warn)")
        self.fail = seconds_option(fail, "EventLoopMonitor(fail)")
        ordered_options("EventLoopMonitor", "warn", self.warn, "fail", self.fail)
        if self.window < self.interval:
            raise ValueError(
                f"EventLoopMonitor(window={window}, interval={interval}): the window must "
                "hold at least one interval"
            )
        self._samples: deque[float] = deque(maxlen=max(1, math.ceil(self.window / interval)))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.Handle | None = None
        self._due = math.inf
        self._ticks = 0
        self._worst_ever = 0.0

    @property
    def running(self) -> bool:
        """True while a tick is scheduled on a loop that has not been closed."""
        return self._handle is not None and self._loop is not None and not self._loop.is_closed()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start ticking on ``loop`` (default: the running loop). Calling it again is a no-op.

        ``loop`` may belong to another thread or not run yet: the first tick is then scheduled
        from inside it, so waiting for the loop to start never counts as lag. Raises
        ``RuntimeError`` when called outside a running loop without ``loop``.
        """
        if self.running:
            return
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    "EventLoopMonitor.start() needs the event loop to watch: call it from the "
                    "app's lifespan (or pass loop=...), or let the first health run start it"
                ) from None
        if loop is not self._loop:
            self._samples.clear()  # samples of another (closed) loop say nothing about this one
        self._loop = loop
        try:
            own = asyncio.get_running_loop() is loop
        except RuntimeError:
            own = False
        if own:
            self._schedule()
        else:
            self._due = math.inf
            self._handle = loop.call_soon_threadsafe(self._begin)
        logger.debug("event loop monitor started (tick every %g s)", self.interval)

    def stop(self) -> None:
        """Cancel the pending tick; samples are kept for :meth:`stats`. Safe to call twice."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop and loop.is_running():
            # Another thread: TimerHandle.cancel is not thread-safe, let the loop do it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(handle.cancel)
            return
        handle.cancel()
        logger.debug("event loop monitor stopped")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """ASGI lifespan for ``Starlette(lifespan=monitor.lifespan)``: start, then stop."""
        self.start()
        try:
            yield
        finally:
            self.stop()

    def _begin(self) -> None:
        if self._handle is not None:  # not stopped before the loop got to it
            self._schedule()

    def _schedule(self) -> None:
        loop = self._loop
        assert loop is not None
        self._due = loop.time() + self.interval
        self._handle = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        loop = self._loop
        if self._handle is None or loop is None:
            return  # stopped from another thread after this tick was already queued
        # Timers may fire up to the clock resolution early: that is no lag.
        lag = max(0.0, loop.time() - self._due)
        self._samples.append(lag)
        self._ticks += 1
        self._worst_ever = max(self._worst_ever, lag)
        self._schedule()

    def _overdue(self) -> float:
        """How late the pending tick already is (the loop may be blocked right now)."""
        loop = self._loop
        if not self.running or loop is None:
            return 0.0
        return max(0.0, loop.time() - self._due)

    def lag(self) -> dict[str, float]:
        """Recent lag in seconds: ``last``, ``max`` and ``p95`` of the window (0.0 when empty).

        ``max`` includes how late the pending tick already is.
        """
        samples = sorted(self._samples)
        overdue = self._overdue()
        if not samples:
            return {"last": overdue, "max": overdue, "p95": overdue}
        p95 = samples[max(0, math.ceil(0.95 * len(samples)) - 1)]
        return {
            "last": max(self._samples[-1], overdue),
            "max": max(samples[-1], overdue),
            "p95": p95,
        }

    def stats(self) -> dict[str, Any]:
        """Ticks measured, samples in the window, recent lag (ms) and the worst ever seen."""
        lag = self.lag()
        return {
            "running": self.running,
            "interval": self.interval,
            "ticks": self._ticks,
            "samples": len(self._samples),
            "lag_last_ms": _ms(lag["last"]),
            "lag_max_ms": _ms(lag["max"]),
            "lag_p95_ms": _ms(lag["p95"]),
            "lag_worst_ever_ms": _ms(self._worst_ever),
        }

    async def health_check(self) -> CheckResult:
        """Healthy under ``warn`` of lag, degraded above it, unhealthy at ``fail``.

        Starts the monitor on the running loop when nobody did (or its loop was closed).
        """
        if not self.running:
            if _BLOCKING_RUN.get():
                return CheckResult.healthy(
                    "no event loop to watch: served by threads (WSGI)", samples=0
                )
            self.start()
        lag = self.lag()
        details: dict[str, Any] = {
            "lag_max_ms": _ms(lag["max"]),
            "lag_p95_ms": _ms(lag["p95"]),
            "samples": len(self._samples),
        }
        worst = lag["max"]
        if not self._samples and worst == 0.0:
            return CheckResult.healthy("measuring: no sample yet", **details)
        span = f"worst in the last {self.window:g} s"
        if worst >= self.fail:
            return CheckResult.unhealthy(
                f"event loop blocked: lag {worst:.2f} s ({span}; fails at {self.fail:g} s)",
                **details,
            )
        if worst >= self.warn:
            return CheckResult.degraded(
                f"event loop sluggish: lag {worst:.2f} s ({span}; warns at {self.warn:g} s)",
                **details,
            )
        return CheckResult.healthy(**details)
