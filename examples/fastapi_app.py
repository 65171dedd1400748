"""The renderkit demo: a FastAPI app using every module, with zero configuration.

Run it (no environment variables needed; memory backends)::

    uvicorn examples.fastapi_app:app            # or: nox -s demo
    open http://127.0.0.1:8000/

With ``REDIS_URL`` set, sessions, the cache and the rate limiter share Redis across instances (each
keeps serving from memory while Redis is down). On Render, ``render.yaml`` in this folder
(from ``renderkit blueprint``) wires ``REDIS_URL`` and ``SESSION_SECRET``.

Routes: ``/`` (HTML page whose inline script runs thanks to the CSP nonce; it counts your
views in a server-side session), ``/api/visits`` (GET/POST: a session counter),
``/api/slow-square/{n}`` (cache with stampede protection), ``/api/db-time`` (Postgres, when
``DATABASE_URL`` is set), ``/api/limited`` (5/minute),
``/health``, ``/health/live``, ``/health/ready``, ``/health/instance``, ``/metrics`` and
``/metrics/json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from renderkit.cache import AsyncCache
from renderkit.config import environment
from renderkit.correlation import CorrelationIdMiddleware, get_correlation_id
from renderkit.db import AsyncDatabase
from renderkit.health import Health
from renderkit.logging import configure_logging
from renderkit.metrics import RequestMetrics, RequestMetricsMiddleware
from renderkit.platform import detect
from renderkit.ratelimit import RateLimit, RateLimiter, RateLimitMiddleware
from renderkit.resilience import TimeoutMiddleware
from renderkit.security import (
    HTTPSRedirectMiddleware,
    SecurityHeadersMiddleware,
    https_redirect_enabled,
)
from renderkit.sessions import (
    FallbackStore,
    MemoryStore,
    RedisStore,
    SessionMiddleware,
    SessionStore,
)
from renderkit.shutdown import ShutdownCoordinator, ShutdownMiddleware

PAGE = (Path(__file__).parent / "index.html").read_text(encoding="utf-8")
log = logging.getLogger("examples.fastapi_app")


def session_store(env: Mapping[str, str]) -> SessionStore:
    """Redis (falling back to memory while it is down) when REDIS_URL is set, else memory."""
    url = env.get("REDIS_URL")
    if url:
        return FallbackStore(RedisStore.from_url(url), MemoryStore())
    return MemoryStore()


def session_secret(env: Mapping[str, str], env_name: str) -> str | None:
    """SESSION_SECRET; in development only, a random one (sessions end at restart)."""
    secret = env.get("SESSION_SECRET")
    if not secret and env_name == "development":
        log.warning("SESSION_SECRET is not set: using a random one for this process (demo only)")
        return secrets.token_urlsafe(64)
    return secret  # None in production: SessionMiddleware refuses to start, naming the variable


def create_app(environ: Mapping[str, str] | None = None, *, logs: bool = True) -> FastAPI:
    """Build the demo app from ``environ`` (default: ``os.environ``); nothing connects yet.

    ``logs``: configure logging at start-up (tests pass False to keep pytest's own).
    """
    env = dict(os.environ if environ is None else environ)
    platform = detect(env)
    env_name = environment(env)

    store = session_store(env)
    # Postgres only when DATABASE_URL is set: the zero-config demo runs without one.
    database = AsyncDatabase.from_env(env) if env.get("DATABASE_URL") else None
    cache = AsyncCache.from_env(env)  # memory unless REDIS_URL / CACHE_TYPE say otherwise
    limiter = RateLimiter.from_env(env)  # memory:// unless RATELIMIT_STORAGE_URL / REDIS_URL
    metrics = RequestMetrics()
    coordinator = ShutdownCoordinator.from_env(env)
    coordinator.on_shutdown(cache.close, name="cache", timeout=2.0)
    coordinator.on_shutdown(limiter.close, name="ratelimit", timeout=2.0)
    coordinator.on_shutdown(store.close, name="sessions", timeout=2.0)
    if database is not None:
        coordinator.on_shutdown(database.close, name="database", timeout=5.0)

    health = Health.from_env(env, shutdown=coordinator)
    health.add("cache", cache.health_check, critical=False, component_type="datastore")
    health.add("ratelimit", limiter.health_check, critical=False, component_type="datastore")
    health.add("sessions", store.health_check, critical=False, component_type="datastore")
    if database is not None:  # Postgres is critical: unhealthy (503) when it is down
        health.add("database", database.health_check, critical=True, component_type="datastore")
    health.add_system_checks()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if logs:
            configure_logging(environ=env)
        async with coordinator.lifespan(app):
            if database is not None:
                await database.open()  # retries with backoff while Postgres cold-starts
            yield

    app = FastAPI(title="renderkit demo", lifespan=lifespan)
    app.router.routes.extend(health.routes(prefix="/health"))
    app.router.routes.extend(metrics.routes("/metrics"))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request) -> HTMLResponse:
        request.session["views"] = int(request.session.get("views", 0)) + 1
        page = (
            PAGE.replace("__NONCE__", request.state.csp_nonce)
            .replace("__REQUEST_ID__", get_correlation_id() or "-")
            .replace("__ENVIRONMENT__", env_name)
            .replace("__PROVIDER__", platform.provider)
            .replace("__VIEWS__", str(request.session["views"]))
        )
        return HTMLResponse(page)

    @app.get("/api/visits")
    async def visits(request: Request) -> dict[str, Any]:
        """This browser's session: the counter survives requests (and, on Redis, deploys)."""
        return {
            "views": request.session.get("views", 0),
            "visits": request.session.get("visits", 0),
        }

    @app.post("/api/visits")
    async def count_visit(request: Request) -> dict[str, Any]:
        """Add one to this session's visit counter."""
        request.session["visits"] = int(request.session.get("visits", 0)) + 1
        return {"visits": request.session["visits"], "views": request.session.get("views", 0)}

    @cache.cached(ttl=30)
    async def slow_square(n: int) -> dict[str, Any]:
        await asyncio.sleep(0.2)  # an expensive computation or a slow upstream
        return {"n": n, "square": n * n}

    @app.get("/api/slow-square/{n}")
    async def square(n: int) -> dict[str, Any]:
        """The first call takes 200 ms; the next 30 s come from the cache."""
        return {"result": await slow_square(n), "cache": cache.stats()}

    @app.get("/api/db-time")
    async def db_time() -> dict[str, Any]:
        """The database's clock (404 without DATABASE_URL)."""
        if database is None:
            raise HTTPException(404, "set DATABASE_URL to enable this route")
        row = await database.fetch_one("SELECT now()::text AS now")
        return {"now": row[0] if isinstance(row, tuple) else row}

    @app.get("/api/limited", dependencies=[Depends(RateLimit("5/minute", limiter=limiter))])
    async def limited() -> dict[str, Any]:
        """Five calls a minute per client; the sixth gets a 429 with Retry-After."""
        return {"ok": True, "request_id": get_correlation_id()}

    # Added last = outermost: shutdown tracking sees every request; the request id is bound
    # before anything logs; security headers land even on 429s and 504s.
    app.add_middleware(
        SessionMiddleware, store=store, secret_key=session_secret(env, env_name), environ=env
    )
    app.add_middleware(RateLimitMiddleware, limiter=limiter, exempt_paths=["/health*"])
    app.add_middleware(TimeoutMiddleware, timeout=30.0)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    if https_redirect_enabled(env):
        app.add_middleware(HTTPSRedirectMiddleware)
    app.add_middleware(CorrelationIdMiddleware)
    app.add_middleware(ShutdownMiddleware, coordinator=coordinator)
    app.state.database = database
    app.state.sessions = store
    app.state.cache = cache
    app.state.limiter = limiter
    app.state.health = health
    app.state.coordinator = coordinator
    return app


app = create_app()
