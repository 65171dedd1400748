"""``RateLimitMiddleware`` in ``Middleware(...)`` / ``add_middleware(...)`` (see
middleware_stack.py; pending in tools/typecheck_usage.py until its options are typed)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from renderkit.ratelimit import RateLimiter, RateLimitMiddleware

limiter = RateLimiter("memory://", default="100/hour")
app = Starlette(middleware=[Middleware(RateLimitMiddleware, limiter=limiter)])
app.add_middleware(RateLimitMiddleware, limiter=limiter)
