"""Cost of a cache read through renderkit.cache against the calls it wraps.

Variants, all reading one existing key (a small JSON object) interleaved in one run:

- ``redis-py GET`` / ``Cache.get (Redis+fallback)`` / ``Cache.get (RedisBackend)``: a raw
  synchronous redis-py GET against the facade (with and without the memory fallback in front).
- the asyncio twins of the three.
- ``MemoryBackend.get`` / ``MemoryBackend.aget`` / ``cashews mem:// get``: in-process stores.
- ``Cache.get (tiered, hot key)``: a key held by the L1 of a ``TieredBackend`` in front of Redis.

Targets (issue 4): ``Cache.get`` and ``AsyncCache.get`` at most 1.10x the raw GET of their
kind; ``MemoryBackend`` get at most 0.5x cashews' memory get; a tiered hot key at least 30x
faster than a Redis GET. Redis: ``RENDERKIT_BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/15).
Run: ``python benchmarks/bench_cache.py``.
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

URL = os.environ.get("RENDERKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
VALUE = {"id": 42, "name": "renderkit", "tags": ["a", "b"]}


NOTE = (
    "A raw GET returns bytes; the `+ json.loads` rows add the decode every cached value needs, "
    "the fair comparison for the facade's own cost. "
    "`from_url` clients carry a 0.25 s socket timeout and a blocking connection pool (callers "
    "wait for a free connection instead of failing); inside redis-py those cost time per call, "
    "most visibly on asyncio. The `same client` rows isolate renderkit's own cost."
)


def run() -> list[Result]:
    import redis
    import redis.asyncio as aredis

    loop = asyncio.new_event_loop()
    raw = redis.Redis.from_url(URL)
    araw = aredis.Redis.from_url(URL)
    cache = Cache.from_url(URL, namespace="bench")
    plain = Cache(RedisBackend.from_url(URL), namespace="bench")
    acache = AsyncCache.from_url(URL, namespace="bench")
    aplain = AsyncCache(RedisBackend.from_url(URL, asyncio=True), namespace="bench")
    # The facade alone: the same default client the raw baseline uses, no renderkit timeouts.
    same = Cache(RedisBackend(raw), namespace="bench")
    asame = AsyncCache(RedisBackend(araw), namespace="bench")
    tiered = Cache(
        TieredBackend(
            MemoryBackend(), FallbackBackend(RedisBackend.from_url(URL), MemoryBackend())
        ),
        namespace="bench",
    )
    cache.set("k", VALUE, ttl=600)
    tiered.get("k")  # fill L1
    assert raw.get("bench:k") is not None

    memory = MemoryBackend()
    memory.set("k", b"j{}", 600)
    results: list[Result] = []

    sync = measure(
        "Cache.get on Redis (sync)",
        {
            "redis-py GET": lambda: raw.get("bench:k"),
            "redis-py GET + json.loads": lambda: json.loads(raw.get("bench:k")[1:]),
            "Cache.get (Redis+fallback)": lambda: cache.get("k"),
            "Cache.get (RedisBackend)": lambda: plain.get("k"),
            "Cache.get (same client as baseline)": lambda: same.get("k"),
            "Cache.get (tiered, hot key)": lambda: tiered.get("k"),
        },
        baseline="redis-py GET",
        rounds=15,
        number=300,
    )
    sync.check(
        Target(
            "Cache.get <= 1.10x redis-py GET",
            "Cache.get (Redis+fallback)",
            "redis-py GET",
            max_ratio=1.10,
        ),
        sync.ratio("Cache.get (Redis+fallback)", "redis-py GET"),
    )
    sync.check(
        Target(
            "tiered hot key >= 30x faster than a Redis GET",
            "redis-py GET",
            "Cache.get (tiered, hot key)",
            min_ratio=30.0,
        ),
        sync.ratio("redis-py GET", "Cache.get (tiered, hot key)"),
    )
    sync.check(
        Target(
            "Cache facade on the same client <= 1.10x redis-py GET",
            "Cache.get (same client as baseline)",
            "redis-py GET",
            max_ratio=1.10,
        ),
        sync.ratio("Cache.get (same client as baseline)", "redis-py GET"),
    )
    sync.check(
        Target(
            "Cache.get <= 1.10x redis-py GET + json.loads",
            "Cache.get (Redis+fallback)",
            "redis-py GET + json.loads",
            max_ratio=1.10,
        ),
        sync.ratio("Cache.get (Redis+fallback)", "redis-py GET + json.loads"),
    )
    sync.note = NOTE
    results.append(sync)

    async def raw_aget() -> Any:
        return await araw.get("bench:k")

    async def raw_aget_decode() -> Any:
        return json.loads((await araw.get("bench:k"))[1:])

    async def cache_aget() -> Any:
        return await acache.get("k")

    async def plain_aget() -> Any:
        return await aplain.get("k")

    async def same_aget() -> Any:
        return await asame.get("k")

    asy = measure(
        "AsyncCache.get on Redis (asyncio)",
        {
            "redis.asyncio GET": raw_aget,
            "redis.asyncio GET + json.loads": raw_aget_decode,
            "AsyncCache.get (Redis+fallback)": cache_aget,
            "AsyncCache.get (RedisBackend)": plain_aget,
            "AsyncCache.get (same client as baseline)": same_aget,
        },
        baseline="redis.asyncio GET",
        rounds=15,
        number=300,
        loop=loop,
    )
    asy.check(
        Target(
            "AsyncCache.get <= 1.10x redis.asyncio GET",
            "AsyncCache.get (Redis+fallback)",
            "redis.asyncio GET",
            max_ratio=1.10,
        ),
        asy.ratio("AsyncCache.get (Redis+fallback)", "redis.asyncio GET"),
    )
    asy.check(
        Target(
            "AsyncCache facade on the same client <= 1.10x redis.asyncio GET",
            "AsyncCache.get (same client as baseline)",
            "redis.asyncio GET",
            max_ratio=1.10,
        ),
        asy.ratio("AsyncCache.get (same client as baseline)", "redis.asyncio GET"),
    )
    asy.check(
        Target(
            "AsyncCache facade on the same client <= 1.10x GET + json.loads",
            "AsyncCache.get (same client as baseline)",
            "redis.asyncio GET + json.loads",
            max_ratio=1.10,
        ),
        asy.ratio("AsyncCache.get (same client as baseline)", "redis.asyncio GET + json.loads"),
    )
    asy.note = NOTE
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
    for c in (cache, plain, tiered):
        c.close()
    raw.close()
    loop.run_until_complete(acache.close())
    loop.run_until_complete(aplain.close())
    loop.run_until_complete(araw.aclose())
    loop.close()
    return results


if __name__ == "__main__":
    report(run(), "cache")
