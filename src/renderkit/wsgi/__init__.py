"""WSGI middleware for renderkit's policies (Flask, Django, any WSGI app).

Each concern's WSGI adapter lives in a private module here and is re-exported below. Adapters
translate WSGI to the concern's policy object; the decisions are made once, in the concern.
"""

from __future__ import annotations

from renderkit.wsgi._edge import (
    CorrelationIdMiddleware,
    HTTPSRedirectMiddleware,
    RequestMetricsMiddleware,
    SecurityHeadersMiddleware,
)
from renderkit.wsgi._health import HealthApp, ShutdownMiddleware
from renderkit.wsgi._ratelimit import RateLimitMiddleware
from renderkit.wsgi._sessions import SessionMiddleware

__all__ = [
    "CorrelationIdMiddleware",
    "HTTPSRedirectMiddleware",
    "HealthApp",
    "RateLimitMiddleware",
    "RequestMetricsMiddleware",
    "SecurityHeadersMiddleware",
    "SessionMiddleware",
    "ShutdownMiddleware",
]
