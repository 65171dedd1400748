"""The cache's fast paths: orjson decoding, decoded values in a tiered L1, the asyncio pool gate.

Each fast path must return exactly what the slow path returns (or say plainly that it shares),
so every test here compares against the standard-library behaviour.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import uuid
from typing import Any

import pytest

from renderkit.cache import AsyncCache, Cache, FallbackBackend, MemoryBackend, TieredBackend
from renderkit.cache._redis import RedisBackend
from renderkit.cache._serde import Serializer

orjson = pytest.importorskip("orjson")

# Values where orjson alone would differ from json.loads, or refuse what json.loads reads.
TRICKY = [
    2**64,  # orjson: a float
    -(2**63) - 1,  # orjson: a float
    {"n": 12345678901234567890123, "ok": [1, 2.5, None]},
    "digits 1234567890123456789012 inside a string",
    1e308,
    [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]],
    {"unicode": "é ✓ 𝄞", "empty": {}, "list": []},
]


@pytest.mark.parametrize("value", TRICKY)
def test_fast_json_decodes_exactly_like_json(value: Any) -> None:
    fast, slow = Serializer(fast_json=True), Serializer(fast_json=False)
    assert fast.fast_json
    assert not slow.fast_json
    data = slow.dumps(value)
    assert fast.dumps(value) == data  # writes never depend on orjson
    decoded = fast.loads(data)
    assert decoded == slow.loads(data) == json.loads(data[1:])
    assert type(decoded) is type(value)


def test_fast_json_reads_what_orjson_refuses() -> None:
    """json.loads reads 1e400 as inf where orjson refuses it; the fast path falls back."""
    ser = Serializer(fast_json=True)
    assert ser.loads(b"j1e400") == float("inf")
    assert ser.loads(b"j[-1e400, 1]") == [float("-inf"), 1]


def test_fast_json_compressed_and_corrupt() -> None:
    ser = Serializer(fast_json=True)
    big = {"text": "y" * 5000, "n": 2**70}
    data = ser.dumps(big)
    assert data[:1] == b"J"
    assert ser.loads(data) == big
    from renderkit.cache._serde import CorruptValue

    for raw in (b"j{not json", b"j\xff\xfe", b"j"):
        with pytest.raises(CorruptValue):
            ser.loads(raw)


def test_fast_json_true_without_orjson_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def no_orjson(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "orjson":
            raise ImportError("No module named 'orjson'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(__import__("sys").modules, "orjson")
    monkeypatch.setattr(builtins, "__import__", no_orjson)
    with pytest.raises(ImportError, match="pip install orjson"):
        Serializer(fast_json=True)
    auto = Serializer()  # default: silently the standard library
    assert not auto.fast_json
    assert auto.loads(auto.dumps({"a": 2**70})) == {"a": 2**70}


# -- decoded values in a tiered L1 -----------------------------------------------------------
def _tiered(share: bool = False, clock: Any = None) -> tuple[Cache, MemoryBackend, MemoryBackend]:
    l1 = MemoryBackend(clock=clock) if clock else MemoryBackend()
    l2 = MemoryBackend()
    return Cache(TieredBackend(l1, l2, share_values=share)), l1, l2


def test_tiered_default_gives_each_caller_its_own_container() -> None:
    cache, l1, _ = _tiered()
    cache.set("d", {"a": [1]})
    first = cache.get("d")
    first["a"].append(2)  # a caller mutates its copy
    second = cache.get("d")
    assert second == {"a": [1]}
    assert second is not first
    assert l1.stats()["decoded"] == 0  # containers are never kept decoded by default
    assert cache.stats()["hits"] == 2


def test_tiered_default_keeps_immutable_values_decoded() -> None:
    cache, l1, _ = _tiered()
    cache.set("s", "x" * 100)
    assert cache.get("s") == "x" * 100
    assert cache.get("s") is cache.get("s")
    assert l1.stats()["decoded"] == 1
    assert cache.backend.stats()["l1_hits"] == 3


def test_share_values_returns_one_object_and_drops_it_on_change() -> None:
    cache, l1, l2 = _tiered(share=True)
    cache.set("d", {"a": 1})
    first = cache.get("d")
    assert cache.get("d") is first
    cache.set("d", {"a": 2})  # a write through this process replaces the decoded value
    assert cache.get("d") == {"a": 2}
    cache.delete("d")
    assert cache.get("d") is None
    assert l1.stats()["decoded"] == 0
    cache.set("d", {"a": 3})
    assert cache.get("d") == {"a": 3}
    cache.clear()
    assert cache.get("d") is None
    assert l2.get("d") is None


def test_decoded_value_expires_and_is_evicted_with_its_bytes() -> None:
    now = [0.0]
    cache, l1, l2 = _tiered(share=True, clock=lambda: now[0])
    cache.set("d", {"v": 1}, ttl=60)
    assert cache.get("d") == {"v": 1}
    l2.set("d", cache.serializer.dumps({"v": 2}), 60)  # another process wrote L2
    assert cache.get("d") == {"v": 1}  # L1 still fresh
    now[0] += 6  # past l1_ttl (5 s)
    assert cache.get("d") == {"v": 2}
    assert l1.stats()["expired"] == 1

    small = MemoryBackend(max_entries=2)
    evicting = Cache(TieredBackend(small, MemoryBackend(), share_values=True))
    for key in ("a", "b", "c"):
        evicting.set(key, [key])
        evicting.get(key)
    assert small.stats()["decoded"] == 2  # the evicted key's decoded value went with it


def test_corrupt_bytes_in_l1_are_a_miss(caplog: pytest.LogCaptureFixture) -> None:
    cache, l1, _l2 = _tiered(share=True)
    l1.set("k", b"j{broken", 5)
    assert cache.get("k", "default") == "default"
    assert cache.stats()["corrupt"] == 1
    assert "undecodable" in caplog.text


def test_share_values_needs_a_decoding_l1() -> None:
    class BytesOnly(MemoryBackend):
        get_decoded = None  # type: ignore[assignment]

    with pytest.raises(ValueError, match=r"share_values=True\) needs an L1"):
        TieredBackend(BytesOnly(), MemoryBackend(), share_values=True)
    plain = Cache(TieredBackend(BytesOnly(), MemoryBackend()))  # default: just no fast path
    plain.set("k", {"a": 1})
    assert plain.get("k") == {"a": 1}


async def test_async_tiered_share_values() -> None:
    cache = AsyncCache(TieredBackend(MemoryBackend(), MemoryBackend(), share_values=True))
    await cache.set("d", {"a": 1})
    first = await cache.get("d")
    assert await cache.get("d") is first
    await cache.delete("d")
    assert await cache.get("d") is None


# -- the asyncio pool gate -------------------------------------------------------------------
def test_gate_options_are_checked(renderkit_async_fakeredis: Any) -> None:
    with pytest.raises(ValueError, match="max_concurrency=0"):
        RedisBackend(renderkit_async_fakeredis, max_concurrency=0)
    with pytest.raises(ValueError, match="pool_timeout=0"):
        RedisBackend(renderkit_async_fakeredis, max_concurrency=1, pool_timeout=0)


def test_from_url_asyncio_uses_a_plain_pool_and_a_gate() -> None:
    import redis
    import redis.asyncio as aredis

    backend = RedisBackend.from_url(
        "redis://127.0.0.1:1/0", asyncio=True, max_connections=7, pool_timeout=0.5
    )
    pool = backend.client.connection_pool
    assert type(pool) is aredis.ConnectionPool
    assert pool.max_connections == 7
    assert backend.max_concurrency == 7
    assert backend.pool_timeout == 0.5
    assert backend.stats()["max_concurrency"] == 7
    sync = RedisBackend.from_url("redis://127.0.0.1:1/0", max_connections=7, pool_timeout=0.5)
    assert type(sync.client.connection_pool) is redis.BlockingConnectionPool
    assert sync.client.connection_pool.timeout == 0.5
    sync.close()


async def test_gate_bounds_concurrency_and_times_out(renderkit_redis_url: str) -> None:
    """On real Redis: 1 slot, a blocking command holds it; others wait, then fail clearly."""
    url = renderkit_redis_url.rsplit("/", 1)[0] + "/9"
    prefix = f"rk-gate-{uuid.uuid4().hex[:8]}:"
    backend = RedisBackend.from_url(url, asyncio=True, prefix=prefix, max_connections=1)
    backend.pool_timeout = 0.2
    import redis.exceptions

    try:
        await backend.aset("k", b"jv", 30)
        client, gate = await backend._aslot()  # hold the only slot
        try:
            with pytest.raises(redis.exceptions.ConnectionError, match="max_connections"):
                await backend.aget("k")  # waited for the slot (pool_waits below), then gave up
            assert await client.get(prefix + "k") == b"jv"
        finally:
            assert gate is not None
            gate.release()
        stats = backend.stats()
        assert stats["pool_waits"] == 1
        assert stats["pool_timeouts"] == 1
        # Free again: 20 concurrent reads all succeed through the one slot, in turn.
        backend.pool_timeout = 2.0
        values = await asyncio.gather(*(backend.aget("k") for _ in range(20)))
        assert values == [b"jv"] * 20
        pool = backend.client.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 1
    finally:
        await backend.aclear()
        await backend.aclose()


async def test_gate_exhaustion_falls_back_instead_of_raising(renderkit_redis_url: str) -> None:
    url = renderkit_redis_url.rsplit("/", 1)[0] + "/9"
    primary = RedisBackend.from_url(
        url, asyncio=True, prefix=f"rk-gate-{uuid.uuid4().hex[:8]}:", max_connections=1
    )
    primary.pool_timeout = 0.05
    cache = AsyncCache(FallbackBackend(primary, MemoryBackend()))
    try:
        await cache.set("k", 1)
        _, gate = await primary._aslot()  # hold the only slot
        try:
            assert await cache.get("k") == 1  # served by the fallback's mirrored copy
        finally:
            assert gate is not None
            gate.release()
        assert cache.stats()["backend"]["primary_errors"] == 1
    finally:
        await cache.clear()
        await cache.close()
