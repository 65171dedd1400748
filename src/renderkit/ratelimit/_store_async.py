# twins: source
"""Shared counts: Redis through renderkit's one Lua script, or any ``limits`` storage.

Each store answers ``acquire(charges)`` with ``(allowed, tallies)`` (see
:mod:`renderkit.ratelimit._counting`): all of a request's limits are charged, or none.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from renderkit.ratelimit._counting import LUA, Charge, Strategy, Tally, lua_args, lua_reply
from renderkit.ratelimit._deadline import Deadlines  # twins: async-only

__all__ = ["AsyncLimitsCounts", "AsyncRedisCounts"]

SHA = hashlib.sha1(LUA.encode()).hexdigest()  # Redis names scripts by SHA1


class AsyncRedisCounts:
    """Counts in Redis: one ``EVALSHA`` of renderkit's script per request, whatever its limits.

    ``client`` is a redis-py client; ``prefix`` namespaces the keys; ``timeout`` bounds the
    server's answer (see :func:`renderkit.ratelimit._deadline.answered` for asyncio).
    """

    def __init__(self, client: Any, strategy: Strategy, *, prefix: str, timeout: float) -> None:
        from redis.exceptions import NoScriptError

        self.client = client
        self.strategy: Strategy = strategy
        self.prefix = prefix + ":"
        self.timeout = timeout
        self._noscript = NoScriptError
        self._deadlines = Deadlines(timeout)  # twins: async-only

    async def acquire(self, charges: Sequence[Charge]) -> tuple[bool, list[Tally]]:
        """Charge all of ``charges`` or none, in one round trip."""
        args = lua_args(self.strategy, charges, self.prefix)
        try:
            reply = await self._ask("EVALSHA", SHA, len(charges), *args)
        except self._noscript:
            # First use on this server (or after SCRIPT FLUSH / a failover): EVAL loads it.
            reply = await self._ask("EVAL", LUA, len(charges), *args)
        return lua_reply(reply)

    async def _ask(self, *command: Any) -> Any:
        pending = self.client.execute_command(*command)
        return await self._deadlines.run(pending)  # twins: sync: return pending

    async def peek(self, charges: Sequence[Charge]) -> tuple[bool, list[Tally]]:
        """The counts :meth:`acquire` would see, charging nothing (cost-0 charges)."""
        free = [Charge(c.key, c.amount, c.window, 0, c.name) for c in charges]
        return False, (await self.acquire(free))[1]

    async def clear(self, key: str) -> None:
        """Forget one counter."""
        await self.client.delete(self.prefix + key)

    async def ping(self) -> None:
        """Raise unless the server answers (the background probe while degraded)."""
        await self.client.ping()


class AsyncLimitsCounts:
    """Counts in any other ``limits`` storage through ``limits``' own strategies.

    Not atomic across processes (``limits`` has no multi-limit primitive): every limit is
    tested first and only then all are hit, so a refused request is charged to none.
    """

    def __init__(self, limiter: Any, strategy: Strategy) -> None:
        self.limiter = limiter
        self.strategy: Strategy = strategy
        self._items: dict[tuple[int, int], Any] = {}

    def _item(self, charge: Charge) -> Any:
        item = self._items.get((charge.amount, charge.window))
        if item is None:
            from limits import RateLimitItemPerSecond

            item = RateLimitItemPerSecond(charge.amount, charge.window)
            self._items[(charge.amount, charge.window)] = item
        return item

    async def acquire(self, charges: Sequence[Charge]) -> tuple[bool, list[Tally]]:
        """Test every limit, then hit every one if all have room."""
        items = [self._item(c) for c in charges]
        allowed = True
        for item, charge in zip(items, charges, strict=True):
            if not await self.limiter.test(item, charge.key, cost=charge.cost):
                allowed = False
                break
        if allowed:
            for item, charge in zip(items, charges, strict=True):
                allowed = await self.limiter.hit(item, charge.key, cost=charge.cost) and allowed
        return allowed, [await self._tally(i, c) for i, c in zip(items, charges, strict=True)]

    async def peek(self, charges: Sequence[Charge]) -> tuple[bool, list[Tally]]:
        """The counts, charging nothing."""
        items = [self._item(c) for c in charges]
        return False, [await self._tally(i, c) for i, c in zip(items, charges, strict=True)]

    async def _tally(self, item: Any, charge: Charge) -> Tally:
        stats = await self.limiter.get_window_stats(item, charge.key)
        left = max(0.0, stats.reset_time - time.time())
        elapsed = max(0, int((charge.window - left) * 1000))
        return (charge.amount - stats.remaining, 0, elapsed)

    async def clear(self, key: str) -> None:
        """Forget one counter (every limit stored under ``key``)."""
        for item in list(self._items.values()):
            await self.limiter.clear(item, key)

    async def ping(self) -> None:
        """Raise unless the storage answers."""
        if not await self.limiter.storage.check():
            raise ConnectionError("the limits storage's check() failed")
