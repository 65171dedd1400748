# DO NOT EDIT: generated from src/renderkit/resilience/_degrade_async.py by tools/twins.py.
# Edit the async source and run `nox -s twins` (or `python tools/twins.py`).
"""Degrader's runner and background probe (async source; ``_degrade_sync`` is generated)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from renderkit import _compat_sync as compat
from renderkit.resilience._degrade_core import DegraderCore

__all__ = ["DegraderRunner"]

T = TypeVar("T")


class DegraderRunner(DegraderCore):
    """``call`` and the probe loop of :class:`~renderkit.resilience.Degrader`."""

    def call(
        self,
        primary: Callable[..., T],
        fallback: Callable[..., T],
        *args: Any,
    ) -> T:
        """Run ``primary(*args)`` while the primary answers, else ``fallback(*args)``."""
        # The protocol methods inlined: this runs on every cache read.
        breaker = self.breaker
        if breaker.allow():
            try:
                result = primary(*args)
            except self.outage_errors as exc:
                self.failed(exc)
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
        return fallback(*args)

    def _launch_probe(self) -> object:
        return compat.start_task(self._probe_loop, f"renderkit-probe-{self.breaker.name}")

    def _probe_loop(self) -> None:
        probe = self._probe
        assert probe is not None
        try:
            while not self._stop.is_set():
                delay = max(self.breaker.retry_after(), 0.05)
                self._stop.wait(delay)
                if self._stop.is_set() or self.breaker.closed:
                    return  # closed, or a request's call found the primary back first
                if not self.breaker.allow():
                    continue
                try:
                    probe()
                except Exception as exc:
                    if self._probe_result(exc):
                        return
                else:
                    if self._probe_result(None):
                        return
        finally:
            self._probing = False
