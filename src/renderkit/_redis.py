"""The retry policy of every redis-py client renderkit builds (cache, sessions, rate limits).

Retry once, at once, on a broken connection; never on a timeout. After a Redis restart each
pooled socket is dead exactly once and a fresh connection succeeds, so one reconnect keeps a
restart from tripping the fallback. A hung Redis (a timeout) is not retried: it costs one
``socket_timeout`` and the caller's circuit breaker takes over from there.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from renderkit._optional import require
from renderkit.platform import TRUE_WORDS

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "EVICTION_POLICY",
    "EVICTION_REASON",
    "SCHEMES",
    "PerLoop",
    "aclose_client",
    "close_client",
    "close_sockets_now",
    "is_cluster",
    "reconnect_once",
    "redis_client",
    "require_bytes",
    "topology",
]

T = TypeVar("T")

EVICTION_POLICY = "noeviction"
"""The Redis ``maxmemory-policy`` renderkit advises (doctor, blueprint, docs say the same)."""
EVICTION_REASON = (
    "a full Redis under noeviction refuses new writes (renderkit logs it once, reports degraded "
    "and falls back to memory) but drops nothing it holds, while volatile-lru and allkeys-lru "
    "make room by evicting sessions (users logged out) and rate-limit windows (budgets reset), "
    "since every key renderkit writes carries an expiry; cache entries leave on their own TTL, "
    "so size the plan for them or give a large cache its own Key Value with allkeys-lru"
)
"""Why :data:`EVICTION_POLICY`, in one sentence a user can act on."""


def reconnect_once(*, asyncio: bool, extra: str, feature: str) -> Any:
    """Return a ``redis.retry.Retry`` (or its asyncio twin) that reconnects once."""
    module = "redis.asyncio.retry" if asyncio else "redis.retry"
    retry = require(module, extra=extra, feature=feature)
    backoff = require("redis.backoff", extra=extra, feature=feature)
    exceptions = require("redis.exceptions", extra=extra, feature=feature)
    return retry.Retry(backoff.NoBackoff(), 1, (exceptions.ConnectionError,))


# -- asyncio clients per event loop -------------------------------------------------------
# A redis.asyncio connection belongs to the event loop that opened it. Apps and their test
# suites run several loops over one process (Starlette's TestClient without ``with`` runs
# each request in a fresh loop), so every asyncio client renderkit builds from a URL lives
# in a PerLoop: one client per running loop, closed on that loop while it shuts down, and
# closed at once (sockets only) if its loop was closed without shutting down.


async def _close_at_loop_end(client: Any) -> AsyncIterator[None]:
    """Suspended for the loop's lifetime; the loop closes it in ``shutdown_asyncgens()``.

    ``asyncio.run``, ``asyncio.Runner``, anyio (so Starlette's TestClient and its portals),
    uvicorn and pytest-asyncio all call ``loop.shutdown_asyncgens()`` before ``loop.close()``,
    while the loop still runs: the client then closes like any other, on its own loop.
    """
    try:
        yield
    finally:
        try:
            await aclose_client(client)
        except Exception:  # a broken connection must not disturb the loop's shutdown
            pass


def _start(gen: AsyncGenerator[None, None]) -> None:
    """Run ``gen`` to its first ``yield`` now: the running loop starts tracking it."""
    step: Any = gen.__anext__()
    try:
        step.send(None)
    except StopIteration:
        return
    raise AssertionError("_close_at_loop_end awaited before its first yield")  # pragma: no cover


def close_sockets_now(client: Any) -> None:
    """Close the sockets of ``client``'s connections without an event loop.

    For a client whose loop is closed: nothing can run on that loop any more, so neither
    redis-py's ``disconnect()`` nor the transport's ``close()`` can finish (both raise
    ``RuntimeError: Event loop is closed``), and the sockets would stay open until the
    collector complains (``ResourceWarning: unclosed socket``). Best effort, never raises.
    """
    pool = getattr(client, "connection_pool", None)
    connections: list[Any] = []
    for name in ("_available_connections", "_in_use_connections"):
        connections.extend(getattr(pool, name, None) or ())
    for extra in (getattr(client, "connection", None),):
        if extra is not None and extra not in connections:
            connections.append(extra)
    nodes = getattr(getattr(client, "nodes_manager", None), "nodes_cache", None) or {}
    for node in list(nodes.values()):  # a RedisCluster: each node keeps its own connections
        connections.extend(getattr(node, "_connections", None) or ())
    for connection in connections:
        writer = getattr(connection, "_writer", None)
        if writer is None:
            continue
        try:
            _close_transport_now(writer.transport)
        except Exception:  # pragma: no cover - a stdlib without these internals
            pass
        connection._writer = connection._reader = None


def _close_transport_now(transport: Any) -> None:
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    for layer in (transport, inner):
        if layer is None:
            continue
        try:
            layer.abort()  # marks it closing; a closed loop refuses the deferred rest
        except RuntimeError:
            pass
        sock = getattr(layer, "_sock", None)  # what the deferred callback would close
        if sock is not None:
            sock.close()
            layer._sock = None


class PerLoop(Generic[T]):
    """One value per running event loop, built by ``make``; ``client(value)`` is its redis
    client. ``first`` (optional) serves the first loop that asks, so a client built eagerly
    stays the one used in the common one-loop case.

    :meth:`get` is the hot path: one ``get_running_loop()`` and an identity check. On a loop
    change it drops the entries of closed loops, closing their sockets at once if that
    loop's shutdown did not already close them.
    """

    __slots__ = ("_client", "_current", "_entries", "_first", "_lock", "_make", "_running")

    def __init__(
        self, make: Callable[[], T], *, client: Callable[[T], Any], first: T | None = None
    ) -> None:
        from asyncio import get_running_loop  # asyncio only where an asyncio client is built

        self._running = get_running_loop
        self._make = make
        self._client = client
        self._first = first
        # (loop, value) of the last switch, read and replaced as one tuple: threads that each
        # run a loop must never pair one loop with another loop's client.
        self._current: tuple[asyncio.AbstractEventLoop | None, Any] = (None, None)
        self._entries: dict[asyncio.AbstractEventLoop, tuple[T, Any]] = {}
        self._lock = threading.Lock()  # loops in several threads may switch at once

    def get(self) -> T:
        """The value of the running loop (built on first use in that loop)."""
        loop = self._running()
        current = self._current
        if current[0] is loop:
            value: T = current[1]
            return value
        return self._switch(loop)

    def _switch(self, loop: asyncio.AbstractEventLoop) -> T:
        with self._lock:
            entry = self._entries.get(loop)
            if entry is None:
                entry = self._new_entry(loop)
        self._current = (loop, entry[0])
        return entry[0]

    def _new_entry(self, loop: asyncio.AbstractEventLoop) -> tuple[T, Any]:
        self._drop_closed()
        first, self._first = self._first, None
        value = first if first is not None else self._make()
        gen: Any = None
        if sys.get_asyncgen_hooks().firstiter is not None:  # the loop tracks async generators
            gen = _close_at_loop_end(self._client(value))
            _start(gen)
        entry = (value, gen)
        self._entries[loop] = entry
        return entry

    def _drop_closed(self) -> None:
        for loop in [loop for loop in self._entries if loop.is_closed()]:
            value, _gen = self._entries.pop(loop)
            close_sockets_now(self._client(value))  # a no-op when the shutdown closed it

    def values(self) -> list[T]:
        """Every live value (for stats and tests)."""
        return [value for value, _gen in self._entries.values()]

    async def aclose(self) -> None:
        """Close the running loop's client now; others close with (or after) their loop."""
        running = self._running()
        entries, self._entries = self._entries, {}
        self._current = (None, None)
        for loop, (value, gen) in entries.items():
            if loop is running:
                if gen is not None:
                    await gen.aclose()  # runs its finally: the client closes here
                else:
                    try:
                        await aclose_client(self._client(value))
                    except Exception:  # closing a broken client must not fail shutdown
                        pass
            elif loop.is_closed():
                close_sockets_now(self._client(value))
            # A loop still open in another thread: dropping the generator lets that loop's
            # asyncgen finalizer close the client on its own loop.


# -- one client factory for every Redis topology -----------------------------------------
# Cache, sessions and the rate limiter build their clients here, so a URL means the same
# thing to all three: redis:// and rediss:// (one server), unix://, valkey:// and valkeys://
# (the same protocol), redis+cluster://h1:p1,h2:p2 (a Redis Cluster; any reachable node
# finds the rest) and redis+sentinel://[:password@]h1:p1,h2:p2/service[/db] (the primary a
# Sentinel set names, followed across failovers without a restart).

SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys", "redis+cluster", "redis+sentinel")
"""URL schemes every renderkit Redis client accepts."""


def topology(url: str) -> str:
    """``"cluster"``, ``"sentinel"`` or ``"single"`` for a Redis URL."""
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis+cluster", "rediss+cluster", "valkey+cluster"):
        return "cluster"
    if scheme in ("redis+sentinel", "rediss+sentinel", "valkey+sentinel"):
        return "sentinel"
    return "single"


def _plain(url: str) -> str:
    """valkey:// -> redis://, valkeys:// -> rediss:// (same protocol, same client)."""
    scheme, sep, rest = url.partition("://")
    mapped = {"valkey": "redis", "valkeys": "rediss"}.get(scheme.lower(), scheme)
    return f"{mapped}{sep}{rest}"


def _hosts(netloc: str) -> tuple[str | None, list[tuple[str, int]]]:
    """``[:password@]h1:p1,h2:p2`` -> (password, [(h1, p1), (h2, p2)])."""
    from urllib.parse import unquote

    password = None
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        password = unquote(userinfo.partition(":")[2] or userinfo) or None
    pairs = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = port, ""
        pairs.append((host.strip("[]"), int(port) if port else 6379))
    return password, pairs


def require_bytes(client: Any, what: str, reason: str) -> None:
    """Refuse a client built with ``decode_responses=True``: ``what`` stores bytes (``reason``)."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if kwargs.get("decode_responses"):
        raise ValueError(
            f"{what} needs a client built with decode_responses=False (redis-py's default): "
            f"{reason}"
        )


def is_cluster(client: Any) -> bool:
    """True for a ``redis.cluster.RedisCluster`` or ``redis.asyncio.cluster.RedisCluster``."""
    return hasattr(client, "nodes_manager") and hasattr(client, "get_node")


def redis_client(
    url: str,
    *,
    asyncio: bool,
    extra: str,
    feature: str,
    pool_timeout: float = 1.0,
    blocking_pool: bool = True,
    **options: Any,
) -> Any:
    """A redis-py client for ``url`` with renderkit's retry policy (see :func:`reconnect_once`).

    ``options`` are connection options (``socket_timeout``, ``max_connections``, ...). A
    single server gets a blocking pool (a burst waits ``pool_timeout`` for a connection
    instead of failing; ``blocking_pool=False``: a plain pool, for a caller that bounds its
    own concurrency); a cluster client keeps a pool per node; a Sentinel client asks the
    sentinels for the current primary whenever it reconnects.
    """
    module = require("redis.asyncio" if asyncio else "redis", extra=extra, feature=feature)
    retry = reconnect_once(asyncio=asyncio, extra=extra, feature=feature)
    kind = topology(url)
    if kind == "single":
        # The policy goes on the pool: a client given a pool ignores its own ``retry=`` and
        # every connection would keep redis-py's default of no retry.
        if not blocking_pool:
            plain = module.ConnectionPool.from_url(_plain(url), retry=retry, **options)
            return module.Redis(connection_pool=plain)
        pool_class = module.BlockingConnectionPool
        pool = pool_class.from_url(_plain(url), timeout=pool_timeout, retry=retry, **options)
        return module.Redis(connection_pool=pool)
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    password, hosts = _hosts(parts.netloc)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    tls = parts.scheme.startswith("rediss") or query.get("ssl", "").strip().lower() in TRUE_WORDS
    if password is not None:
        options.setdefault("password", password)
    if tls:
        options.setdefault("ssl", True)
    if kind == "cluster":
        cluster = require(
            "redis.asyncio.cluster" if asyncio else "redis.cluster", extra=extra, feature=feature
        )
        nodes = [cluster.ClusterNode(host, port) for host, port in hosts]
        cls = _async_cluster_class(cluster, extra, feature) if asyncio else cluster.RedisCluster
        return cls(startup_nodes=nodes, retry=retry, **options)
    sentinel_module = require(
        "redis.asyncio.sentinel" if asyncio else "redis.sentinel", extra=extra, feature=feature
    )
    return _sentinel_primary(sentinel_module, parts.path, hosts, query, retry, options)


def _sentinel_primary(
    sentinel_module: Any,
    url_path: str,
    hosts: list[tuple[str, int]],
    query: dict[str, str],
    retry: Any,
    options: dict[str, Any],
) -> Any:
    """The primary of a redis+sentinel:// URL's service, found through its sentinels."""
    path = [p for p in url_path.split("/") if p]
    if not path:
        raise ValueError(
            "a redis+sentinel:// URL needs the service name after the hosts: "
            "redis+sentinel://host:26379,host2:26379/mymaster"
        )
    service = path[0]
    if len(path) > 1:
        options.setdefault("db", int(path[1]))
    sentinel_password = query.get("sentinel_password")
    timeouts: tuple[str, ...] = ("socket_timeout", "socket_connect_timeout")
    sentinel_kwargs: dict[str, Any] = {k: options[k] for k in timeouts if k in options}
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    sentinel = sentinel_module.Sentinel(hosts, sentinel_kwargs=sentinel_kwargs, **options)
    return sentinel.master_for(service, retry=retry)


_ASYNC_CLUSTER: list[Any] = []


def _async_cluster_class(cluster: Any, extra: str, feature: str) -> Any:
    """redis.asyncio's ``RedisCluster``, with a connection closed under a command reported as
    a ``ConnectionError``.

    On a connection error or a timeout, redis-py's asyncio cluster client closes every node's
    connections to re-read the topology, including those other coroutines are using at that
    moment. Their commands then fail with ``AttributeError: 'NoneType' object has no attribute
    'writelines'``, which is no ``RedisError``: it escaped the session store's fallback as a
    500 in the chaos run (``benchmarks/chaos.py --redis cluster``, 1 to 18 per 40 s run).
    """
    if _ASYNC_CLUSTER:
        return _ASYNC_CLUSTER[0]
    exceptions = require("redis.exceptions", extra=extra, feature=feature)

    class RedisCluster(cluster.RedisCluster):  # type: ignore[misc]
        async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await super().execute_command(*args, **kwargs)
            except AttributeError as exc:
                raise exceptions.ConnectionError(
                    f"the connection was closed under this command by another one's failure ({exc})"
                ) from exc

    _ASYNC_CLUSTER.append(RedisCluster)
    return RedisCluster


def _sentinels(client: Any) -> list[Any]:
    """The clients a Sentinel-managed client keeps to the sentinels themselves."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(getattr(manager, "sentinels", ()))


def close_client(client: Any) -> None:
    """Close a sync client from :func:`redis_client`, its sentinel connections included."""
    for sentinel in _sentinels(client):
        sentinel.close()
    client.close()
    pool = getattr(client, "connection_pool", None)
    if pool is not None:  # a client given a pool does not close it on close()
        pool.disconnect()


async def aclose_client(client: Any) -> None:
    """Close an asyncio client from :func:`redis_client`, its sentinel connections included."""
    for sentinel in _sentinels(client):
        await sentinel.aclose()
    if getattr(client, "connection_pool", None) is not None:
        await client.aclose(close_connection_pool=True)  # a given pool is not closed otherwise
    else:
        await client.aclose()  # a RedisCluster: closes every node's connections
