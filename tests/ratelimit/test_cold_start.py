"""A new worker's first calls: connecting and loading the script are no slow answer.

The first call on a client connects (on a cluster, reads the topology) and needs the script
loaded. On a busy host that took longer than the 100 ms answer timeout, so a fresh worker's
first burst went to the memory fallback and was miscounted. The script is now loaded before
the first call, within a connect budget (``WARMUP``), and every check after it is one
``EVALSHA``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

fakeredis = pytest.importorskip("fakeredis")
pytest.importorskip("lupa")

from renderkit.ratelimit import RateLimiter  # noqa: E402
from renderkit.ratelimit._store_async import WARMUP  # noqa: E402


class ColdClient(fakeredis.aioredis.FakeRedis):  # type: ignore[misc,name-defined]
    """A client whose first command waits ``delay`` seconds (a connection being set up)."""

    def __init__(self, delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay
        self.commands: list[str] = []

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if not self.commands:
            await asyncio.sleep(self.delay)
        self.commands.append(str(args[0]).upper())
        return await super().execute_command(*args, **options)


async def test_a_slow_first_call_is_counted_in_redis_not_in_memory() -> None:
    client = ColdClient(0.3, server=fakeredis.FakeServer())
    limiter = RateLimiter(client, default="3/minute", timeout=0.1)
    first = await limiter.ahit("cold")
    assert first.allowed and not first.fallback  # 0.3 s > timeout, < WARMUP: not an outage
    assert [(await limiter.ahit("cold")).allowed for _ in range(3)] == [True, True, False]
    assert limiter.stats()["fallback"] == 0
    # The script went up once, before the first check; every check is one EVALSHA.
    assert client.commands[0] == "SCRIPT LOAD"
    assert client.commands[1:] == ["EVALSHA"] * 4


async def test_a_first_call_past_the_warmup_budget_still_falls_back() -> None:
    client = ColdClient(WARMUP + 0.5, server=fakeredis.FakeServer())
    limiter = RateLimiter(client, default="3/minute", timeout=0.1)
    result = await limiter.ahit("hung")
    assert result.allowed and result.fallback  # a Redis that does not answer is an outage
