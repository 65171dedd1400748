"""Cost of a cache read on a Redis Cluster against a raw ``RedisCluster.get`` of the same key.

A 3-primary, 3-replica cluster is started on free ports (``tests/_redis_topology.py``; or
``RENDERKIT_BENCH_REDIS_CLUSTER_URL=redis+cluster://h1:p1,h2:p2`` to use one you run). One key,
a small JSON object stored once by ``Cache.set``, is read interleaved in one run by:

- ``RedisCluster.get``: redis-py's default ``redis.cluster.RedisCluster`` (the baseline the
  issue names), returning the stored bytes;
- ``RedisCluster.get, renderkit's client``: the raw GET on the client ``Cache.from_url`` builds
  (short socket timeouts, one reconnect): what the client settings cost;
- ``Cache.get (from_url)``: what a user gets from ``Cache.from_url("redis+cluster://...")``: the
  memory fallback's breaker, the GET, the decode, counters;
- the asyncio twins on ``redis.asyncio.cluster.RedisCluster`` and ``AsyncCache``.

Targets (issue 17): ``Cache.get`` and ``AsyncCache.get`` at most 1.10x the raw
``RedisCluster.get`` of their kind. Run: ``cd benchmarks && python bench_cache_cluster.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _harness import Result, Target, measure, report

from renderkit.cache import AsyncCache, Cache

KEY_NAME = "k"


@contextlib.contextmanager
def _cluster_url() -> Iterator[str]:
    given = os.environ.get("RENDERKIT_BENCH_REDIS_CLUSTER_URL")
    if given:
        yield given
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from _redis_topology import redis_cluster

    with tempfile.TemporaryDirectory() as directory, redis_cluster(Path(directory)) as cluster:
        yield cluster.url


def _nodes(url: str, module: Any) -> list[Any]:
    hosts = url.partition("://")[2].split(",")
    return [module.ClusterNode(h.rpartition(":")[0], int(h.rpartition(":")[2])) for h in hosts]


def _target(result: Result, a: str, b: str, bound: float) -> None:
    text = f"{a} <= {bound}x {b}"
    result.check(Target(text, a, b, max_ratio=bound), result.ratio(a, b))


def run() -> list[Result]:
    import redis.asyncio.cluster as acluster
    import redis.cluster as scluster

    with _cluster_url() as url:
        loop = asyncio.new_event_loop()
        cache = Cache.from_url(url, namespace="bench")
        cache.set(KEY_NAME, {"user": 42, "name": "Ada", "roles": ["admin", "dev"]}, ttl=3600)
        key = "bench:" + KEY_NAME  # namespace "bench", RedisBackend prefix ""
        raw = scluster.RedisCluster(startup_nodes=_nodes(url, scluster))
        assert raw.get(key) is not None, f"the benchmark key {key!r} is not where it should be"
        mine = cache.backend.primary.client  # type: ignore[attr-defined]
        sync = measure(
            "Cache.get on a Redis Cluster (sync)",
            {
                "RedisCluster.get": lambda: raw.get(key),
                "RedisCluster.get, renderkit's client": lambda: mine.get(key),
                "Cache.get (from_url)": lambda: cache.get(KEY_NAME),
            },
            baseline="RedisCluster.get",
            rounds=101,
            number=50,
        )
        _target(sync, "Cache.get (from_url)", "RedisCluster.get", 1.10)

        araw = acluster.RedisCluster(startup_nodes=_nodes(url, acluster))
        acache = AsyncCache.from_url(url, namespace="bench")

        async def raw_get() -> Any:
            return await araw.get(key)

        async def cache_get() -> Any:
            return await acache.get(KEY_NAME)

        assert loop.run_until_complete(cache_get()) is not None
        asy = measure(
            "AsyncCache.get on a Redis Cluster (asyncio)",
            {"redis.asyncio RedisCluster.get": raw_get, "AsyncCache.get (from_url)": cache_get},
            baseline="redis.asyncio RedisCluster.get",
            rounds=101,
            number=50,
            loop=loop,
        )
        _target(asy, "AsyncCache.get (from_url)", "redis.asyncio RedisCluster.get", 1.10)
        loop.run_until_complete(araw.aclose())
        loop.run_until_complete(acache.close())
        loop.close()
        raw.close()
        cache.close()
    return [sync, asy]


if __name__ == "__main__":
    print(report(run(), "bench_cache_cluster"))
