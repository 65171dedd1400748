"""Rate limiting on real Redis: one round trip per check, two uvicorn instances, Redis killed."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from renderkit.ratelimit import RateLimiter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _uvicorn_server import free_port, serve


def _prefix() -> str:
    return f"rk-test-{uuid.uuid4().hex[:12]}"


def _commandstats(url: str) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name: int(value["calls"]) for name, value in stats.items()}


@pytest.mark.integration
@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window-counter", "moving-window"])
def test_real_redis_counts_and_one_round_trip(renderkit_redis_url: str, strategy: str) -> None:
    """Exactly the limit passes; each check is one EVALSHA of renderkit's script, no extras."""
    limiter = RateLimiter(
        renderkit_redis_url, default="5/minute", strategy=strategy, key_prefix=_prefix()
    )
    limiter.hit("warm-up")  # loads limits' scripts once
    before = _commandstats(renderkit_redis_url)
    results = [limiter.hit("client") for _ in range(8)]
    after = _commandstats(renderkit_redis_url)
    assert [r.allowed for r in results] == [True] * 5 + [False] * 3
    assert [r.remaining for r in results[:5]] == [4, 3, 2, 1, 0]
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    evalsha = delta.get("cmdstat_evalsha", 0)
    # Other engineers share this Redis (on other dbs), so allow their traffic: at least 8.
    assert evalsha >= 8
    assert limiter.stats()["errors"] == 0
    limiter.close()


@pytest.mark.integration
@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window-counter", "moving-window"])
def test_each_strategy_script_matches_memory_for_a_stack(
    renderkit_redis_url: str, strategy: str
) -> None:
    """Each strategy's own script answers a stacked request as memory does: all or nothing,
    the same remaining counts; a decoding client, and a script unknown to the server (answered
    by EVAL), change nothing."""
    import redis

    from renderkit.ratelimit import Charge

    prefix = _prefix()
    client = redis.Redis.from_url(renderkit_redis_url, decode_responses=True)
    shared = RateLimiter(client, strategy=strategy, key_prefix=prefix)
    memory = RateLimiter("memory://", strategy=strategy)
    stack = [Charge("a|ip:1:3/60", 3, 60, 1, "route"), Charge("b|ip:1:5/3600", 5, 3600, 2, "day")]
    try:
        for step in range(4):
            if step == 2:  # a script the server does not know (failover, SCRIPT FLUSH): EVAL
                shared._sync().sha = "0" * 40
            got, want = shared.acquire(stack), memory.acquire(stack)
            assert [(r.allowed, r.remaining, r.policy) for r in got] == [
                (r.allowed, r.remaining, r.policy) for r in want
            ], step
        assert [r.allowed for r in shared.acquire(stack[:1])] == [True]  # refused: uncharged
    finally:
        client.delete(*client.keys(f"{prefix}:*") or ["-"])
        client.close()


@pytest.mark.integration
async def test_real_redis_async_and_sync_share_counts(renderkit_redis_url: str) -> None:
    """hit() and ahit() use separate clients of the same Redis: one quota."""
    limiter = RateLimiter(renderkit_redis_url, default="3/minute", key_prefix=_prefix())
    assert limiter.hit("k").remaining == 2
    assert (await limiter.ahit("k")).remaining == 1
    assert limiter.hit("k").remaining == 0
    assert not (await limiter.ahit("k")).allowed
    assert limiter.health_check().status == "healthy"
    await limiter.aclose()


_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from renderkit.ratelimit import RateLimiter, RateLimitMiddleware

async def ok(request):
    return PlainTextResponse("ok")

limiter = RateLimiter({url!r}, default="{limit}/minute", strategy="fixed-window",
                      key_prefix={prefix!r}, timeout=0.2, recovery_timeout=0.5)
