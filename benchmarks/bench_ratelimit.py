"""Per-request cost of rate limiting, in-process, against slowapi and against limits itself.

1. Memory storage, one-route Starlette app called in-process (no HTTP client):
   ``bare``; ``renderkit`` (RateLimitMiddleware); ``slowapi asgi`` (SlowAPIASGIMiddleware);
   ``slowapi`` (SlowAPIMiddleware, a BaseHTTPMiddleware). Same limit, same strategy
   (fixed window), headers on for all. Target (issue 6): renderkit adds at most half of
   slowapi's per-request overhead, ``(renderkit - bare) / (slowapi asgi - bare) <= 0.5``.
2. Redis (``RENDERKIT_BENCH_REDIS_URL``, default redis://127.0.0.1:6379/0): ``limits hit()``
   (limits' own async sliding-window hit on its redis-py storage) vs ``renderkit ahit()``
   (the decision *and* remaining/reset, from renderkit's one Lua script), and ``limits hit() +
   get_window_stats()`` (what an app needs to send RateLimit headers with limits alone).
   Target: <= 1.05x of hit(). Round trips per check are counted on the client (socket writes)
   and must be exactly 1. The same comparison sync (``RateLimiter.hit`` vs limits' sync hit:
   what ``../shared/bench/rk_cache_ratelimit.py`` measures).

Run: ``.venv/bin/python benchmarks/bench_ratelimit.py`` (needs ``pip install 'renderkit[bench]'``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from _harness import Result, Target, asgi_caller, measure, report
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from renderkit.ratelimit import RateLimiter, RateLimitMiddleware

LIMIT = "1000000000/minute"


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/items/{item_id}", hello)])


def renderkit_app() -> Starlette:
    app = bare_app()
    limiter = RateLimiter("memory://", default=LIMIT, strategy="fixed-window")
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    return app


def slowapi_app(asgi: bool) -> Starlette:
    from slowapi import Limiter
    from slowapi.middleware import SlowAPIASGIMiddleware, SlowAPIMiddleware
    from slowapi.util import get_remote_address

    app = bare_app()
    app.state.limiter = Limiter(
        key_func=get_remote_address,
        default_limits=[LIMIT],
        strategy="fixed-window",
        headers_enabled=True,
        storage_uri="memory://",
    )
    app.add_middleware(SlowAPIASGIMiddleware if asgi else SlowAPIMiddleware)
    return app


def caller(app: Any) -> Any:
    headers = [(b"host", b"example.com"), (b"user-agent", b"bench/1.0")]
    return asgi_caller(app, "/items/42", headers=headers)


def memory() -> Result:
    result = measure(
        "Rate-limit middleware, memory storage, in-process ASGI call",
        {
            "bare": caller(bare_app()),
            "renderkit": caller(renderkit_app()),
            "slowapi asgi": caller(slowapi_app(asgi=True)),
            "slowapi": caller(slowapi_app(asgi=False)),
        },
        baseline="bare",
        rounds=15,
        number=400,
    )
    result.check(
        Target(
            "renderkit adds ≤ 0.5x slowapi's (ASGI middleware) overhead",
            "renderkit",
            "slowapi asgi",
            max_ratio=0.5,
        ),
        result.overhead_ratio("renderkit", "slowapi asgi", "bare"),
    )
    result.check(
        Target(
            "renderkit adds ≤ 0.5x slowapi's (BaseHTTPMiddleware) overhead",
            "renderkit",
            "slowapi",
            max_ratio=0.5,
        ),
        result.overhead_ratio("renderkit", "slowapi", "bare"),
    )
    result.note = "Overhead ratio = (variant - bare) / (slowapi - bare); fixed window for all."
    return result


def _count_writes(counter: list[int]) -> Any:
    """Patch redis-py's async connection to count socket writes (one per round trip)."""
    from redis.asyncio.connection import AbstractConnection

    original = AbstractConnection.send_packed_command

    async def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        counter[0] += 1
        await original(self, *args, **kwargs)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    return original


