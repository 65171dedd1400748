"""Resilience primitives: circuit breaker, degrade-to-fallback, retry presets, supervisor,
memory watchdog, timeouts.

Each primitive lives in a private module of this package; import them from here.
"""

from __future__ import annotations

from renderkit.resilience._breaker import CircuitBreaker, CircuitState
from renderkit.resilience._degrade import Degrader
from renderkit.resilience._retry import (
    RETRYABLE_STATUS,
    TRANSIENT_ERRORS,
    BackoffOptions,
    RetryOptions,
    async_retrying,
    full_jitter,
    http_retry,
    retry,
    retry_after_seconds,
    retrying,
)
from renderkit.resilience._supervisor import RestartPolicy, Supervisor, TaskState
from renderkit.resilience._timeout import TimeoutMiddleware
from renderkit.resilience._watchdog import MemoryWatchdog, Pressure

__all__ = [
    "RETRYABLE_STATUS",
    "TRANSIENT_ERRORS",
    "BackoffOptions",
    "CircuitBreaker",
    "CircuitState",
    "Degrader",
    "MemoryWatchdog",
    "Pressure",
    "RestartPolicy",
    "RetryOptions",
    "Supervisor",
    "TaskState",
    "TimeoutMiddleware",
    "async_retrying",
    "full_jitter",
    "http_retry",
    "retry",
    "retry_after_seconds",
    "retrying",
]
