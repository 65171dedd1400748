"""The I/O-free part of :class:`~renderkit.resilience.Degrader` (private module).

:class:`Degrader` is the one place where cache, sessions and rate limiting decide "primary or
fallback": it owns the :class:`~renderkit.resilience.CircuitBreaker`, logs one warning when an
outage starts and one info line when it ends, answers the ``degraded`` health result, and can
probe the primary in the background so no request pays a dead dependency's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from renderkit.health import CheckResult
from renderkit.resilience._breaker import CircuitBreaker

__all__ = ["DegraderCore"]


class DegraderCore:
    """State, the call protocol and reporting of :class:`~renderkit.resilience.Degrader`."""

    def __init__(
        self,
        component: str,
        *,
        primary: str,
        fallback: str,
        logger: logging.Logger | str,
        outage_errors: tuple[type[BaseException], ...] = (Exception,),
        failure_threshold: int = 2,
        recovery_timeout: float = 5.0,
        probe: Callable[[], object] | None = None,
        aprobe: Callable[[], Awaitable[object]] | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.component = component
        self.primary = primary
        self.fallback = fallback
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.outage_errors = outage_errors
        if breaker is None:
            breaker = CircuitBreaker(
                f"{component}:{primary}",
                failure_threshold=failure_threshold,
                recovery_timeout=recovery_timeout,
                expected_exceptions=outage_errors,
                log=False,
            )
        else:
            breaker.log = False  # this degrader speaks for it: one line per outage
        self.breaker = breaker
        self._probe = probe
        self._aprobe = aprobe
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._served_before = 0
        self._probing = False
        self._stop = threading.Event()
        self._task: object = None  # the probe's asyncio task or thread
        self.last_error = ""
        self._counts = {"primary_errors": 0, "fallback_served": 0, "outages": 0, "probes": 0}

    # -- state ------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True while the fallback serves (the circuit is open or half-open)."""
        return not self.breaker.closed

    # -- the protocol -----------------------------------------------------------------------
    def allow(self) -> bool:
        """True when this call should go to the primary; False: use the fallback now."""
        if self.breaker.allow():
            return True
        self._counts["fallback_served"] += 1
        return False

    def succeeded(self) -> None:
        """The primary answered a call that :meth:`allow` let through."""
        self.breaker.record_success()
        if self._down_since is not None:
            self._recovered()

    def failed(self, exc: BaseException, *, in_async: bool = False) -> None:
        """The primary raised one of ``outage_errors``; the caller now uses the fallback.

        ``in_async``: the failure happened on an event loop, so ``aprobe`` may run there.
        """
        self._counts["primary_errors"] += 1
        self._counts["fallback_served"] += 1
        self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        self.breaker.record_failure(exc)
        if self.breaker.closed:
            self.logger.debug(
                "%s: %s call failed (%s); served from %s",
                self.component,
                self.primary,
                self.last_error,
                self.fallback,
            )
            return
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
                self._served_before = self._counts["fallback_served"] - 1
                self._counts["outages"] += 1
        if first:
            self.logger.warning(
                "%s: %s unavailable (%s); serving from %s and retrying %s every %.1fs",
                self.component,
                self.primary,
                self.last_error,
                self.fallback,
                self.primary,
                self.breaker.recovery_timeout,
            )
        self._start_probe(in_async)

    def neutral(self) -> None:
        """The primary raised something that is not an outage (a caller bug, a cancellation)."""
        self.breaker.record_neutral()

    def _recovered(self) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            self.logger.info(
                "%s: %s answers again after %.1fs; back from %s (%d calls served by %s)",
                self.component,
                self.primary,
                time.monotonic() - since,
                self.fallback,
                self._counts["fallback_served"] - self._served_before,
                self.fallback,
            )

    # -- the background probe ---------------------------------------------------------------
    def _start_probe(self, in_async: bool) -> None:
        if self._stop.is_set():
            return
        with self._lock:
            if self._probing and self._probe_alive():
                return
            self._probing = True
        if in_async and self._aprobe is not None:
            self._task = self._launch_aprobe()
        elif self._probe is not None:
            self._task = self._launch_probe()
        else:
            self._probing = False  # no probe for this side: the next request after the timeout

    def _probe_alive(self) -> bool:
        """False when the probe cannot run any more although it never ended: its event loop
        was closed without cancelling it, or this is a forked child (threads do not follow)."""
        task = self._task
        if isinstance(task, asyncio.Task):
            return not task.done() and not task.get_loop().is_closed()
        if isinstance(task, threading.Thread):
            return task.is_alive()
        return True  # being launched right now by another thread

    # Written in _degrade_async.py; _degrade_sync.py is generated from it.
    if TYPE_CHECKING:  # implemented by the class this is mixed into

        def _launch_probe(self) -> object: ...

        def _launch_aprobe(self) -> object: ...

    def _probe_result(self, exc: BaseException | None) -> bool:
        """Record one probe's outcome; True when the primary is back (the loop ends)."""
        self._counts["probes"] += 1
        if exc is None:
            self.succeeded()
            return True
        if isinstance(exc, self.outage_errors):
            self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.breaker.record_failure(exc)
        else:
            self.breaker.record_neutral()
            self.logger.debug("%s: probe of %s raised %r", self.component, self.primary, exc)
        return False

    def close(self) -> None:
        """Stop a running background probe (it never starts again for this degrader)."""
        self._stop.set()
        task, self._task = self._task, None
        if isinstance(task, asyncio.Task) and not task.done():
            try:
                task.cancel()
            except RuntimeError:
                pass  # its loop is closed already: the task is gone with it

    # -- reporting --------------------------------------------------------------------------
    def health_check(self, primary: CheckResult | None = None) -> CheckResult:
        """``degraded`` while the fallback serves; else ``primary``'s own check, if given.

        A primary that fails its own check while the circuit is closed is still ``degraded``
        (not unhealthy): requests are served, from the fallback when needed.
        """
        if self.active:
            return CheckResult.degraded(
                f"{self.primary} unavailable ({self.last_error or 'circuit open'}); "
                f"serving from {self.fallback}",
                fallback_active=True,
                retry_after=round(self.breaker.retry_after(), 3),
            )
        if primary is None or primary.status == "healthy":
            latency = primary.latency_ms if primary is not None else None
            return CheckResult("healthy", "", {"fallback_active": False}, latency)
        return CheckResult.degraded(
            f"{primary.message}; serving from {self.fallback}", fallback_active=True
        )

    def stats(self) -> dict[str, Any]:
        """Counters as a plain dict: errors, calls the fallback served, outages, probes."""
        return {
            "fallback_active": self.active,
            **self._counts,
            "last_error": self.last_error,
            "breaker": self.breaker.stats(),
        }
