"""A memory watchdog: act on memory pressure before the platform's OOM killer does.

Render and the other PaaS kill an instance that exceeds its memory limit without warning. The
:class:`MemoryWatchdog` samples this process's RSS against the container's limit (cgroup-aware,
from ``renderkit.platform``): at the soft threshold it runs the registered pressure handlers
(trim a cache, drop buffers) and ``gc.collect()``; at the hard threshold its health check turns
unhealthy, so a restart-gating health path (``Health(...)`` with ``restart=True``) gets the
instance replaced cleanly instead of killed mid-request.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from renderkit._options import count_option, fraction_option, ordered_options, seconds_option
from renderkit.health import CheckResult

if TYPE_CHECKING:
    from renderkit.platform import Platform

__all__ = ["MemoryWatchdog", "Pressure"]

Pressure = Literal["ok", "soft", "hard"]

logger = logging.getLogger("renderkit.resilience")


class MemoryWatchdog:
    """Sample RSS against the memory limit; relieve pressure at ``soft``, fail health at ``hard``.

    ``limit``: bytes (default: ``renderkit.platform.detect().memory_limit``). ``interval``:
    seconds between samples when running in the background (:meth:`start` or :meth:`run`).
    ``cooldown``: seconds between two pressure-handler runs. ``rss``: a callable returning the
    bytes in use (default: psutil's RSS of this process; tests inject their own).
    """

    def __init__(
        self,
        *,
        soft: float = 0.80,
        hard: float = 0.95,
        interval: float = 10.0,
        cooldown: float = 60.0,
        limit: int | None = None,
        platform: Platform | None = None,
        rss: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.soft = fraction_option(soft, "MemoryWatchdog(soft)")
        self.hard = fraction_option(hard, "MemoryWatchdog(hard)")
        ordered_options("MemoryWatchdog", "soft", self.soft, "hard", self.hard)
        self.interval = seconds_option(interval, "MemoryWatchdog(interval)")
        self.cooldown = seconds_option(cooldown, "MemoryWatchdog(cooldown)", allow_zero=True)
        self._limit = count_option(limit, "MemoryWatchdog(limit)", minimum=1, optional=True)
        self._platform = platform
        self._rss = rss
        self._clock = clock
        self._handlers: list[tuple[str, Callable[[], Any]]] = []
        self._last_relief: float | None = None
        self._pressure: Pressure = "ok"
        self._used = 0
        self._task: asyncio.Task[None] | None = None
        self._counts = {"samples": 0, "reliefs": 0, "handler_errors": 0}

    @property
    def limit(self) -> int | None:
        """The memory limit in bytes (resolved from the platform on first use)."""
        if self._limit is None:
            from renderkit.platform import detect

            self._limit = (self._platform or detect()).memory_limit
        return self._limit

    def on_pressure(self, handler: Callable[[], Any], *, name: str | None = None) -> None:
        """Register a handler (sync or async, no arguments) run at the soft threshold."""
        if not callable(handler):
            raise TypeError(
                f"MemoryWatchdog.on_pressure: the handler must be callable, got "
                f"{type(handler).__name__}"
            )
        label = name or str(getattr(handler, "__qualname__", None) or repr(handler))
        self._handlers.append((label, handler))

    def _measure(self) -> int:
        if self._rss is not None:
            return int(self._rss())
        import psutil

        return int(psutil.Process().memory_info().rss)

    def _classify(self, used: int) -> Pressure:
        limit = self.limit
        if not limit:
            return "ok"
        ratio = used / limit
        if ratio >= self.hard:
            return "hard"
        if ratio >= self.soft:
            return "soft"
        return "ok"

    def _note(self, used: int, pressure: Pressure) -> bool:
        """Record a sample; True when the pressure handlers should run now."""
        self._counts["samples"] += 1
        previous, self._pressure, self._used = self._pressure, pressure, used
        if pressure != previous:
            log = logger.info if pressure == "ok" else logger.warning
            log("memory pressure %s -> %s (%s)", previous, pressure, self._describe(used))
        if pressure == "ok":
            return False
        now = self._clock()
        if self._last_relief is not None and now - self._last_relief < self.cooldown:
            return False
        self._last_relief = now
        self._counts["reliefs"] += 1
        return True

    def _describe(self, used: int) -> str:
        limit = self.limit
        if not limit:
            return f"{used} bytes, no limit known"
        return f"{used / limit:.0%} of {limit} bytes"

    def sample(self) -> Pressure:
        """Measure once; at the soft threshold run the handlers (sync ones inline) and collect."""
        used = self._measure()
        pressure = self._classify(used)
        if self._note(used, pressure):
            for name, handler in self._handlers:
                try:
                    result = handler()
                    if inspect.isawaitable(result):
                        if inspect.iscoroutine(result):
                            result.close()
                        raise TypeError("an async pressure handler needs asample() or run()")
                except Exception as exc:
                    self._handler_failed(name, exc)
            gc.collect()
        return pressure

    async def asample(self) -> Pressure:
        """Async twin of :meth:`sample`: async handlers awaited, sync ones run in a thread."""
        used = await asyncio.to_thread(self._measure) if self._rss is None else self._measure()
        pressure = self._classify(used)
        if self._note(used, pressure):
            for name, handler in self._handlers:
                try:
                    if inspect.iscoroutinefunction(handler):
                        await handler()
                    else:
                        result = await asyncio.to_thread(handler)
                        if inspect.isawaitable(result):
                            await result
                except Exception as exc:
                    self._handler_failed(name, exc)
            gc.collect()
        return pressure

    def _handler_failed(self, name: str, exc: Exception) -> None:
        self._counts["handler_errors"] += 1
        logger.error("memory pressure handler %r failed: %s: %s", name, type(exc).__name__, exc)

    async def run(self) -> None:
        """Sample every ``interval`` seconds until cancelled (hand it to a Supervisor)."""
        while True:
            await self.asample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Run :meth:`run` as a task on the current event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name="renderkit-memory-watchdog"
            )

    async def stop(self) -> None:
        """Cancel the background task started by :meth:`start`."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def health_check(self) -> CheckResult:
        """Sample now: unhealthy at the hard threshold, degraded at the soft one."""
        used = self._measure()
        pressure = self._classify(used)
        self._pressure, self._used = pressure, used
        limit = self.limit
        details: dict[str, Any] = {"rss": used, "limit": limit}
        if limit:
            details["usage"] = round(used / limit * 100.0, 1)
        if pressure == "hard":
            return CheckResult.unhealthy("memory at the hard threshold", **details)
        if pressure == "soft":
            return CheckResult.degraded("memory above the soft threshold", **details)
        return CheckResult.healthy(**details)

    def stats(self) -> dict[str, Any]:
        """Last sample, pressure level, limit and counters as a plain dict."""
        return {
            "pressure": self._pressure,
            "rss": self._used,
            "limit": self._limit,
            "soft": self.soft,
            "hard": self.hard,
            **self._counts,
        }
