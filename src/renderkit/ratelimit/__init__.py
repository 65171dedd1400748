"""Rate limiting: per-route quotas, all-or-nothing stacked limits, trusted-proxy client keys.

``RateLimiter`` counts (memory, or Redis through one Lua script per request, falling back to
memory while Redis is down); ``RateLimitPolicy`` makes the one decision per request
(:meth:`RateLimitPolicy.decide` -> :class:`Verdict`); ``RateLimitMiddleware`` (ASGI),
``limit`` (Starlette route decorator) and ``RateLimit`` (FastAPI dependency; ``install(app)``
renders its refusals and headers without the middleware) translate it.
WSGI and Flask adapters live in ``renderkit.wsgi`` and ``renderkit.flask``.
"""

from __future__ import annotations

from renderkit.ratelimit._counting import DEFAULT_MAX_KEYS, Charge, MemoryCounts
from renderkit.ratelimit._fastapi import RateLimit, RateLimitExceeded, install, rate_limit_handler
from renderkit.ratelimit._headers import PROBLEM_TYPE, deny_response, rate_limit_headers
from renderkit.ratelimit._keys import (
    KeyFunc,
    RequestInfo,
    api_key,
    client_ip_key,
    first_of,
    session_user,
)
from renderkit.ratelimit._limiter import (
    DEFAULT_LIMIT,
    DEFAULT_TIMEOUT,
    RateLimiter,
    RateLimitProcessSettings,
    RateLimitResult,
    RateLimitSettings,
    Strategy,
    parse_limits,
)
from renderkit.ratelimit._middleware import RateLimitMiddleware, exempt, limit
from renderkit.ratelimit._rules import (
    HEALTH_PATHS,
    Check,
    RateLimitPolicy,
    RateLimitTrustSettings,
    RouteLimit,
    Rule,
    Verdict,
)

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_MAX_KEYS",
    "DEFAULT_TIMEOUT",
    "HEALTH_PATHS",
    "PROBLEM_TYPE",
    "Charge",
    "Check",
    "KeyFunc",
    "MemoryCounts",
    "RateLimit",
    "RateLimitExceeded",
    "RateLimitMiddleware",
    "RateLimitPolicy",
    "RateLimitProcessSettings",
    "RateLimitResult",
    "RateLimitSettings",
    "RateLimitTrustSettings",
    "RateLimiter",
    "RequestInfo",
    "RouteLimit",
    "Rule",
    "Strategy",
    "Verdict",
    "api_key",
    "client_ip_key",
    "deny_response",
    "exempt",
    "first_of",
    "install",
    "limit",
    "parse_limits",
    "rate_limit_handler",
    "rate_limit_headers",
    "session_user",
]
