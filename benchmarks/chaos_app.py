"""The app the chaos run serves: every renderkit module that exists, wired as an app team would.

Configured by environment variables set by ``benchmarks/chaos.py``:

- ``CHAOS_REDIS_URL`` / ``CHAOS_DATABASE_URL``: the run's own Redis and Postgres.
- ``CHAOS_LIMIT``: the rate limit on ``/limited`` (``limits`` syntax, default ``20/10 seconds``).

Routes: ``GET /count`` adds one to a counter kept in the client's session and returns it;
``/login``, ``/whoami``, ``/logout`` (the log-out-during-outage client);
``GET /limited`` is rate limited per ``X-Chaos-Key`` header; ``GET /slow?ms=`` sleeps (the
in-flight requests of the shutdown check); ``/health``, ``/health/live``, ``/health/ready``;
``GET /modules`` lists which renderkit modules were wired (the report prints it).

Modules still missing from the tree are skipped, and the report says so: without
``renderkit.sessions`` the counter lives in a Postgres row per client (through ``renderkit.db``)
keyed by a random cookie; without the ``Health`` registry a plain endpoint runs each
component's ``health_check()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from renderkit.cache import AsyncCache
from renderkit.correlation import CorrelationIdMiddleware
from renderkit.db import AsyncDatabase
from renderkit.errors import RenderKitError
from renderkit.health import CheckResult
from renderkit.security import SecurityHeaders, SecurityHeadersMiddleware

REDIS_URL = os.environ.get("CHAOS_REDIS_URL", "redis://127.0.0.1:6379/15")
DATABASE_URL = os.environ.get("CHAOS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
LIMIT = os.environ.get("CHAOS_LIMIT", "20/10 seconds")
SECRET = os.environ.get("CHAOS_SECRET", "chaos-" + "x" * 40)
COOKIE = "chaos_sid"

logging.basicConfig(level=logging.WARNING)
logger = logging.getLogger("chaos_app")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


HAS = {
    name: _has(f"renderkit.{name}")
    for name in ("sessions", "ratelimit", "shutdown", "metrics", "resilience")
}

db = AsyncDatabase(
    DATABASE_URL,
    min_size=1,
    max_size=4,
    application_name="rk-chaos",
    pool_timeout=3.0,
    connect_timeout=2.0,
    statement_timeout=5.0,
    retry_attempts=6,
    retry_backoff=0.1,
    retry_backoff_max=1.0,
    startup_budget=30.0,
    ssl="off",
)
cache = AsyncCache.from_url(REDIS_URL, namespace="chaos")
wired: list[str] = ["correlation", "security", "db", "cache"]
checks: dict[str, tuple[Callable[[], Any], bool]] = {
    "database": (db.health_check, True),
    "cache": (cache.health_check, False),
}
cleanups: list[Callable[[], Awaitable[Any] | Any]] = []

# Transient infrastructure failures that survived the library's own retries: the app answers
# 503 with Retry-After (what a user sees while Postgres restarts), never a 500.
_UNAVAILABLE: tuple[type[BaseException], ...] = (RenderKitError, ConnectionError, TimeoutError)
with contextlib.suppress(ImportError):
    import psycopg
    import psycopg_pool

    _UNAVAILABLE += (psycopg.OperationalError, psycopg_pool.PoolTimeout)


def unavailable(what: str) -> Response:
    return JSONResponse({"error": f"{what} unavailable, retry"}, 503, {"Retry-After": "1"})


# --- routes --------------------------------------------------------------------------------
async def count(request: Request) -> Response:
    """Add one to this client's counter and return it."""
    if "session" in request.scope:
        session = request.session
        session["n"] = int(session.get("n", 0)) + 1
        return JSONResponse({"count": session["n"], "pid": os.getpid()})
    # No renderkit.sessions in the tree: the counter lives in Postgres, keyed by a cookie.
    sid = request.cookies.get(COOKIE)
    new = sid is None or len(sid) != 32
    if new:
        sid = secrets.token_hex(16)
    try:
        row = await db.fetch_one(
            "INSERT INTO chaos_counter (sid, n) VALUES (%s, 1) "
            "ON CONFLICT (sid) DO UPDATE SET n = chaos_counter.n + 1 RETURNING n",
            (sid,),
            idempotent=False,
        )
    except _UNAVAILABLE:
        return unavailable("database")
    response = JSONResponse({"count": int(row[0]), "pid": os.getpid()})
    if new:
        response.set_cookie(COOKIE, str(sid), httponly=True, samesite="lax")
    return response


async def login(request: Request) -> Response:
    """Log in: a user in the session under a new id (regenerate, against fixation)."""
    if "session" not in request.scope:
        return JSONResponse({"user": None})
    request.session["user"] = request.query_params.get("name", "ada")
    request.session.regenerate()
    return JSONResponse({"user": request.session["user"]})


async def whoami(request: Request) -> Response:
    user = request.session.get("user") if "session" in request.scope else None
    return JSONResponse({"user": user})


async def logout(request: Request) -> Response:
    if "session" in request.scope:
        request.session.clear()
    return JSONResponse({"user": None})


