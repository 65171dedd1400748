"""Redis backend: one sync or asyncio redis-py client, short timeouts, no hidden retries."""

from __future__ import annotations

import asyncio as _asyncio
import inspect
from typing import Any

from renderkit._optional import require
from renderkit._redis import (
    PerLoop,
    aclose_client,
    close_client,
    is_cluster,
    redis_client,
    require_bytes,
)
from renderkit.cache._redis_async import AsyncRedisMethods
from renderkit.cache._redis_sync import RedisMethods

__all__ = ["RedisBackend"]


def _client_of(entry: tuple[Any, Any]) -> Any:
    return entry[0]


class RedisBackend(RedisMethods, AsyncRedisMethods):
    """Store bytes in Redis under an optional key ``prefix``.

    ``client`` is a ``redis.Redis`` (for :class:`~renderkit.cache.Cache`) or a
    ``redis.asyncio.Redis`` (for :class:`~renderkit.cache.AsyncCache`); build one with
    :meth:`from_url` to get renderkit's short timeouts. The client must return bytes
    (``decode_responses=False``, redis-py's default).

    ``max_concurrency`` (asyncio only) lets at most that many commands of this backend run
    at once; the others wait up to ``pool_timeout`` seconds for a slot and then fail with a
    ``redis.exceptions.ConnectionError`` naming both settings. :meth:`from_url` sets it to
    ``max_connections`` so a burst queues briefly instead of failing (see :meth:`from_url`).
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "",
        name: str = "redis",
        max_concurrency: int | None = None,
        pool_timeout: float = 1.0,
    ) -> None:
        require_bytes(client, "RedisBackend", "cached values are bytes")
        self.client = client
        self.prefix = prefix
        self.name = name
        self.cluster = is_cluster(client)  # a RedisCluster clears node by node
        self.is_async = inspect.iscoroutinefunction(getattr(client, "execute_command", None))
        exceptions = require("redis.exceptions", extra="redis", feature="RedisBackend")
        # What counts as "Redis is failing" for a FallbackBackend; anything else (a key that
        # cannot be encoded, a programming error) is this call's problem, not an outage.
        self.errors: tuple[type[BaseException], ...] = (exceptions.RedisError, OSError)
        self._release: Any = None
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"RedisBackend(max_concurrency={max_concurrency}): must be >= 1")
        if not pool_timeout > 0:
            raise ValueError(f"RedisBackend(pool_timeout={pool_timeout}): must be > 0 seconds")
        self.max_concurrency = max_concurrency
        self.pool_timeout = pool_timeout
        self._gate: _asyncio.Semaphore | None = None
        if max_concurrency is not None and self.is_async:
            self._gate = _asyncio.Semaphore(max_concurrency)
        self._pool_waits = 0
        self._pool_timeouts = 0
        # Set by from_url(asyncio=True): a client (and gate) per event loop, see _bound().
        self._loops: PerLoop[tuple[Any, _asyncio.Semaphore | None]] | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        asyncio: bool = False,
        prefix: str = "",
        socket_timeout: float = 0.25,
        socket_connect_timeout: float = 0.25,
        max_connections: int = 50,
        pool_timeout: float = 1.0,
        **client_kwargs: Any,
    ) -> RedisBackend:
        """Connect lazily to ``url`` with short socket timeouts and one reconnect, no retries.

        ``url`` is any URL of :data:`renderkit._redis.SCHEMES`: ``redis://``, ``rediss://``,
        ``unix://``, ``valkey(s)://``, ``redis+cluster://h1:p1,h2:p2`` (a Redis Cluster) or
        ``redis+sentinel://h1:p1,h2:p2/service`` (the primary Sentinel names, followed across
        a failover). A ``RedisCluster`` client can also be passed to the constructor.

        A hung Redis costs ``socket_timeout`` once; the circuit breaker of a
        :class:`~renderkit.cache.FallbackBackend` then stops paying it on every call.

        At most ``max_connections`` connections are opened. A caller beyond that waits up to
        ``pool_timeout`` seconds for a free one instead of failing at once (failing would
        count as a Redis outage and switch a ``FallbackBackend`` to memory during a mere
        burst). Sync clients get redis-py's ``BlockingConnectionPool``. Asyncio clients get a
        plain ``ConnectionPool`` plus this backend's own semaphore (``max_concurrency``):
        redis.asyncio's ``BlockingConnectionPool`` takes an ``asyncio.Condition`` and arms a
        timeout on every command, which costs about 20% of a loopback GET even when a
        connection is free; the semaphore costs nothing until the pool is actually full.

        An asyncio backend keeps one client (and semaphore) per event loop, ``client`` being
        the first: a connection cannot move between loops, and the client of a loop closes
        while that loop shuts down (Starlette's ``TestClient`` without ``with`` runs each
        request in a new loop).
        """
        pool_options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "max_connections": max_connections,
            **client_kwargs,
        }
        if asyncio:

            def build() -> Any:
                return redis_client(
                    url, asyncio=True, extra="redis", feature="RedisBackend", blocking_pool=False,
                    **pool_options,
                )  # fmt: skip

            backend = cls(
                build(), prefix=prefix, max_concurrency=max_connections, pool_timeout=pool_timeout
            )
            backend._follow_loops(build)
            return backend
        client = redis_client(
            url, asyncio=False, extra="redis", feature="RedisBackend", pool_timeout=pool_timeout,
            **pool_options,
        )  # fmt: skip
        return cls(client, prefix=prefix, pool_timeout=pool_timeout)

    def _follow_loops(self, build: Any) -> None:
        """Use a client of our own per event loop (the first one is ``self.client``).

        A redis.asyncio connection belongs to the loop that opened it; reused from another
        loop it fails ("attached to a different loop", "Event loop is closed"), which a
        FallbackBackend would take for an outage. Clients of closed loops are closed.
        """

        def make() -> tuple[Any, _asyncio.Semaphore | None]:
            limit = self.max_concurrency
            gate = _asyncio.Semaphore(limit) if limit is not None and self._gate else None
            return build(), gate

        self._loops = PerLoop(make, client=_client_of, first=(self.client, self._gate))

    def _bound(self) -> tuple[Any, _asyncio.Semaphore | None]:
        loops = self._loops
        if loops is None:
            return self.client, self._gate
        return loops.get()

    def wrong_kind(self, wanted: str) -> TypeError:
        have = "an asyncio" if self.is_async else "a synchronous"
        return TypeError(
            f"RedisBackend was given {have} redis client but is used from {wanted}; "
            "use Cache with redis.Redis and AsyncCache with redis.asyncio.Redis "
            "(RedisBackend.from_url(url, asyncio=True) builds the asyncio one)"
        )

    # -- where each command gets its client (see _redis_async.py) -------------------------
    def _slot(self) -> tuple[Any, _asyncio.Semaphore | None]:
        """The sync client, and no gate: redis-py's blocking pool bounds connections."""
        if self.is_async:
            raise self.wrong_kind("synchronous code (Cache)")
        return self.client, None

    async def _aslot(self) -> tuple[Any, _asyncio.Semaphore | None]:
        """This loop's client and a slot of its gate; the caller releases the gate."""
        if not self.is_async:
            raise self.wrong_kind("asyncio code (AsyncCache)")
        client, gate = self._bound()
        if gate is not None:
            if gate.locked():
                await self._wait_for_slot(gate)
            else:
                await gate.acquire()  # a free slot: returns without suspending
        return client, gate

    async def _wait_for_slot(self, gate: _asyncio.Semaphore) -> None:
        """Slow path: every slot is taken, wait up to ``pool_timeout`` for one."""
        self._pool_waits += 1
        try:
            async with _asyncio.timeout(self.pool_timeout):
                await gate.acquire()
        except TimeoutError:
            self._pool_timeouts += 1
            exceptions = require("redis.exceptions", extra="redis", feature="RedisBackend")
            raise exceptions.ConnectionError(
                f"RedisBackend: all {self.max_concurrency} connections stayed busy for "
                f"{self.pool_timeout}s; raise max_connections (or pool_timeout) in "
                "RedisBackend.from_url, or lower the concurrency of cache calls"
            ) from None

    def close(self) -> None:
        if not self.is_async:
            close_client(self.client)

    async def aclose(self) -> None:
        if self._loops is not None:
            await self._loops.aclose()  # other loops' clients close with their loop
        elif self.is_async:
            await aclose_client(self.client)
        else:
            self.close()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "backend": self.name,
            "prefix": self.prefix,
            "asyncio": self.is_async,
        }
        if self._gate is not None:
            stats["max_concurrency"] = self.max_concurrency
            stats["pool_waits"] = self._pool_waits
            stats["pool_timeouts"] = self._pool_timeouts
        return stats
