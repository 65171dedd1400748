"""Rate limiting on ``limits``: tiers, trusted-proxy client keys, standard headers, fail-open.

``RateLimiter`` counts (memory or Redis, falling back to memory while Redis is down);
``RateLimitPolicy`` decides which limit and key apply to a request; ``RateLimitMiddleware``
(ASGI), ``RateLimit`` (FastAPI dependency) and ``limit`` (Starlette route decorator) apply it.
WSGI and Flask adapters live in ``renderkit.wsgi`` and ``renderkit.flask``.
"""

from __future__ import annotations

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
    RateLimitResult,
    Strategy,
    parse_limits,
)
from renderkit.ratelimit._middleware import RateLimit, RateLimitMiddleware, limit
from renderkit.ratelimit._rules import HEALTH_PATHS, Check, RateLimitPolicy, Rule

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_TIMEOUT",
    "HEALTH_PATHS",
    "PROBLEM_TYPE",
    "Check",
    "KeyFunc",
    "RateLimit",
    "RateLimitMiddleware",
    "RateLimitPolicy",
    "RateLimitResult",
    "RateLimiter",
    "RequestInfo",
    "Rule",
    "Strategy",
    "api_key",
    "client_ip_key",
    "deny_response",
    "first_of",
    "limit",
    "parse_limits",
    "rate_limit_headers",
    "session_user",
]