app = Starlette(routes=[Route("/", ok), Route("/health", ok)])
app.add_middleware(RateLimitMiddleware, limiter=limiter)
"""


async def _burst(urls: list[str], total: int) -> list[int]:
    async with httpx.AsyncClient(timeout=5) as client:

        async def one(i: int) -> int:
            return (await client.get(urls[i % len(urls)] + "/")).status_code

        codes: list[int] = []
        for start in range(0, total, 20):  # bounded concurrency
            codes += await asyncio.gather(*(one(i) for i in range(start, min(total, start + 20))))
        return codes


@pytest.mark.integration
@pytest.mark.e2e
async def test_two_instances_share_one_limit(renderkit_redis_url: str, tmp_path: Path) -> None:
    """Two uvicorn processes on one Redis: of 3x the limit, exactly the limit passes."""
    limit = 30
    source = _APP.format(url=renderkit_redis_url, limit=limit, prefix=_prefix())
    with serve(source, tmp_path, module="rl_a") as a, serve(source, tmp_path, module="rl_b") as b:
        codes = await _burst([a, b], 3 * limit)
    assert codes.count(200) == limit
    assert codes.count(429) == 2 * limit
    assert set(codes) == {200, 429}


def _start_redis(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


@pytest.fixture
def own_redis() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    processes = [_start_redis(port)]
    yield port, processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(5)


@pytest.mark.e2e
async def test_redis_killed_mid_load_no_500s(
    own_redis: tuple[int, list[Any]], tmp_path: Path
) -> None:
    """Kill Redis under load: no 500s, memory keeps limiting; restart: shared counting again."""
    port, processes = own_redis
    url = f"redis://127.0.0.1:{port}/0"
    source = _APP.format(url=url, limit=1000, prefix=_prefix())
    with serve(source, tmp_path, module="rl_fault") as base:
        before = await _burst([base], 60)
        processes[0].kill()
        processes[0].wait(5)
        during = await _burst([base], 200)
        processes.append(_start_redis(port))
        await asyncio.sleep(0.7)  # past recovery_timeout: the next check probes Redis
        after = await _burst([base], 40)
        import redis

        client = redis.Redis(port=port)
        try:
            keys = client.keys("*")
        finally:
            client.close()
    assert set(before) == {200}
    assert set(during) == {200}  # never a 500, never a hang
    assert set(after) == {200}
    assert keys, "after the restart the app counts in Redis again"


async def test_hung_redis_costs_the_timeout_then_nothing() -> None:
    """A server that accepts but never answers costs about one timeout, then the breaker."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(50)
        port = listener.getsockname()[1]
        limiter = RateLimiter(
            f"redis://127.0.0.1:{port}/0", default="2/minute", timeout=0.05,
            failure_threshold=1, recovery_timeout=60,
        )  # fmt: skip
        results = [await limiter.ahit("k") for _ in range(50)]
    assert all(r.fallback for r in results)
    assert [r.allowed for r in results[:3]] == [True, True, False]
    stats = limiter.stats()
    assert (stats["errors"], stats["circuit"]) == (1, "open")  # one timeout paid, then none


@pytest.mark.e2e
async def test_stopped_redis_is_bounded_then_recovers(own_redis: tuple[int, list[Any]]) -> None:
    """SIGSTOP the Redis: checks answer from memory after about one timeout, health says
    degraded; SIGCONT: the background probe brings shared counting back."""
    import os
    import signal

    port, processes = own_redis
    limiter = RateLimiter(
        f"redis://127.0.0.1:{port}/0", default="1000/minute", timeout=0.05,
        failure_threshold=2, recovery_timeout=0.3, key_prefix=_prefix(),
    )  # fmt: skip
    assert not (await limiter.ahit("k")).fallback
    os.kill(processes[0].pid, signal.SIGSTOP)
    try:
        during = [await limiter.ahit("k") for _ in range(30)]
        assert limiter.health_check().status == "degraded"
        # two timeouts paid, then the breaker answers: not 30 of them
        assert limiter.stats()["errors"] == 2
    finally:
        os.kill(processes[0].pid, signal.SIGCONT)
    assert all(r.allowed for r in during) and during[-1].fallback
    for _ in range(50):
        await asyncio.sleep(0.1)
        if not (await limiter.ahit("k")).fallback:
            break
    assert limiter.health_check().status == "healthy"
    await limiter.aclose()
