"""renderkit.db in a Starlette app: pool opened at start-up, retried writes, health endpoint.

Run with a Postgres at DATABASE_URL (postgres:// is fine):

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test uvicorn examples.db_example:app
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from renderkit.db import AsyncDatabase

db = AsyncDatabase.from_env()  # DATABASE_URL, DB_POOL_MIN, DB_POOL_MAX, ... (nothing connects yet)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await db.open()  # retries while a cold Postgres wakes up, within DB_STARTUP_BUDGET
    await db.execute(
        "CREATE TABLE IF NOT EXISTS visits (path text PRIMARY KEY, hits bigint NOT NULL)"
    )
    yield
    await db.close()


async def visit(request: Request) -> JSONResponse:
    path = request.url.path

    async def count(conn: Any) -> int:
        # An upsert is idempotent enough to retry: run() repeats it after a lost connection.
        cur = await conn.execute(
            "INSERT INTO visits VALUES (%s, 1) ON CONFLICT (path) "
            "DO UPDATE SET hits = visits.hits + 1 RETURNING hits",
            (path,),
        )
        row = await cur.fetchone()
        return int(row[0])

    return JSONResponse({"path": path, "hits": await db.run(count)})


async def health(request: Request) -> JSONResponse:
    result = await db.health_check()
    code = 200 if result.status != "unhealthy" else 503
    return JSONResponse({"status": result.status, "latency_ms": result.latency_ms}, code)


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(db.stats())


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/stats", stats),
        Route("/{path:path}", visit),
    ],
    lifespan=lifespan,
)
