"""One contract for ``Cache`` and ``AsyncCache`` on every backend: the same tests, both sides.

``Cache`` is generated from ``AsyncCache`` (tools/twins.py); this matrix is what proves the two
behave alike. Each test gets a :class:`Side` that drives one cache through the sync facade (in
a worker thread, as a sync web framework would) or the asyncio one (awaited).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from renderkit.cache import (
    AsyncCache,
    Cache,
    CacheKeyError,
    FallbackBackend,
    MemoryBackend,
    RedisBackend,
    TieredBackend,
)

KINDS = ["memory", "fakeredis", "fallback", "tiered", "redis"]


class Side:
    """One cache, driven through ``Cache`` (sync, in a thread) or ``AsyncCache`` (awaited)."""

    def __init__(self, cache: Cache | AsyncCache, mode: str) -> None:
        self.cache = cache
        self.mode = mode

    async def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.cache, name)
        if self.mode == "async":
            return await method(*args, **kwargs)
        return await asyncio.to_thread(method, *args, **kwargs)

    async def backend(self, name: str, *args: Any) -> Any:
        """Call the backend directly (``get`` / ``aget``), under the cache's full key."""
        if self.mode == "async":
            return await getattr(self.cache.backend, "a" + name)(*args)
        return await asyncio.to_thread(getattr(self.cache.backend, name), *args)

    def factory(self, fn: Callable[[], Any], delay: float = 0.0) -> Callable[[], Any]:
        """``fn`` as a factory of this side: a plain function, or a coroutine function."""
        if self.mode == "async":

            async def afactory() -> Any:
                await asyncio.sleep(delay)
                return fn()

            return afactory

        def factory() -> Any:
            time.sleep(delay)
            return fn()

        return factory

    def sibling(self, **options: Any) -> Side:
        """Another cache of the same kind over the same backend (another 'process')."""
        return Side(type(self.cache)(self.cache.backend, **options), self.mode)


def _combos() -> list[Any]:
    combos = []
    for kind in KINDS:
        for mode in ("sync", "async"):
            marks = [pytest.mark.integration] if kind == "redis" else []
            combos.append(pytest.param((kind, mode), id=f"{kind}-{mode}", marks=marks))
    return combos


