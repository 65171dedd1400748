"""Health checks and graceful shutdown for a Starlette app on Render.

Run it:

    uvicorn examples.health_shutdown_example:app --port 8000
    curl -s localhost:8000/health          # detailed: localhost is a trusted network
    curl -s localhost:8000/health/instance # the path to give Render as healthCheckPath
    kill -TERM <pid>                       # in-flight requests finish, then hooks run

Environment: ``DATABASE_URL`` and ``REDIS_URL`` (optional) add a Postgres check (critical:
503 when down) and a Redis check (non-critical: degraded when down). ``HEALTH_TOKEN``,
``HEALTH_CACHE_TTL``, ``SHUTDOWN_GRACE_PERIOD`` and the other documented variables apply.
``EXAMPLE_EVENT_LOG`` names a file where each request (at its start and end) and each cleanup hook
appends a line (the end-to-end tests read it to check the order of events).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from renderkit.health import CheckResult, Health
from renderkit.shutdown import ShutdownCoordinator, ShutdownMiddleware

EVENT_LOG = os.environ.get("EXAMPLE_EVENT_LOG")
DATABASE_URL = os.environ.get("DATABASE_URL")
REDIS_URL = os.environ.get("REDIS_URL")


def record(event: str) -> None:
    """Append one timestamped line to EXAMPLE_EVENT_LOG (when set)."""
    if EVENT_LOG:
        with open(EVENT_LOG, "a", encoding="utf-8") as log:
            log.write(f"{time.time():.6f} {os.getpid()} {event}\n")


def postgres_check() -> CheckResult:
    """SELECT 1 with a 2 s connect timeout (runs in a health thread, never on the loop)."""
    import psycopg

    assert DATABASE_URL is not None
    started = time.perf_counter()
    with psycopg.connect(DATABASE_URL, connect_timeout=2) as connection:
        connection.execute("SELECT 1")
    return CheckResult.healthy(latency=round((time.perf_counter() - started) * 1000, 1))


def redis_check() -> None:
    """PING with 1 s timeouts; raising marks the check failed."""
    import redis

    assert REDIS_URL is not None
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


# Platform-aware defaults: 25 s on Render (its SIGKILL comes 30 s after SIGTERM).
coordinator = ShutdownCoordinator.from_env()
health = Health.from_env(shutdown=coordinator)
health.add_system_checks()
if DATABASE_URL:
    health.add("database", postgres_check, critical=True, timeout=3, component_type="datastore")
if REDIS_URL:
    health.add("redis", redis_check, critical=False, timeout=2, component_type="datastore")


async def close_database() -> None:
    record("hook database")


async def close_cache() -> None:
    record("hook cache")


# Registered first, closed last: the database outlives the cache that may still flush to it.
coordinator.on_shutdown(close_database, name="database", timeout=5.0)
coordinator.on_shutdown(close_cache, name="cache", timeout=2.0)


async def work(request: Request) -> Response:
    """A request that takes `seconds` (default 1): what a deploy must not cut off."""
    try:
        seconds = min(float(request.query_params.get("seconds", "1")), 10.0)
    except ValueError:
        return JSONResponse({"error": "seconds must be a number"}, status_code=400)
    record("request start")
    await asyncio.sleep(seconds)
    record("request done")
    return JSONResponse({"slept": seconds})


async def events(request: Request) -> Response:
    """Server-sent events that end by themselves when shutdown begins."""

    async def ticks() -> AsyncIterator[bytes]:
        while True:
            yield b"data: tick\n\n"
            await asyncio.sleep(1)

    return StreamingResponse(coordinator.until_shutdown(ticks()), media_type="text/event-stream")


app = Starlette(
    routes=[Route("/work", work), Route("/events", events), *health.routes(prefix="/health")],
    lifespan=coordinator.lifespan,
)
app.add_middleware(ShutdownMiddleware, coordinator=coordinator)
