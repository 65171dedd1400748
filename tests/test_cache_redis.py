"""renderkit.cache on real Redis: the shared server, and an own redis-server killed mid-load."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from renderkit.cache import AsyncCache, Cache, FallbackBackend, RedisBackend

pytestmark = pytest.mark.integration


def _db_url(url: str, db: int = 9) -> str:
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{db}"


@pytest.fixture
def namespace() -> str:
    return f"rk-test-{uuid.uuid4().hex[:8]}"


def test_real_redis_roundtrip(renderkit_redis_url: str, namespace: str) -> None:
    """Cache.from_url on real Redis stores, compresses, expires and clears its namespace."""
    cache = Cache.from_url(_db_url(renderkit_redis_url), namespace=namespace)
    try:
        cache.set("small", {"a": 1}, ttl=30)
        cache.set("big", "y" * 10_000, ttl=30)
        assert cache.get("small") == {"a": 1}
        assert cache.get("big") == "y" * 10_000
        assert cache.get_or_set("computed", lambda: [1, 2], ttl=30) == [1, 2]
        client = cache.backend.primary.client  # type: ignore[attr-defined]
        assert client.get(f"{namespace}:big")[:1] == b"J"
        assert 0 < client.pttl(f"{namespace}:small") <= 30_000
        assert cache.health_check().status == "healthy"
        assert cache.clear() == 3
        assert client.keys(f"{namespace}:*") == []
    finally:
        cache.close()


async def test_real_redis_async(renderkit_redis_url: str, namespace: str) -> None:
    """AsyncCache.from_url on real Redis: single-flight under 100 tasks, health with latency."""
    cache = AsyncCache.from_url(_db_url(renderkit_redis_url), namespace=namespace)
    calls = []

    async def factory() -> int:
        calls.append(1)
        await asyncio.sleep(0.05)
        return 5

    try:
        out = await asyncio.gather(*(cache.get_or_set("k", factory, lock=True) for _ in range(100)))
        assert out == [5] * 100
        assert len(calls) == 1
        health = await cache.health_check()
        assert health.status == "healthy"
        assert health.latency_ms is not None
    finally:
        await cache.clear()
        await cache.close()


# -- own redis-server, killed and restarted --------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def own_redis() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    procs = [_start_redis(port)]
    yield port, procs
    for proc in procs:
        _stop(proc)


@pytest.mark.e2e
def test_redis_killed_under_load_sync(own_redis: tuple[int, list[Any]]) -> None:
    """200 concurrent ops while Redis dies: no exception, memory answers, degraded, recovers."""
    port, procs = own_redis
    probe = 0.5
    backend = FallbackBackend(
        RedisBackend.from_url(f"redis://127.0.0.1:{port}/0"), _memory(), probe_interval=probe
    )
    cache = Cache(backend, namespace="load")
    for i in range(20):
        cache.set(f"k{i}", i)
    errors: list[BaseException] = []
    wrong: list[Any] = []
    stop = threading.Event()

    def worker(n: int) -> None:
        for j in range(10_000):
            if stop.is_set():
                return
            try:
                key = f"k{(n + j) % 20}"
                value = cache.get(key)
                if value is not None and value != (n + j) % 20:
                    wrong.append(value)
                if j % 5 == 0:
                    cache.set(key, (n + j) % 20)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(200)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    _stop(procs[0])
    time.sleep(0.6)
    assert cache.health_check().status == "degraded"
    assert cache.stats()["fallback_active"] is True
    assert cache.get("k3") == 3  # served from memory
    procs.append(_start_redis(port))
    deadline = time.monotonic() + 5  # bounds the wait only; recovery is asserted below
    while backend.fallback_active and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(10)
    assert errors == []
    assert wrong == []
    assert not backend.fallback_active  # the background probe found Redis again
    assert cache.health_check().status == "healthy"
    assert backend.stats()["fallback_served"] > 0
    cache.close()


@pytest.mark.e2e
async def test_redis_killed_under_load_async(own_redis: tuple[int, list[Any]]) -> None:
    """The asyncio twin survives the same outage with 200 concurrent tasks."""
    port, procs = own_redis
    probe = 0.5
    backend = FallbackBackend(
        RedisBackend.from_url(f"redis://127.0.0.1:{port}/0", asyncio=True),
        _memory(),
        probe_interval=probe,
    )
    cache = AsyncCache(backend)
    await cache.set("k", "v")
    stop = asyncio.Event()

    async def worker(n: int) -> int:
        done = 0
        for _ in range(100_000):
            if stop.is_set():
                return done
            # Redis restarts empty (no persistence): None is right then, anything else is not.
            assert await cache.get("k") in ("v", None)
            await cache.set(f"w{n % 20}", n)
            done += 1
            await asyncio.sleep(0)
        return done

    tasks = [asyncio.create_task(worker(n)) for n in range(200)]
    await asyncio.sleep(0.3)
    _stop(procs[0])
    await asyncio.sleep(0.6)
    assert (await cache.health_check()).status == "degraded"
    assert await cache.get("k") == "v"  # served from memory
    procs.append(_start_redis(port))
    deadline = time.monotonic() + 5  # bounds the wait only; recovery is asserted below
    while backend.fallback_active and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert not backend.fallback_active  # the background probe found Redis again
    assert (await cache.health_check()).status == "healthy"
    await cache.close()


def _memory() -> Any:
    from renderkit.cache import MemoryBackend

    return MemoryBackend()


@pytest.mark.e2e
@pytest.mark.parametrize("side", ["sync", "async"])
def test_frozen_redis_recovers_in_the_background_without_traffic(
    side: str, own_redis: tuple[int, list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """SIGSTOP: calls fail over to memory after one socket timeout, one WARNING. SIGCONT with
    no request at all: the background probe finds Redis again, one INFO, health healthy."""
    import logging
    import os
    import signal

    from renderkit.cache import MemoryBackend

    port, procs = own_redis
    url = f"redis://127.0.0.1:{port}/0"
    backend = FallbackBackend(
        RedisBackend.from_url(url, asyncio=side == "async", socket_timeout=0.2),
        MemoryBackend(),
        probe_interval=0.2,
        failure_threshold=1,
    )

    async def scenario(cache: Any) -> None:
        async def call(name: str, *args: Any) -> Any:
            result = getattr(cache, name)(*args)
            return await result if side == "async" else result

        await call("set", "k", "v")
        os.kill(procs[0].pid, signal.SIGSTOP)
        try:
            assert await call("get", "k") == "v"  # one socket timeout, then memory
            assert backend.fallback_active
            assert await call("get", "k") == "v"  # fails fast now
        finally:
            os.kill(procs[0].pid, signal.SIGCONT)
        for _ in range(200):  # no traffic: only the background probe can notice
            if not backend.fallback_active:
                break
            await asyncio.sleep(0.025)
        assert not backend.fallback_active
        assert (await call("health_check")).status == "healthy"
        await call("close")

    with caplog.at_level(logging.INFO, logger="renderkit.cache"):
        asyncio.run(scenario(AsyncCache(backend) if side == "async" else Cache(backend)))
    levels = [r.levelname for r in caplog.records if r.name == "renderkit.cache"]
    assert levels == ["WARNING", "INFO"], [r.getMessage() for r in caplog.records]
    assert backend.stats()["outages"] == 1
