"""Cost of a cache read through renderkit.cache against the calls it wraps.

Every Redis variant reads the same key (``bench:k``, a small JSON object stored once by
``Cache.set``) on the same Redis, interleaved in one run. What each variant includes:

- ``redis-py GET``: the baseline the issue names, a default ``redis.Redis.from_url`` client
  returning the stored bytes; nothing decoded.
- ``redis-py GET + json.loads``: the same plus the standard-library decode a hand-written
  cache needs (the fair "do it yourself" comparison).
- ``redis-py GET, renderkit's client``: the raw GET on the client ``Cache.from_url`` builds
  (0.25 s socket timeouts, bounded pool, one reconnect): what the client settings cost.
- ``Cache.get (from_url)``: what a user gets from ``Cache.from_url(url)``: key check, the
  memory fallback's circuit breaker, the GET, the decode (orjson when installed), counters.
- ``Cache.get (from_url, stdlib json)``: the same with ``Serializer(fast_json=False)``.
- ``Cache.get (hybrid, hot key)``: ``Cache.from_url(url, hybrid=True)``, the key in L1; the
  value is a dict, so it is decoded on every read (each caller gets its own copy).
- ``Cache.get (hybrid, hot str key)``: the same for a 50-character string: immutable, so
  L1 keeps it decoded by default.
- ``Cache.get (tiered share_values, hot key)``: ``TieredBackend(..., share_values=True)``:
  the decoded dict itself is kept in L1 and handed to every caller (do not mutate).
- the asyncio twins (``renderkit's client``: a ``ConnectionPool``, gated by the backend's
  semaphore only inside ``AsyncCache``), and ``redis.asyncio GET, BlockingConnectionPool``:
  the raw GET on the pool ``AsyncCache.from_url`` used before (an ``asyncio.Condition`` and
  a timeout per call).
- ``MemoryBackend.get`` / ``MemoryBackend.aget`` / ``cashews mem:// get``: in-process stores.

Targets (issue 4): ``Cache.get`` and ``AsyncCache.get`` at most 1.10x the raw GET of their
kind; ``MemoryBackend`` get at most 0.5x cashews' memory get; a tiered hot key at least 30x
faster than a Redis GET. Redis: ``RENDERKIT_BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/15).
Run: ``cd benchmarks && python bench_cache.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from _harness import Result, Target, measure, report

from renderkit.cache import (
    AsyncCache,
    Cache,
    FallbackBackend,
    MemoryBackend,
    RedisBackend,
    TieredBackend,
)
from renderkit.cache._serde import Serializer

URL = os.environ.get("RENDERKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
VALUE = {"id": 42, "name": "renderkit", "tags": ["a", "b"]}
KEY = "bench:k"


def _note(fast_json: bool) -> str:
    decoder = "orjson (installed)" if fast_json else "the standard library (orjson not installed)"
    return (
        "All rows read the same key and value on the same Redis. The baseline returns raw "
        "bytes; every Cache row also decodes them, here with "
        f"{decoder}. `renderkit's client` isolates the client settings from the facade. "
        "The hybrid row decodes the dict on every read (callers may mutate their copy); the "
        "share_values row hands out one shared object."
    )


def _target(result: Result, text: str, a: str, b: str, **bound: float) -> None:
    result.check(Target(text, a, b, **bound), result.ratio(a, b))


def run() -> list[Result]:
    import redis
    import redis.asyncio as aredis

    loop = asyncio.new_event_loop()
    raw = redis.Redis.from_url(URL)
    araw = aredis.Redis.from_url(URL)
    cache = Cache.from_url(URL, namespace="bench")
    stdlib = Cache.from_url(URL, namespace="bench", serializer=Serializer(fast_json=False))
    hybrid = Cache.from_url(URL, namespace="bench", hybrid=True)
    shared = Cache(
        TieredBackend(
            MemoryBackend(),
            FallbackBackend(RedisBackend.from_url(URL), MemoryBackend()),
            share_values=True,
        ),
        namespace="bench",
    )
    acache = AsyncCache.from_url(URL, namespace="bench")
    astdlib = AsyncCache.from_url(URL, namespace="bench", serializer=Serializer(fast_json=False))
    ablocking = aredis.Redis(
        connection_pool=aredis.BlockingConnectionPool.from_url(
            URL, max_connections=50, timeout=1.0, socket_timeout=0.25
        )
    )
    cache.set("k", VALUE, ttl=600)
    assert hybrid.get("k") == VALUE
    assert shared.get("k") == VALUE
    assert raw.get(KEY) is not None
    renderkit_client = cache.backend.primary.client  # type: ignore[attr-defined]
    arenderkit_client = acache.backend.primary.client  # type: ignore[attr-defined]
    hybrid.set("s", "renderkit " * 5, ttl=600)
    assert hybrid.get("s")
    fast_json = cache.serializer.fast_json

    memory = MemoryBackend()
    memory.set("k", b"j{}", 600)
    results: list[Result] = []

    sync = measure(
        "Cache.get on Redis (sync)",
        {
            "redis-py GET": lambda: raw.get(KEY),
            "redis-py GET + json.loads": lambda: json.loads(raw.get(KEY)[1:]),
            "redis-py GET, renderkit's client": lambda: renderkit_client.get(KEY),
            "Cache.get (from_url)": lambda: cache.get("k"),
            "Cache.get (from_url, stdlib json)": lambda: stdlib.get("k"),
            "Cache.get (hybrid, hot key)": lambda: hybrid.get("k"),
            "Cache.get (hybrid, hot str key)": lambda: hybrid.get("s"),
            "Cache.get (tiered share_values, hot key)": lambda: shared.get("k"),
        },
        baseline="redis-py GET",
        rounds=25,
        number=200,
    )
    _target(
        sync,
        "Cache.get <= 1.10x redis-py GET",
        "Cache.get (from_url)",
        "redis-py GET",
        max_ratio=1.10,
    )
    _target(
        sync,
        "Cache.get <= 1.10x redis-py GET + json.loads",
        "Cache.get (from_url)",
        "redis-py GET + json.loads",
        max_ratio=1.10,
    )
    _target(
        sync,
        "hybrid hot key (copy per read) >= 30x faster than a Redis GET",
        "redis-py GET",
        "Cache.get (hybrid, hot key)",
        min_ratio=30.0,
    )
    _target(
        sync,
        "hybrid hot str key >= 30x faster than a Redis GET",
        "redis-py GET",
        "Cache.get (hybrid, hot str key)",
        min_ratio=30.0,
    )
    _target(
        sync,
        "share_values hot key >= 30x faster than a Redis GET",
        "redis-py GET",
        "Cache.get (tiered share_values, hot key)",
        min_ratio=30.0,
    )
    sync.note = _note(fast_json)
    results.append(sync)

    def aop(fn: Any) -> Any:
        async def op() -> Any:
            return await fn()

        return op

    async def raw_aget_decode() -> Any:
        return json.loads((await araw.get(KEY))[1:])

    asy = measure(
        "AsyncCache.get on Redis (asyncio)",
        {
            "redis.asyncio GET": aop(lambda: araw.get(KEY)),
            "redis.asyncio GET + json.loads": raw_aget_decode,
            "redis.asyncio GET, renderkit's client": aop(lambda: arenderkit_client.get(KEY)),
            "redis.asyncio GET, BlockingConnectionPool": aop(lambda: ablocking.get(KEY)),
            "AsyncCache.get (from_url)": aop(lambda: acache.get("k")),
            "AsyncCache.get (from_url, stdlib json)": aop(lambda: astdlib.get("k")),
        },
        baseline="redis.asyncio GET",
        rounds=25,
        number=200,
        loop=loop,
    )
    _target(
        asy,
        "AsyncCache.get <= 1.10x redis.asyncio GET",
        "AsyncCache.get (from_url)",
        "redis.asyncio GET",
        max_ratio=1.10,
    )
    _target(
        asy,
        "AsyncCache.get <= 1.10x redis.asyncio GET + json.loads",
        "AsyncCache.get (from_url)",
        "redis.asyncio GET + json.loads",
        max_ratio=1.10,
    )
    asy.note = _note(fast_json) + (
        " `BlockingConnectionPool` shows what redis.asyncio's blocking pool costs per call; "
        "AsyncCache.from_url bounds connections with a semaphore instead (see docs/cache.md)."
    )
    results.append(asy)

    variants: dict[str, Any] = {
        "MemoryBackend.get": lambda: memory.get("k"),
    }

    async def mem_aget() -> Any:
        return await memory.aget("k")

    variants["MemoryBackend.aget"] = mem_aget
    try:
        from cashews import Cache as CashewsCache

        cashews = CashewsCache()
        cashews.setup("mem://")
        loop.run_until_complete(cashews.set("k", {}, expire=600))

        async def cashews_get() -> Any:
            return await cashews.get("k")

        variants["cashews mem:// get"] = cashews_get
    except ImportError:
        print(
            "cashews not installed: pip install cashews for the memory comparison", file=sys.stderr
        )
    mem = measure(
        "Memory backend get",
        variants,
        baseline="MemoryBackend.get",
        rounds=15,
        number=2000,
        loop=loop,
    )
    if "cashews mem:// get" in variants:
        mem.check(
            Target(
                "MemoryBackend.aget <= 0.5x cashews mem:// get",
                "MemoryBackend.aget",
                "cashews mem:// get",
                max_ratio=0.5,
            ),
            mem.ratio("MemoryBackend.aget", "cashews mem:// get"),
        )
        mem.check(
            Target(
                "MemoryBackend.get <= 0.5x cashews mem:// get",
                "MemoryBackend.get",
                "cashews mem:// get",
                max_ratio=0.5,
            ),
            mem.ratio("MemoryBackend.get", "cashews mem:// get"),
        )
    results.append(mem)

    if "cashews mem:// get" in variants:
        loop.run_until_complete(cashews.close())
    cache.clear()
    for c in (cache, stdlib, hybrid, shared):
        c.close()
    raw.close()
    loop.run_until_complete(acache.close())
    loop.run_until_complete(astdlib.close())
    loop.run_until_complete(ablocking.aclose())
    loop.run_until_complete(araw.aclose())
    loop.close()
    return results


if __name__ == "__main__":
    report(run(), "cache")
