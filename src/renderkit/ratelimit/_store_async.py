# twins: source
# twins: rename _acluster=_cluster _aeval=_eval _aload=_load
"""Shared counts: Redis through renderkit's one Lua script, or any ``limits`` storage.

Each store answers ``acquire(charges)`` with ``(allowed, tallies)`` (see
:mod:`renderkit.ratelimit._counting`): all of a request's limits are charged, or none.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from renderkit._redis import is_cluster
from renderkit.ratelimit._counting import SCRIPTS, Charge, Strategy, Tally, lua_command, lua_reply
from renderkit.ratelimit._deadline import Deadlines, answered  # twins: async-only

__all__ = ["AsyncLimitsCounts", "AsyncRedisCounts", "cluster_key"]

SHAS = {name: hashlib.sha1(text.encode()).hexdigest() for name, text in SCRIPTS.items()}
"""Each strategy's script by its SHA1, the name Redis knows it by."""
WARMUP = 1.0
"""Seconds the first call on a client may take: connecting, reading a cluster's topology and
loading the script. A cold start on a busy host is no slow answer, and timing it out sent a
new worker's first burst to the memory fallback (miscounted: 8 to 15 of a 10-request limit
passed in the cluster failover test)."""


def cluster_key(key: str) -> str:
    """``key`` under a hash tag naming its identity, so one request's limits share a slot.

    A charge key is ``<scope>|<identity>:<amount>/<window>`` (or ``<key>:<amount>/<window>``
    from :meth:`RateLimiter.hit`); the tag is the identity (the whole key without the quota
    suffix when there is no ``|``). Any fixed function of the key keeps every counter in
    one place; this one puts the limits a request charges for one client in one slot.
    """
    base = key[: key.rfind(":")] if ":" in key else key
    identity = base.partition("|")[2] or base
    return f"{{{identity}}}{key}"


def _groups(charges: Sequence[Charge]) -> list[list[int]]:
    """Indices of ``charges`` per hash tag, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, charge in enumerate(charges):
        groups.setdefault(cluster_key(charge.key).partition("}")[0], []).append(i)
    return list(groups.values())


class AsyncRedisCounts:
    """Counts in Redis: one ``EVALSHA`` of renderkit's script per request, whatever its limits.

    ``client`` is a redis-py client; ``prefix`` namespaces the keys; ``timeout`` bounds the
    server's answer (see :func:`renderkit.ratelimit._deadline.answered` for asyncio).
    """

    def __init__(self, client: Any, strategy: Strategy, *, prefix: str, timeout: float) -> None:
        from redis.exceptions import NoScriptError

        self.client = client
        self.strategy: Strategy = strategy
        self.sha, self.script = SHAS[strategy], SCRIPTS[strategy]
        self.prefix = prefix + ":"
        self.timeout = timeout
        self._noscript = NoScriptError
        self._deadlines = Deadlines(timeout)  # twins: async-only
        self._loaded = False
        self.cluster = is_cluster(client)
        # ``acquire(charges)``: charge all of them or none, in one round trip (on a cluster,
        # one per identity). Chosen once here, not tested again on every request.
        self.acquire = self._acluster if self.cluster else self._aeval

    async def _acluster(self, charges: Sequence[Charge]) -> tuple[bool, list[Tally]]:
        """On a cluster: one round trip per identity (one for most requests).

        Limits keyed by different identities (an IP and a user) live in different slots and
        are charged one identity after the other: a request the second refuses was already
        counted by the first; the identities after a refusal are only read.
        """
        tagged = [c._replace(key=cluster_key(c.key)) for c in charges]
        groups = _groups(charges)
        if len(groups) == 1:
            return await self._aeval(tagged)
        allowed, tallies = True, [(0, 0, 0)] * len(charges)
        for group in groups:
            part = [tagged[i] for i in group]
            if allowed:
                allowed, got = await self._aeval(part)
            else:
                got = (await self._aeval([c._replace(cost=0) for c in part]))[1]
            for i, tally in zip(group, got, strict=True):
                tallies[i] = tally
        return allowed, tallies

    async def _aload(self) -> None:
        """Before the first call: connect and load the script (on a cluster, on every primary),
        on asyncio within :data:`WARMUP` rather than ``timeout``; every later call is one
        ``EVALSHA``."""
        load = self.client.script_load
        await answered(load(self.script), WARMUP)  # twins: sync: load(self.script)
        self._loaded = True

    async def _aeval(self, charges: Sequence[Charge]) -> tuple[bool, list[Tally]]:
        if not self._loaded:
            await self._aload()
        command = lua_command(self.sha, charges, self.prefix)
        try:
            pending = self.client.execute_command(*command)
            reply = await self._deadlines.run(pending)  # twins: sync: reply = pending
        except self._noscript:
            # First use on this server (or after SCRIPT FLUSH / a failover): EVAL loads it.
            command[:2] = ["EVAL", self.script]
            pending = self.client.execute_command(*command)
            reply = await self._deadlines.run(pending)  # twins: sync: reply = pending
        return lua_reply(reply)

    async def peek(self, charges: Sequence[Charge]) -> tuple[bool, list[Tally]]:
        """The counts :meth:`acquire` would see, charging nothing (cost-0 charges)."""
        free = [Charge(c.key, c.amount, c.window, 0, c.name) for c in charges]
        return False, (await self.acquire(free))[1]

    async def clear(self, key: str) -> None:
        """Forget one counter."""
        await self.client.delete(self.prefix + (cluster_key(key) if self.cluster else key))

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
