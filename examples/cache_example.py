"""renderkit.cache in a FastAPI-style Starlette app: Redis when it answers, memory when not.

    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn examples.cache_example:app

Stop Redis while it runs: pages keep answering (from memory), /health says "degraded", and
the cache goes back to Redis within CACHE_PROBE_INTERVAL (5 s) of Redis returning.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from renderkit.cache import AsyncCache

cache = AsyncCache.from_env()  # REDIS_URL, CACHE_TYPE, CACHE_TTL, CACHE_NAMESPACE, ...


@cache.cached(ttl=60, stale_if_error=600)
async def exchange_rate(currency: str) -> float:
    await asyncio.sleep(0.2)  # stands in for a slow upstream call
    return {"EUR": 0.92, "GBP": 0.79}.get(currency.upper(), 1.0)


async def rate(request: Request) -> JSONResponse:
    currency = request.path_params["currency"]
    return JSONResponse({"currency": currency, "rate": await exchange_rate(currency)})


async def health(request: Request) -> JSONResponse:
    result = await cache.health_check()
    return JSONResponse({"status": result.status, "message": result.message})


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(cache.stats())


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await cache.close()


app = Starlette(
    routes=[
        Route("/rate/{currency}", rate),
        Route("/health", health),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)


if __name__ == "__main__":

    async def demo() -> None:
        for _ in range(3):
            print(await exchange_rate("eur"), cache.stats()["hits"])
        await cache.close()

    asyncio.run(demo())
