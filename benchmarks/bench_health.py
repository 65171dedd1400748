"""Health aggregation, the health cache and ShutdownMiddleware's per-request cost.

- ``aggregation``: ``Health.run(fresh=True)`` over three 100 ms checks (one async, two sync in
  threads) against awaiting the slowest check alone. Target (issue 7): at most 1.2x.
- ``cache``: ``GET /health`` through the ASGI endpoint with a fresh report (cache hit) against
  the same endpoint with ``cache_ttl=0`` (every call runs the 100 ms check). Target: under 1 %.
- ``sync checks``: ``Health.run(fresh=True)`` over 1, 10, 50 and 200 instant sync checks on the
  registry's reusable daemon threads, against one check (ratio to the smallest), and 200 checks
  the way renderkit ran them before (a new thread per check per run). Target (issue 18): 200
  checks on the pool take at most 0.7x the thread-per-check run.
- ``shutdown middleware``: a minimal ASGI app called in-process with and without
  ``ShutdownMiddleware``. Target: at most 2 µs added per request (difference of medians).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _harness import Result, Target, measure, report

from renderkit.health import Health
from renderkit.shutdown import ShutdownCoordinator, ShutdownMiddleware

CHECK_SECONDS = 0.1


async def slow_async() -> None:
    await asyncio.sleep(CHECK_SECONDS)


def slow_sync() -> None:
    time.sleep(CHECK_SECONDS)


def bench_aggregation(loop: asyncio.AbstractEventLoop) -> Result:
    health = Health(cache_ttl=0)
    health.add("database", slow_async)
    health.add("cache", slow_sync)
    health.add("queue", slow_sync)

    async def three_checks() -> None:
        await health.run(fresh=True)

    result = measure(
        "health aggregation (three 100 ms checks)",
        {"slowest check alone": slow_async, "Health.run, 3 checks": three_checks},
        baseline="slowest check alone",
        rounds=7,
        number=3,
        warmup=1,
        loop=loop,
    )
    result.check(
        Target(
            "3 concurrent checks / slowest check",
            "Health.run, 3 checks",
            "slowest check alone",
            max_ratio=1.2,
        ),
        result.ratio("Health.run, 3 checks", "slowest check alone"),
    )
    return result


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "client": ("203.0.113.1", 1234),
        "server": ("bench", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def bench_cache(loop: asyncio.AbstractEventLoop) -> Result:
    uncached = Health(cache_ttl=0)
    uncached.add("database", slow_async)
    cached = Health(cache_ttl=3600)
    cached.add("database", slow_async)
    loop.run_until_complete(cached.run())
    uncached_endpoint = uncached.endpoint("health")
    cached_endpoint = cached.endpoint("health")
    scope = _scope("/health")

    async def call_uncached() -> None:
        await uncached_endpoint(scope, _receive, _send)

    async def call_cached() -> None:
        await cached_endpoint(scope, _receive, _send)

    result = measure(
        "GET /health: cached vs uncached",
        {"uncached /health": call_uncached, "cached /health": call_cached},
        baseline="uncached /health",
        rounds=7,
        number=5,
        warmup=1,
        loop=loop,
    )
    ratio = result.ratio("cached /health", "uncached /health")
    result.check(
        Target("cached / uncached", "cached /health", "uncached /health", max_ratio=0.01),
        ratio,
    )
    result.note = f"A cached /health takes {ratio * 100:.3f} % of an uncached one."
    return result


def bench_middleware(loop: asyncio.AbstractEventLoop) -> Result:
    async def tiny(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    coordinator = ShutdownCoordinator()
    wrapped = ShutdownMiddleware(tiny, coordinator=coordinator)
    scope = _scope("/items/1")

    async def bare() -> None:
        await tiny(scope, _receive, _send)

    async def with_middleware() -> None:
        await wrapped(scope, _receive, _send)

    result = measure(
        "ShutdownMiddleware per-request cost",
        {"bare ASGI app": bare, "with ShutdownMiddleware": with_middleware},
        baseline="bare ASGI app",
        rounds=15,
        number=5000,
        loop=loop,
    )
    by_name = {v.name: v.median_us for v in result.variants}
    added = by_name["with ShutdownMiddleware"] - by_name["bare ASGI app"]
    result.check(
        Target(
            "µs added per request (difference of medians; max_ratio holds the µs bound)",
            "with ShutdownMiddleware",
            "bare ASGI app",
            max_ratio=2.0,
        ),
        added,
    )
    result.note = f"ShutdownMiddleware adds {added:.2f} µs per request."
    return result


def _instant() -> None:
    return None


def _registry(count: int) -> Health:
    health = Health(cache_ttl=0)
    for index in range(count):
        health.add(f"check{index}", _instant)
    return health


async def _thread_per_check(count: int) -> None:
    """The former runner: one new daemon thread per sync check per run."""
    import threading

    loop = asyncio.get_running_loop()
    futures = []
    for _ in range(count):
        future: asyncio.Future[None] = loop.create_future()

        def work(future: asyncio.Future[None] = future) -> None:
            _instant()
            loop.call_soon_threadsafe(future.set_result, None)

        threading.Thread(target=work, daemon=True).start()
        futures.append(future)
    await asyncio.gather(*futures)


def bench_sync_checks(loop: asyncio.AbstractEventLoop) -> Result:
    sizes = (1, 10, 50, 200)
    registries = {size: _registry(size) for size in sizes}
    variants: dict[str, Any] = {}
    for size, health in registries.items():

        async def run_all(health: Health = health) -> None:
            await health.run(fresh=True)

        variants[f"{size} sync check(s)"] = run_all

    async def before() -> None:
        await _thread_per_check(200)

    variants["200, a new thread each (before)"] = before
    result = measure(
        "sync checks: reusable threads, 1 -> 200 checks",
        variants,
        baseline="1 sync check(s)",
        rounds=9,
        number=10,
        warmup=2,
        loop=loop,
    )
    ratio = result.ratio("200 sync check(s)", "1 sync check(s)")
    before = "200, a new thread each (before)"
    result.check(
        Target("200 on the pool / a thread each", "200 sync check(s)", before, max_ratio=0.7),
        result.ratio("200 sync check(s)", before),
    )
    gain = result.ratio(before, "200 sync check(s)")
    started = registries[200].stats()["threads"]["started"]
    result.note = (
        f"200 sync checks cost {ratio:.1f}x one check; a new thread per check cost "
        f"{gain:.1f}x the pool's run. The 200-check registry started {started} threads in all."
    )
    return result


def run() -> list[Result]:
    loop = asyncio.new_event_loop()
    try:
        return [
            bench_aggregation(loop),
            bench_cache(loop),
            bench_sync_checks(loop),
            bench_middleware(loop),
        ]
    finally:
        loop.close()


if __name__ == "__main__":
    report(run(), "health")
