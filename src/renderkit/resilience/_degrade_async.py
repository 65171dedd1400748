# twins: source
# twins: rename acall=call _aprobe_loop=_probe_loop _aprobe=_probe _launch_aprobe=_launch_probe
"""Degrader's runner and background probe (async source; ``_degrade_sync`` is generated)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from renderkit import _compat_async as compat
from renderkit.resilience._degrade_core import DegraderCore

__all__ = ["AsyncDegraderRunner"]

T = TypeVar("T")


class AsyncDegraderRunner(DegraderCore):
    """``acall`` and the probe loop of :class:`~renderkit.resilience.Degrader`."""

    async def acall(
        self,
        primary: Callable[..., Awaitable[T]],
        fallback: Callable[..., Awaitable[T]],
        *args: Any,
    ) -> T:
        """Run ``primary(*args)`` while the primary answers, else ``fallback(*args)``."""
        # The protocol methods inlined: this runs on every cache read.
        breaker = self.breaker
        if breaker.allow():
            try:
                result = await primary(*args)
            except self.outage_errors as exc:
                self.failed(exc, in_async=True)  # twins: sync: self.failed(exc)
            except BaseException:
                breaker.record_neutral()
                raise
            else:
                breaker.record_success()
                if self._down_since is not None:
                    self._recovered()
                return result
        else:
            self._counts["fallback_served"] += 1
        return await fallback(*args)

    def _launch_aprobe(self) -> object:
        return compat.start_task(self._aprobe_loop, f"renderkit-probe-{self.breaker.name}")

    async def _aprobe_loop(self) -> None:
        probe = self._aprobe
        assert probe is not None
        try:
            while not self._stop.is_set():
                delay = max(self.breaker.retry_after(), 0.05)
                await compat.sleep(delay)  # twins: sync: self._stop.wait(delay)
                if self._stop.is_set() or self.breaker.closed:
                    return  # closed, or a request's call found the primary back first
                if not self.breaker.allow():
                    continue
                try:
                    await probe()
                except Exception as exc:
                    if self._probe_result(exc):
                        return
                else:
                    if self._probe_result(None):
                        return
        finally:
            self._probing = False
