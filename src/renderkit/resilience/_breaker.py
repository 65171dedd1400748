"""A circuit breaker: stop paying a failing dependency's timeout on every call.

The state machine is sans-I/O (``allow`` / ``record_success`` / ``record_failure``) so sync and
async callers, and backends that wrap a client, drive the same logic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, ParamSpec, TypeVar

from renderkit._options import count_option, seconds_option
from renderkit.errors import CircuitOpenError
from renderkit.health import CheckResult

__all__ = ["CircuitBreaker", "CircuitState"]

CircuitState = Literal["closed", "open", "half_open"]
P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("renderkit.resilience")


class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` failures in a row -> half-open after
    ``recovery_timeout`` seconds (one probe call allowed) -> closed on success, open on failure.

    Thread-safe. State changes are logged once each, never per call; pass ``log=False`` when
    a component reports them itself (a :class:`~renderkit.resilience.Degrader` does), so one
    outage is one log line.
    """

    def __init__(
        self,
        name: str = "circuit",
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        expected_exceptions: tuple[type[BaseException], ...] = (Exception,),
        on_state_change: Callable[[CircuitState, CircuitState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        log: bool = True,
    ) -> None:
        self.name = name
        self.failure_threshold = count_option(
            failure_threshold, "CircuitBreaker(failure_threshold)", minimum=1
        )
        self.recovery_timeout = seconds_option(
            recovery_timeout, "CircuitBreaker(recovery_timeout)", allow_zero=True
        )
        self.expected_exceptions = expected_exceptions
        self._on_state_change = on_state_change
        self._clock = clock
        self.log = log
        self._lock = threading.Lock()
        self._state: CircuitState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._counts = {"calls": 0, "successes": 0, "failures": 0, "rejected": 0, "opened": 0}

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose timeout elapsed reads as half-open."""
        with self._lock:
            return self._current_state()

    @property
    def closed(self) -> bool:
        """True while the circuit is closed; a lock-free read for hot paths."""
        return self._state == "closed"

    def _current_state(self) -> CircuitState:
        if self._state == "open" and self._clock() - self._opened_at >= self.recovery_timeout:
            return "half_open"
        return self._state

    def retry_after(self) -> float:
        """Seconds until the next probe is allowed (0 when calls may go through)."""
        with self._lock:
            if self._state != "open":
                return 0.0
            return max(0.0, self.recovery_timeout - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Return True when a call may go to the dependency now (claims the probe slot)."""
        if self._state == "closed":
            # Hot path: a closed circuit needs no lock; the counter is approximate under threads.
            self._counts["calls"] += 1
            return True
        with self._lock:
            state = self._current_state()
            if state == "closed":
                self._counts["calls"] += 1
                return True
            if state == "half_open" and not self._probe_in_flight:
                self._probe_in_flight = True
                self._counts["calls"] += 1
                return True
            self._counts["rejected"] += 1
            return False

    def record_success(self) -> None:
        """Report that a call allowed by :meth:`allow` succeeded."""
        if self._state == "closed" and not self._failures and not self._probe_in_flight:
            # Hot path: nothing to reset; the counter is approximate under threads.
            self._counts["successes"] += 1
            return
        with self._lock:
            self._counts["successes"] += 1
            self._failures = 0
            self._probe_in_flight = False
            if self._state != "closed":
                self._transition("closed")

    def record_failure(self, exc: BaseException | None = None) -> None:
        """Report that a call allowed by :meth:`allow` failed."""
        with self._lock:
            self._counts["failures"] += 1
            self._failures += 1
            was_probe = self._probe_in_flight
            self._probe_in_flight = False
            if was_probe or self._current_state() == "half_open":
                self._opened_at = self._clock()
                if self._state != "open":
                    self._transition("open", exc)
            elif self._state == "closed" and self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                self._counts["opened"] += 1
                self._transition("open", exc)

    def reset(self) -> None:
        """Close the circuit and forget failures (for tests and manual recovery)."""
        with self._lock:
            self._failures = 0
            self._probe_in_flight = False
            if self._state != "closed":
                self._transition("closed")

    def _transition(self, new: CircuitState, exc: BaseException | None = None) -> None:
        old, self._state = self._state, new
        if not self.log:
            pass
        elif new == "open":
            logger.warning(
                "circuit %r opened after %d failure(s) (%s); calls fail fast for %.1fs",
                self.name,
                self._failures,
                type(exc).__name__ if exc else "failure",
                self.recovery_timeout,
            )
        else:
            logger.info("circuit %r closed again: the dependency answers", self.name)
        if self._on_state_change is not None:
            self._on_state_change(old, new)

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn`` through the breaker; raise :class:`CircuitOpenError` while open."""
        self._admit()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._failed(exc)
            raise
        self.record_success()
        return result

    async def acall(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn`` through the breaker; raise :class:`CircuitOpenError` while open."""
        self._admit()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._failed(exc)
            raise
        self.record_success()
        return result

    def _admit(self) -> None:
        if not self.allow():
            raise CircuitOpenError(self.name, self.retry_after())

    def _failed(self, exc: BaseException) -> None:
        """An expected exception is a failure; anything else says nothing about the dependency."""
        if isinstance(exc, self.expected_exceptions):
            self.record_failure(exc)
        else:
            self.record_neutral()

    def record_neutral(self) -> None:
        """Report that an allowed call ended in a way that says nothing about the dependency
        (a caller bug, a cancellation): frees a half-open probe slot, counts nothing."""
        with self._lock:
            self._probe_in_flight = False

    def stats(self) -> dict[str, Any]:
        """Counters and state as a plain dict."""
        with self._lock:
            return {
                "name": self.name,
                "state": self._current_state(),
                "consecutive_failures": self._failures,
                **self._counts,
            }

    def health_check(self) -> CheckResult:
        """Healthy when closed, degraded while open or probing."""
        state = self.state
        if state == "closed":
            return CheckResult.healthy(state=state)
        return CheckResult.degraded(
            f"circuit {self.name!r} is {state}", state=state, retry_after=self.retry_after()
        )