async def limited(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def slow(request: Request) -> Response:
    ms = min(int(request.query_params.get("ms", "500")), 10_000)
    await asyncio.sleep(ms / 1000)
    # Touch the cache so a drained request still uses a live component during shutdown.
    await cache.get("slow")
    return JSONResponse({"slept_ms": ms, "pid": os.getpid()})


async def modules(request: Request) -> Response:
    return JSONResponse({"wired": wired, "missing": [n for n, ok in HAS.items() if not ok]})


# --- health --------------------------------------------------------------------------------
async def _run_check(check: Callable[[], Any]) -> CheckResult:
    try:
        result = check()
        if asyncio.iscoroutine(result):
            result = await asyncio.wait_for(result, 3.0)
    except Exception as exc:
        return CheckResult.unhealthy(f"{type(exc).__name__}: {exc}")
    return result if isinstance(result, CheckResult) else CheckResult.healthy()


async def plain_health(request: Request) -> Response:
    results = {name: await _run_check(fn) for name, (fn, _) in checks.items()}
    status = "healthy"
    for name, result in results.items():
        critical = checks[name][1]
        if result.status == "unhealthy" and critical:
            status = "unhealthy"
        elif result.status != "healthy" and status == "healthy":
            status = "degraded"
    return JSONResponse(
        {"status": status, "checks": {n: r.status for n, r in results.items()}},
        503 if status == "unhealthy" else 200,
    )


# --- rate limits -----------------------------------------------------------------------------
middleware: list[tuple[Any, dict[str, Any]]] = []
if HAS["ratelimit"]:
    from renderkit.ratelimit import RateLimiter, RateLimitMiddleware, RequestInfo, Rule

    limiter = RateLimiter(REDIS_URL, default=LIMIT, timeout=0.25)  # probes Redis every 1 s

    def chaos_key(request: RequestInfo) -> str:
        return "chaos:" + (request.header("x-chaos-key") or "anonymous")[:64]

    middleware.append(
        (
            RateLimitMiddleware,
            {
                "limiter": limiter,
                "key": chaos_key,
                "rules": [Rule("/limited", LIMIT)],
                "limit_unmatched": False,
            },
        )
    )
    checks["ratelimit"] = (limiter.health_check, False)
    cleanups.append(limiter.close)
    wired.append("ratelimit")


# --- sessions: Redis first, Postgres while Redis is down --------------------------------------
if HAS["sessions"]:
    from renderkit.sessions import FallbackStore, PostgresStore, RedisStore, SessionMiddleware

    session_store = FallbackStore(
        RedisStore.from_url(REDIS_URL), PostgresStore(db), recovery_timeout=2.0
    )
    middleware.append(
        (
            SessionMiddleware,
            {"store": session_store, "secret_key": SECRET, "https_only": False},
        )
    )
    checks["sessions"] = (session_store.health_check, False)
    cleanups.append(session_store.aclose)
    wired.append("sessions")


@contextlib.asynccontextmanager
async def resources(app: Starlette) -> AsyncIterator[None]:
    await db.open()
    try:
        yield
    finally:
        # Without renderkit.shutdown these run here; with it, they are its hooks.
        for cleanup in reversed(cleanups):
            result = cleanup()
            if asyncio.iscoroutine(result):
                await result


lifespan: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]] = resources
if HAS["shutdown"]:
    from renderkit.shutdown import ShutdownCoordinator, ShutdownMiddleware

    coordinator = ShutdownCoordinator(grace_period=20.0)
    coordinator.on_shutdown(db.close, name="database", timeout=5.0)
    coordinator.on_shutdown(cache.close, name="cache", timeout=2.0)
    for _cleanup in cleanups:
        coordinator.on_shutdown(_cleanup, timeout=2.0)
    cleanups = []

    @contextlib.asynccontextmanager
    async def opened(app: Starlette) -> AsyncIterator[None]:
        await db.open()
        yield

    lifespan = coordinator.wrap_lifespan(opened)
    checks["shutdown"] = (coordinator.health_check, True)
    wired.append("shutdown")
else:
    cleanups.extend([cache.close, db.close])


health_routes: list[Any] = []
try:
    from renderkit.health import Health  # type: ignore[attr-defined]

    health = Health()
    for _name, (_fn, _critical) in checks.items():
        health.add(_name, _fn, critical=_critical)
    health_routes = list(health.routes(prefix="/health"))
    wired.append("health")
except (ImportError, AttributeError, TypeError):
    health_routes = [
        Route("/health", plain_health),
        Route("/health/ready", plain_health),
        Route("/health/live", lambda r: JSONResponse({"status": "healthy"})),
    ]
    wired.append("health(plain)")

app = Starlette(
    routes=[
        Route("/count", count),
        Route("/login", login),
        Route("/whoami", whoami),
        Route("/logout", logout),
        Route("/limited", limited),
        Route("/slow", slow),
        Route("/modules", modules),
        *health_routes,
    ],
    lifespan=lifespan,
)
for _cls, _options in middleware:
    app.add_middleware(_cls, **_options)
app.add_middleware(SecurityHeadersMiddleware, policy=SecurityHeaders.api())
app.add_middleware(CorrelationIdMiddleware)
if HAS["shutdown"]:
    app.add_middleware(ShutdownMiddleware, coordinator=coordinator)