def redis_bench(url: str) -> Result:
    from limits import parse
    from limits.aio.strategies import SlidingWindowCounterRateLimiter
    from limits.storage import storage_from_string
    from redis.asyncio.connection import AbstractConnection

    loop = asyncio.new_event_loop()
    prefix = f"rk-bench-{uuid.uuid4().hex[:8]}"
    limiter = RateLimiter(url, default=LIMIT, key_prefix=prefix)
    storage = storage_from_string(
        "async+" + url, implementation="redispy", key_prefix=prefix + "-own"
    )
    own = SlidingWindowCounterRateLimiter(storage)  # type: ignore[arg-type]
    item = parse(LIMIT)

    async def ours() -> None:
        await limiter.ahit("client")

    async def theirs() -> None:
        await own.hit(item, "client")

    async def theirs_with_stats() -> None:
        await own.hit(item, "client")
        await own.get_window_stats(item, "client")

    loop.run_until_complete(ours())
    loop.run_until_complete(theirs())
    counter = [0]
    original = _count_writes(counter)
    try:
        counter[0] = 0
        for _ in range(100):
            loop.run_until_complete(ours())
        ours_trips = counter[0] / 100
        counter[0] = 0
        for _ in range(100):
            loop.run_until_complete(theirs())
        theirs_trips = counter[0] / 100
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    result = measure(
        "One check on Redis (sliding window counter), async redis-py",
        {
            "limits hit()": theirs,
            "renderkit ahit()": ours,
            "limits hit() + get_window_stats()": theirs_with_stats,
        },
        baseline="limits hit()",
        rounds=15,
        number=300,
        loop=loop,
    )
    result.check(
        Target("renderkit ahit() ≤ 1.05x limits' own hit()", "renderkit ahit()",
               "limits hit()", max_ratio=1.05),
        result.ratio("renderkit ahit()", "limits hit()"),
    )  # fmt: skip
    result.check(
        Target("round trips per renderkit check == 1", "renderkit ahit()", "limits hit()",
               max_ratio=1.0, min_ratio=1.0),
        ours_trips,
    )  # fmt: skip
    result.note = (
        f"Round trips per check: renderkit {ours_trips:.2f} (decision + remaining/reset from one "
        f"script), limits hit() {theirs_trips:.2f} (decision only; its get_window_stats() "
        "would add another)."
    )
    loop.run_until_complete(limiter.aclose())
    loop.close()
    return result


def redis_sync_bench(url: str) -> Result:
    from limits import parse
    from limits.storage import storage_from_string
    from limits.strategies import SlidingWindowCounterRateLimiter

    prefix = f"rk-bench-{uuid.uuid4().hex[:8]}"
    limiter = RateLimiter(url, default=LIMIT, key_prefix=prefix)
    own = SlidingWindowCounterRateLimiter(storage_from_string(url, key_prefix=prefix + "-own"))
    item = parse(LIMIT)
    result = measure(
        "One check on Redis (sliding window counter), sync redis-py",
        {
            "limits hit()": lambda: own.hit(item, "client"),
            "renderkit hit()": lambda: limiter.hit("client"),
        },
        baseline="limits hit()",
        rounds=15,
        number=300,
    )
    result.check(
        Target("renderkit hit() ≤ 1.05x limits' own hit()", "renderkit hit()",
               "limits hit()", max_ratio=1.05),
        result.ratio("renderkit hit()", "limits hit()"),
    )  # fmt: skip
    limiter.close()
    return result


def main() -> None:
    results = [memory()]
    url = os.environ.get("RENDERKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except Exception as exc:  # no Redis: report the memory figures only
        print(f"Redis benchmark skipped ({type(exc).__name__}: {exc})")
    else:
        results.append(redis_bench(url))
        results.append(redis_sync_bench(url))
    report(results, "ratelimit")


if __name__ == "__main__":
    main()