def _backend(kind: str, mode: str, request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """(backend, client to close) for one kind and side."""
    import fakeredis

    if kind == "memory":
        return MemoryBackend(), None
    if kind == "redis":
        url = request.getfixturevalue("renderkit_redis_url")
        backend = RedisBackend.from_url(url, asyncio=mode == "async")
        return backend, backend
    server = request.getfixturevalue("renderkit_fakeredis_server")
    client_class = fakeredis.FakeAsyncRedis if mode == "async" else fakeredis.FakeRedis
    redis_backend = RedisBackend(client_class(server=server))
    if kind == "fakeredis":
        return redis_backend, redis_backend
    if kind == "fallback":
        return FallbackBackend(redis_backend, MemoryBackend()), redis_backend
    return TieredBackend(MemoryBackend(), redis_backend), redis_backend


@pytest.fixture(params=_combos())
async def side(request: pytest.FixtureRequest) -> AsyncIterator[Side]:
    kind, mode = request.param
    backend, closing = _backend(kind, mode, request)
    facade = AsyncCache if mode == "async" else Cache
    namespace = f"t-{uuid.uuid4().hex[:8]}"  # real Redis is shared: each test its own keys
    driven = Side(facade(backend, namespace=namespace), mode)
    yield driven
    await driven("clear")
    if closing is not None:
        if mode == "async":
            await closing.aclose()
        else:
            closing.close()


async def test_get_set_delete_and_counters(side: Side) -> None:
    """The basic operations round-trip values, report presence and count hits and misses."""
    assert await side("get", "k") is None
    assert await side("get", "k", "dflt") == "dflt"
    assert await side("set", "k", {"n": [1, "é"]}) is True
    assert await side("get", "k") == {"n": [1, "é"]}
    assert await side("delete", "k") is True
    assert await side("delete", "k") is False
    assert await side("get", "k") is None
    stats = side.cache.stats()
    assert (stats["hits"], stats["misses"], stats["sets"], stats["errors"]) == (1, 3, 1, 0)
    assert stats["hit_rate"] == 0.25
    assert stats["fallback_active"] is False


async def test_stored_none_is_a_hit(side: Side) -> None:
    """A stored None is a value: get_or_set does not call the factory for it."""
    calls: list[int] = []
    await side("set", "n", None)
    assert await side("get_or_set", "n", side.factory(lambda: calls.append(1) or 5)) is None
    assert calls == []


async def test_bad_ttl_is_refused(side: Side) -> None:
    """A zero or negative TTL is a programming error with a clear message."""
    for ttl in (0, -5):
        with pytest.raises(ValueError, match="ttl"):
            await side("set", "k", 1, ttl)


BAD_KEYS = [
    "",
    42,
    None,
    b"bytes",
    "\ud800",  # a lone surrogate, short: used to be stored on memory
    "a\udfffb",
    "\ud800" * 300,  # past 256 characters
    "é" * 513,  # 1026 UTF-8 bytes
    "k" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
async def test_bad_keys_raise_cachekeyerror_and_touch_nothing(side: Side, key: Any) -> None:
    """Every operation refuses a bad key with CacheKeyError: no error counted, no outage."""
    for op, args in (
        ("get", ()),
        ("set", (1,)),
        ("delete", ()),
        ("get_or_set", (side.factory(lambda: 1),)),
    ):
        with pytest.raises(CacheKeyError):
            await side(op, key, *args)
    stats = side.cache.stats()
    assert stats["errors"] == 0
    assert stats["fallback_active"] is False


@pytest.mark.parametrize("key", ["k" * 1024, "é" * 512, "日本語", "a:b/c?d#e@f", "\U0001f600"])
async def test_edge_keys_are_usable(side: Side, key: str) -> None:
    """Keys up to 1024 UTF-8 bytes, non-ASCII and URL punctuation included, work everywhere."""
    assert await side("set", key, 1) is True
    assert await side("get", key) == 1


async def test_namespaces_keep_keys_and_clear_apart(side: Side) -> None:
    """Two namespaces over one backend: same key, two values; clear() drops only its own."""
    other = side.sibling(namespace=side.cache.namespace + "-other")
    await side("set", "k", "mine")
    await other("set", "k", "theirs")
    assert await side("get", "k") == "mine"
    assert await side("clear") >= 1
    assert await side("get", "k") is None
    assert await other("get", "k") == "theirs"
    await other("clear")


async def test_get_or_set_computes_once_for_concurrent_callers(side: Side) -> None:
    """20 concurrent callers of one missing key run the factory once; the table empties."""
    calls: list[int] = []
    factory = side.factory(lambda: calls.append(1) or 42, delay=0.05)
    results = await asyncio.gather(*(side("get_or_set", "hot", factory, 60) for _ in range(20)))
    assert results == [42] * 20
    assert calls == [1]
    assert side.cache._flights._table == {}


async def test_factory_error_propagates_and_frees_the_key(side: Side) -> None:
    """A failing factory raises to the caller, stores nothing, and the next call computes."""

    def boom() -> int:
        raise RuntimeError("db down")

    with pytest.raises(RuntimeError, match="db down"):
        await side("get_or_set", "k", side.factory(boom))
    assert await side("get", "k") is None
    assert await side("get_or_set", "k", side.factory(lambda: 1)) == 1


async def test_stale_if_error_serves_the_kept_copy(side: Side) -> None:
    """The value gone and the factory failing: the stale copy is served and counted."""

    def boom() -> str:
        raise RuntimeError("upstream down")

    await side("get_or_set", "s", side.factory(lambda: "good"), 60, stale_if_error=60)
    await side.backend("delete", side.cache._key("s"))
    if isinstance(side.cache.backend, FallbackBackend):
        await side.backend("delete", side.cache._key("s"))
    assert await side("get", "s") is None
    got = await side("get_or_set", "s", side.factory(boom), 60, stale_if_error=60)
    assert got == "good"
    assert side.cache.stats()["stale_served"] == 1


async def test_cached_keys_are_stable_and_invalidate(side: Side) -> None:
    """Positional and keyword spellings share a key; invalidate drops it; results are cached."""
    calls: list[tuple[int, int]] = []

    def add(x: int, y: int = 2) -> int:
        calls.append((x, y))
        return x + y

    if side.mode == "async":

        async def aadd(x: int, y: int = 2) -> int:
            return add(x, y)

        wrapped: Any = side.cache.cached(ttl=60)(aadd)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await wrapped(*args, **kwargs)

        async def invalidate(*args: Any) -> Any:
            return await wrapped.invalidate(*args)
    else:
        wrapped = side.cache.cached(ttl=60)(add)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(wrapped, *args, **kwargs)

        async def invalidate(*args: Any) -> Any:
            return await asyncio.to_thread(wrapped.invalidate, *args)

    assert [await call(1), await call(1, 2), await call(x=1, y=2), await call(2)] == [3, 3, 3, 4]
    assert calls == [(1, 2), (2, 2)]
    assert wrapped.key_for(1) == wrapped.key_for(x=1, y=2)
    assert await invalidate(1) is True
    await call(1)
    assert len(calls) == 3


async def test_distributed_lock_computes_once_across_instances(side: Side) -> None:
    """lock=True: two cache instances over one store compute a key once, leaving no lock."""
    other = side.sibling(namespace=side.cache.namespace)
    calls: list[int] = []
    factory = side.factory(lambda: calls.append(1) or "v", delay=0.2)
    out = await asyncio.gather(
        side("get_or_set", "k", factory, lock=True), other("get_or_set", "k", factory, lock=True)
    )
    assert out == ["v", "v"]
    assert calls == [1]
    assert await side.backend("get", side.cache._key("k") + "\x00lock") is None


async def test_health_is_healthy(side: Side) -> None:
    """A working backend reports healthy."""
    assert (await side("health_check")).status == "healthy"


async def test_wrong_function_kind_for_cached_is_refused(side: Side) -> None:
    """Cache.cached wants a plain function, AsyncCache.cached a coroutine function."""

    async def coro() -> None: ...

    def plain() -> None: ...

    wrong = plain if side.mode == "async" else coro
    with pytest.raises(TypeError, match="cached"):
        side.cache.cached()(wrong)  # type: ignore[arg-type]


# -- outages: the same on both sides ----------------------------------------------------------


class Broken(MemoryBackend):
    """A memory backend that fails like an unreachable Redis while ``down``."""

    def __init__(self) -> None:
        super().__init__(name="redis")
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("Connection refused")

    def get(self, key: str) -> bytes | None:
        self._check()
        return super().get(key)

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._check()
        super().set(key, value, ttl)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_outage_serves_the_fallback_and_logs_once(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Primary down: values come from memory, health is degraded, one warning in all."""
    primary = Broken()
    fallback = FallbackBackend(primary, MemoryBackend(), probe_interval=60)
    side = Side((AsyncCache if mode == "async" else Cache)(fallback), mode)
    await side("set", "k", "v")
    primary.down = True
    with caplog.at_level(logging.DEBUG):
        for i in range(10):
            assert await side("get", "k") == "v"
            assert await side("set", f"n{i}", i) is True
    assert (await side("health_check")).status == "degraded"
    assert side.cache.stats()["fallback_active"] is True
    assert side.cache.stats()["errors"] == 0  # the fallback answered: not a cache error
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    fallback.degrader.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_lone_backend_failure_is_a_miss_logged_once(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a fallback, errors become misses and False, logged once, counted."""
    primary = Broken()
    primary.down = True
    side = Side((AsyncCache if mode == "async" else Cache)(primary), mode)
    with caplog.at_level(logging.WARNING, logger="renderkit.cache"):
        for _ in range(5):
            assert await side("get", "k", 1) == 1
            assert await side("set", "k", 2) is False
    assert side.cache.stats()["errors"] == 10
    assert len(caplog.records) == 1
