"""Resilience primitives: circuit breaker, retry presets, supervisor, memory watchdog, timeouts.

Each primitive lives in a private module of this package; import them from here.
"""

from __future__ import annotations

from renderkit.resilience._breaker import CircuitBreaker, CircuitState
from renderkit.resilience._timeout import TimeoutMiddleware

__all__ = [
    "CircuitBreaker",
    "CircuitState",
    "TimeoutMiddleware",
]
