"""Every public ASGI middleware type-checks in ``Middleware(...)`` and ``add_middleware(...)``.

Not a test module: ``tools/typecheck_usage.py`` (``nox -s typecheck``) runs mypy --strict on it.
The ``type: ignore`` lines are misuses that must stay errors (strict mode reports an unneeded
ignore), so a middleware whose options turn into ``Any`` fails here.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from renderkit.correlation import CorrelationIdMiddleware
from renderkit.metrics import RequestMetricsMiddleware
from renderkit.proxy import ProxyTrust
from renderkit.ratelimit import RateLimiter, RateLimitMiddleware, RateLimitPolicy, Rule
from renderkit.resilience import TimeoutMiddleware
from renderkit.security import HTTPSRedirectMiddleware, SecurityHeaders, SecurityHeadersMiddleware
from renderkit.sessions import MemoryStore, SessionMiddleware
from renderkit.shutdown import ShutdownCoordinator, ShutdownMiddleware

coordinator = ShutdownCoordinator(grace_period=25.0)
trust = ProxyTrust.render()
limiter = RateLimiter("memory://", default="100/hour")
stack = [
    Middleware(CorrelationIdMiddleware, header_name="X-Request-ID", transformer=str.lower),
    Middleware(HTTPSRedirectMiddleware, trust=trust, allowed_hosts=["app.example"]),
    Middleware(SecurityHeadersMiddleware, policy=SecurityHeaders.api(), trust=trust),
    Middleware(TimeoutMiddleware),
    Middleware(RequestMetricsMiddleware),
    Middleware(RateLimitMiddleware, limiter=limiter, trust=trust, exempt_paths=["/static/*"]),
    Middleware(RateLimitMiddleware, policy=RateLimitPolicy(limiter, rules=[Rule("/x", "1/s")])),
    Middleware(SessionMiddleware, store=MemoryStore(), secret_key="x" * 32),
    Middleware(ShutdownMiddleware, coordinator=coordinator),
]
app = Starlette(middleware=stack)
app.add_middleware(CorrelationIdMiddleware)
app.add_middleware(HTTPSRedirectMiddleware, exempt_paths=["/health"])
app.add_middleware(SecurityHeadersMiddleware)
app.add_middleware(TimeoutMiddleware)
app.add_middleware(RequestMetricsMiddleware)
app.add_middleware(RateLimitMiddleware, limiter=limiter, tiers={"pro": "1000/hour"})
app.add_middleware(SessionMiddleware, store=MemoryStore(), secret_key="x" * 32)
app.add_middleware(ShutdownMiddleware, coordinator=coordinator)

# Misuses mypy must catch.
Middleware(CorrelationIdMiddleware, header="X-Id")  # type: ignore[call-arg]
app.add_middleware(HTTPSRedirectMiddleware, https_port="443")  # type: ignore[arg-type]
app.add_middleware(SecurityHeadersMiddleware, policy="strict")  # type: ignore[arg-type]
app.add_middleware(RateLimitMiddleware, limiter=limiter, limits="1/s")  # type: ignore[call-arg]
Middleware(RateLimitMiddleware, limiter=limiter, exempt_paths=3)  # type: ignore[arg-type]
