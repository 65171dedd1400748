"""Unit tests of renderkit.cache: codec, keys, memory LRU, facades, fallback, tiering, env."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from renderkit.cache import (
    AsyncCache,
    Cache,
    CacheValueError,
    FallbackBackend,
    MemoryBackend,
    NullBackend,
    RedisBackend,
    Serializer,
    TieredBackend,
)
from renderkit.cache._memory import _entry_size
from renderkit.cache._serde import CorruptValue
from renderkit.errors import ConfigError
from renderkit.resilience import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Broken(MemoryBackend):
    """A memory backend that can be switched to fail like an unreachable Redis."""

    def __init__(self) -> None:
        super().__init__(name="redis")
        self.down = False
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("Connection refused")

    def get(self, key: str) -> bytes | None:
        self._maybe_fail()
        return super().get(key)

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._maybe_fail()
        super().set(key, value, ttl)

    def delete(self, key: str) -> bool:
        self._maybe_fail()
        return super().delete(key)


# -- codec -------------------------------------------------------------------------------


def test_json_roundtrip_and_header() -> None:
    """Values are JSON with a one-byte header; bytes are stored raw."""
    s = Serializer()
    raw = s.dumps({"a": [1, 2.5, None, True, "é"]})
    assert raw[:1] == b"j"
    assert s.loads(raw) == {"a": [1, 2.5, None, True, "é"]}
    assert s.loads(s.dumps(b"\x00\xff")) == b"\x00\xff"


def test_compression_above_threshold() -> None:
    """Payloads over 1 KB are zlib-compressed behind an unambiguous header."""
    s = Serializer()
    value = "x" * 5000
    raw = s.dumps(value)
    assert raw[:1] == b"J"
    assert len(raw) < 200
    assert s.loads(raw) == value
    assert s.dumps("x" * 100)[:1] == b"j"


def test_only_what_shrinks_is_compressed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Incompressible bodies skip zlib after a 4 KiB probe; the ceiling stores big ones raw."""
    import base64
    import os
    import zlib

    from renderkit.cache import _serde

    compressed: list[int] = []
    real = zlib.compress

    def spy(data: Any, level: int = -1) -> bytes:
        compressed.append(len(data))
        return real(data, level)

    monkeypatch.setattr(_serde.zlib, "compress", spy)
    s = Serializer()
    noise = os.urandom(200_000)
    raw = s.dumps(noise)
    assert raw[:1] == b"b" and s.loads(raw) == noise
    assert compressed == []  # random-looking: decided from 256 bytes, zlib never ran
    b64 = base64.b64encode(noise)
    assert s.dumps(b64)[:1] == b"b"
    assert compressed == [1024]  # base64 spreads less: a 1 KiB probe, then no compression
    compressed.clear()
    text = {"rows": [{"id": i, "name": f"user {i}"} for i in range(5000)]}
    packed = s.dumps(text)
    assert packed[:1] == b"J" and s.loads(packed) == text
    assert len(packed) < len(json.dumps(text)) / 4
    compressed.clear()
    big = "x" * (2 * 1024 * 1024)
    assert s.dumps(big)[:1] == b"j"  # over compress_max (1 MiB): stored as it is
    assert compressed == []
    assert Serializer(compress_max=None).dumps(big)[:1] == b"J"
    with pytest.raises(ValueError, match="compress_level"):
        Serializer(compress_level=12)


@pytest.mark.parametrize("kind", ["memory", "fakeredis"])
def test_decompression_bomb_is_a_miss_with_bounded_memory(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """300 KB written by someone else that inflate to 300 MB: a counted miss, not 4 GB of RAM."""
    import zlib

    bomb = b"J" + zlib.compress(b'"' + b"a" * (300 * 1024 * 1024) + b'"', 9)
    if kind == "memory":
        backend: Any = MemoryBackend(max_bytes=10**7)
        backend.set("k", bomb, None)
    else:
        client = request.getfixturevalue("renderkit_fakeredis")
        client.set("k", bomb)
        backend = RedisBackend(client)
    cache = Cache(backend)
    tracemalloc.start()
    try:
        assert cache.get("k", "fresh") == "fresh"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, peak
    assert cache.stats()["corrupt"] == 1
    exact = "x" * (1024 * 1024 - 2)  # a JSON body of exactly compress_max bytes still reads
    stored = Serializer().dumps(exact)
    assert stored[:1] == b"J"
    assert Serializer().loads(stored) == exact


def test_memory_cache_does_not_compress() -> None:
    """A plain memory cache stores bodies uncompressed: reads never pay zlib."""
    backend = MemoryBackend()
    Cache(backend).set("k", "x" * 50_000)
    assert backend.get("k")[:1] == b"j"  # type: ignore[index]
    assert Cache(FallbackBackend(MemoryBackend(), MemoryBackend())).serializer.compress_threshold


def test_unserializable_value_names_type_and_writes_nothing() -> None:
    """A value JSON cannot hold raises CacheValueError (a TypeError) naming the type."""
    cache = Cache(MemoryBackend())
    with pytest.raises(CacheValueError, match="set") as info:
        cache.set("k", {1, 2})
    assert isinstance(info.value, TypeError)
    assert cache.get("k") is None
    assert len(cache.backend) == 0  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="object"):
        cache.set("k", object())


def test_pickle_needs_opt_in() -> None:
    """Pickled bytes are refused unless pickle was enabled explicitly."""
    picky = Serializer(pickle=True)
    raw = picky.dumps({1, 2})
    assert picky.loads(raw) == {1, 2}
    with pytest.raises(CorruptValue, match="pickle"):
        Serializer().loads(raw)


@pytest.mark.parametrize("raw", [b"", b"j{not json", b"Jnot zlib", b"\x99abc", b"P\x00"])
def test_corrupt_bytes_raise_corrupt_value(raw: bytes) -> None:
    """Anything not written by the codec is reported as corrupt, never crashes."""
    with pytest.raises(CorruptValue):
        Serializer().loads(raw)


def test_nan_is_refused() -> None:
    """NaN is not valid JSON: refused at write time rather than stored unreadable."""
    with pytest.raises(CacheValueError):
        Serializer().dumps(float("nan"))


# -- keys --------------------------------------------------------------------------------


def test_namespace_prefixes_keys_and_clear_is_scoped() -> None:
    """Two namespaces on one backend never see or clear each other's keys."""
    backend = MemoryBackend()
    a, b = Cache(backend, namespace="a"), Cache(backend, namespace="b")
    a.set("k", 1)
    b.set("k", 2)
    assert (a.get("k"), b.get("k")) == (1, 2)
    assert backend.get("a:k") is not None
    assert a.clear() == 1
    assert (a.get("k"), b.get("k")) == (None, 2)


# -- memory backend ----------------------------------------------------------------------


def test_memory_lru_evicts_least_recently_used() -> None:
    """Over max_entries the least recently read entry goes first."""
    m = MemoryBackend(max_entries=2)
    m.set("a", b"1", None)
    m.set("b", b"2", None)
    assert m.get("a") == b"1"
    m.set("c", b"3", None)
    assert m.get("b") is None
    assert m.get("a") == b"1"
    assert m.stats()["evictions"] == 1


def test_memory_ttl_expires_with_clock() -> None:
    """Entries vanish once their TTL passed."""
    clock = Clock()
    m = MemoryBackend(clock=clock)
    m.set("a", b"1", 10)
    clock.now += 9.9
    assert m.get("a") == b"1"
    clock.now += 0.2
    assert m.get("a") is None
    assert m.stats()["bytes"] == 0


def test_memory_byte_bound() -> None:
    """The byte bound holds however many values arrive; an oversize value is not stored."""
    m = MemoryBackend(max_entries=10**6, max_bytes=50_000)
    for i in range(1000):
        m.set(f"k{i}", b"x" * 1000, None)
        assert m.stats()["bytes"] <= 50_000
    m.set("huge", b"x" * 60_000, None)
    assert m.get("huge") is None
    assert len(m) > 0


def test_memory_byte_bound_holds_process_memory() -> None:
    """100k inserts of 1 KB with a 10 MB bound grow the process by at most ~12 MB."""
    m = MemoryBackend(max_entries=10**6, max_bytes=10 * 1024 * 1024)
    value = b"v" * 1024
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(100_000):
            m.set(f"key-{i}", value + i.to_bytes(4, "big"), 300)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown <= 12 * 1024 * 1024, grown
    assert m.stats()["bytes"] <= 10 * 1024 * 1024


@pytest.mark.parametrize("make", [lambda i: i, lambda i: f"v{i}"], ids=["int", "str"])
def test_memory_byte_bound_is_honest_for_tiny_values(make: Callable[[int], Any]) -> None:
    """Tiny values: what the process really holds stays within 10% of max_bytes, and the
    charge is not an overestimate either (the per-entry overhead is charged as measured)."""
    limit = 2 * 1024 * 1024
    cache = Cache(MemoryBackend(max_entries=10**7, max_bytes=limit))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(25_000):
            cache.set(f"user:{i}", make(i))
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    charged = cache.stats()["backend"]["bytes"]
    assert charged <= limit
    assert cache.stats()["backend"]["evictions"] > 0  # the bound was reached
    assert 0.85 * limit <= grown <= 1.1 * limit, (grown, charged)


def test_kept_decoded_values_are_charged() -> None:
    """A plain memory cache keeps decoded str values (no decode per read) and charges them."""
    backend = MemoryBackend(max_bytes=10**6)
    cache = Cache(backend)
    cache.set("k", "x" * 10_000)
    before = backend.stats()["bytes"]
    first = cache.get("k")
    assert cache.get("k") is first  # decoded once, then handed out as is
    assert backend.stats()["bytes"] >= before + 10_000
    assert backend.stats()["decoded"] == 1
    cache.delete("k")
    assert backend.stats() | {"bytes": 0} == backend.stats()  # nothing left charged


def test_memory_is_thread_safe() -> None:
    """Concurrent writers and readers keep the accounting consistent."""
    m = MemoryBackend(max_entries=50, max_bytes=10**6)

    def work(n: int) -> None:
        for i in range(500):
            m.set(f"{n}-{i % 80}", b"x" * (i % 50), None)
            m.get(f"{n}-{(i * 7) % 80}")
            if i % 9 == 0:
                m.delete(f"{n}-{i % 80}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(m) <= 50
    expected = sum(_entry_size(k, v) for k, (v, _) in m._data.items())
    assert m.stats()["bytes"] == expected


# -- Cache on Redis (the sync/async contract is tests/test_cache_matrix.py) ---------------


def test_redis_ttl_is_applied(renderkit_fakeredis: Any) -> None:
    """TTLs reach Redis in milliseconds; timedelta is accepted."""
    from datetime import timedelta

    cache = Cache(RedisBackend(renderkit_fakeredis))
    cache.set("k", 1, ttl=timedelta(seconds=30))
    assert 29_000 < renderkit_fakeredis.pttl("k") <= 30_000
    cache.set("d", 1)
    assert renderkit_fakeredis.pttl("d") <= 300_000


def test_corrupt_redis_value_is_a_miss_logged_once(
    renderkit_fakeredis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage found under a key reads as a miss, logs once, and is counted."""
    cache = Cache(RedisBackend(renderkit_fakeredis))
    renderkit_fakeredis.set("a", b"\x99garbage")
    renderkit_fakeredis.set("b", b"j{broken")
    with caplog.at_level(logging.WARNING, logger="renderkit.cache"):
        assert cache.get("a") is None
        assert cache.get("b", 7) == 7
    assert len([r for r in caplog.records if "undecodable" in r.message]) == 1
    assert cache.stats()["corrupt"] == 2
    assert cache.get_or_set("a", lambda: 5) == 5
    assert cache.get("a") == 5


def test_decode_responses_client_is_refused(renderkit_fakeredis_server: Any) -> None:
    """A client that decodes to str cannot hold binary values: refused at construction."""
    import fakeredis

    client = fakeredis.FakeRedis(server=renderkit_fakeredis_server, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisBackend(client)


def test_wrong_client_kind_is_refused(renderkit_fakeredis_server: Any) -> None:
    """Cache needs a sync client and AsyncCache an asyncio one: said at construction."""
    import fakeredis

    async_client = fakeredis.FakeAsyncRedis(server=renderkit_fakeredis_server)
    with pytest.raises(TypeError, match="AsyncCache"):
        Cache(RedisBackend(async_client))
    with pytest.raises(TypeError, match="asyncio"):
        AsyncCache(FallbackBackend(RedisBackend(fakeredis.FakeRedis()), MemoryBackend()))


# -- get_or_set ----------------------------------------------------------------------------


def test_stale_if_error_serves_last_value() -> None:
    """When the value expired and the factory fails, the stale copy is served."""
    clock = Clock()
    cache = Cache(MemoryBackend(clock=clock), ttl_jitter=0)
    assert cache.get_or_set("k", lambda: "v1", ttl=10, stale_if_error=100) == "v1"
    clock.now += 20
    assert cache.get("k") is None

    def boom() -> str:
        raise RuntimeError("upstream down")

    assert cache.get_or_set("k", boom, ttl=10, stale_if_error=100) == "v1"
    assert cache.stats()["stale_served"] == 1
    clock.now += 200
    with pytest.raises(RuntimeError):
        cache.get_or_set("k", boom, ttl=10, stale_if_error=100)


def test_ttl_jitter_spreads_expiry(renderkit_fakeredis: Any) -> None:
    """Keys filled together by get_or_set get TTLs spread below the nominal TTL."""
    cache = Cache(RedisBackend(renderkit_fakeredis), ttl_jitter=0.2)
    ttls = set()
    for i in range(20):
        cache.get_or_set(f"k{i}", lambda: 1, ttl=100)
        ttls.add(renderkit_fakeredis.pttl(f"k{i}"))
    assert all(80_000 <= t <= 100_000 for t in ttls)
    assert len(ttls) > 10


def test_distributed_lock_lease_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock left by a crashed holder stops blocking once its lease ran out: the next
    get_or_set takes the lock at once and never waits (on the backend's clock)."""
    import renderkit._compat_sync

    now = [0.0]
    backend = MemoryBackend(clock=lambda: now[0])
    cache = Cache(backend)
    assert backend.acquire_lock("k\x00lock", 0.1) is not None  # the holder, then it crashes
    assert backend.acquire_lock("k\x00lock", 0.1) is None  # still held inside its lease
    now[0] = 0.2  # the lease ran out

    def no_wait(seconds: float) -> None:
        raise AssertionError(f"get_or_set waited {seconds} s for an expired lock")

    monkeypatch.setattr(renderkit._compat_sync, "sleep", no_wait)
    assert cache.get_or_set("k", lambda: 1, lock=True, lock_lease=30) == 1


# -- cached ----------------------------------------------------------------------------


def test_cached_custom_key_and_kind_checks() -> None:
    """A key function overrides the builder; wrong sync/async kinds are refused."""
    cache = Cache()

    @cache.cached(key=lambda uid: f"user:{uid}")
    def user(uid: int) -> dict[str, int]:
        return {"id": uid}

    user(7)
    assert cache.get("user:7") == {"id": 7}

    async def coro() -> None: ...

    with pytest.raises(TypeError, match="AsyncCache"):
        cache.cached()(coro)
    with pytest.raises(TypeError, match=r"Cache\.cached"):
        AsyncCache().cached()(lambda: 1)  # type: ignore[arg-type]


# -- fallback and tiering --------------------------------------------------------------


def make_fallback(clock: Clock) -> tuple[Broken, MemoryBackend, FallbackBackend]:
    primary, memory = Broken(), MemoryBackend()
    breaker = CircuitBreaker("t", failure_threshold=2, recovery_timeout=5, clock=clock)
    fb = FallbackBackend(primary, memory, breaker=breaker)
    return primary, memory, fb


def test_fallback_serves_memory_degrades_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    """Primary down: no exception, memory answers, health degraded, one log; back after a probe."""
    clock = Clock()
    primary, _, fb = make_fallback(clock)
    cache = Cache(fb)
    cache.set("k", "v")
    primary.down = True
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            assert cache.get("k") == "v"
            cache.set("other", 1)
    assert primary.calls < 10  # the breaker stopped paying the primary's failure each call
    assert cache.health_check().status == "degraded"
    assert cache.stats()["fallback_active"] is True
    assert len([r for r in caplog.records if "serving from" in r.message]) == 1
    primary.down = False
    clock.now += 5
    assert cache.get("k") == "v"
    assert cache.health_check().status == "healthy"
    assert cache.stats()["fallback_active"] is False
    assert fb.stats()["fallback_served"] > 0


@pytest.mark.parametrize("side", ["sync", "async"])
def test_one_redis_outage_logs_one_warning_and_one_recovery(
    side: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused Redis: one WARNING in all of renderkit (not breaker + backend), one INFO back."""
    from renderkit.cache import RedisBackend

    dead = RedisBackend.from_url("redis://127.0.0.1:1/0", asyncio=side == "async")
    fb = FallbackBackend(dead, MemoryBackend(), probe_interval=60)
    with caplog.at_level(logging.DEBUG):
        if side == "sync":
            cache = Cache(fb)
            for i in range(20):
                cache.set(f"k{i}", i)
                assert cache.get(f"k{i}") == i
            cache.close()
        else:

            async def run() -> None:
                cache = AsyncCache(fb)
                for i in range(20):
                    await cache.set(f"k{i}", i)
                    assert await cache.get(f"k{i}") == i
                await cache.close()

            asyncio.run(run())
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert loud[0].name == "renderkit.cache"
    assert "redis unavailable" in loud[0].getMessage()
    assert "serving from memory" in loud[0].getMessage()
    assert fb.stats()["outages"] == 1


def test_fallback_recovery_logs_one_info(caplog: pytest.LogCaptureFixture) -> None:
    """The primary answering again is one INFO line on renderkit.cache, then silence."""
    clock = Clock()
    primary, _, fb = make_fallback(clock)
    cache = Cache(fb)
    primary.down = True
    for _ in range(5):
        cache.get("k")
    primary.down = False
    clock.now += 5
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            cache.get("k")
    assert [(r.name, r.levelname) for r in caplog.records] == [("renderkit.cache", "INFO")]
    assert "answers again" in caplog.records[0].getMessage()


def test_fallback_delete_reaches_both() -> None:
    """A delete removes the key from primary and fallback, so no stale value reappears."""
    clock = Clock()
    primary, memory, fb = make_fallback(clock)
    cache = Cache(fb)
    cache.set("k", 1)
    cache.delete("k")
    assert primary.get("k") is None
    assert memory.get("k") is None


def test_tiered_l1_hit_and_invalidation(renderkit_fakeredis: Any) -> None:
    """Hot keys come from L1; writes and deletes through this process update both levels."""
    l1 = MemoryBackend()
    tiered = TieredBackend(l1, RedisBackend(renderkit_fakeredis), l1_ttl=5)
    cache = Cache(tiered)
    cache.set("k", 1)
    renderkit_fakeredis.set("k", b"j2")  # another process writes
    assert cache.get("k") == 1  # still L1 within l1_ttl
    cache.set("k", 3)
    assert cache.get("k") == 3
    cache.delete("k")
    assert cache.get("k") is None
    renderkit_fakeredis.set("x", b"j9")
    assert cache.get("x") == 9
    assert l1.get("x") == b"j9"
    assert tiered.stats()["l1_hits"] >= 1
    with pytest.raises(ValueError, match="l1_ttl"):
        TieredBackend(l1, l1, l1_ttl=0)


# -- construction ----------------------------------------------------------------------


def test_from_url_memory_and_redis() -> None:
    """None gives memory; redis:// gives Redis behind a memory fallback with short timeouts."""
    assert isinstance(Cache.from_url(None).backend, MemoryBackend)
    cache = Cache.from_url("redis://127.0.0.1:1/0")
    assert isinstance(cache.backend, FallbackBackend)
    redis_backend = cache.backend.primary
    assert isinstance(redis_backend, RedisBackend)
    kwargs = redis_backend.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.25
    assert kwargs["socket_connect_timeout"] == 0.25
    assert cache.get("k", "d") == "d"  # nothing listens: a miss, not an error
    with pytest.raises(ConfigError, match="scheme"):
        Cache.from_url("http://x")
    assert isinstance(Cache.from_url("redis://h", hybrid=True).backend, TieredBackend)


def test_from_env_variants() -> None:
    """CACHE_TYPE, CACHE_ENABLED, CACHE_TTL and CACHE_NAMESPACE shape the cache."""
    assert isinstance(Cache.from_env({}).backend, MemoryBackend)
    c = Cache.from_env(
        {"REDIS_URL": "redis://localhost:6379/3", "CACHE_TTL": "5m", "CACHE_NAMESPACE": "app"}
    )
    assert isinstance(c.backend, FallbackBackend)
    assert (c.default_ttl, c.namespace) == (300.0, "app")
    assert isinstance(
        Cache.from_env({"REDIS_URL": "redis://h", "CACHE_TYPE": "memory"}).backend, MemoryBackend
    )
    assert isinstance(
        Cache.from_env({"REDIS_URL": "redis://h", "CACHE_TYPE": "hybrid"}).backend, TieredBackend
    )
    off = Cache.from_env({"CACHE_ENABLED": "false", "REDIS_URL": "redis://h"})
    assert isinstance(off.backend, NullBackend)
    assert off.get_or_set("k", lambda: 1) == 1
    assert off.get("k") is None
    assert isinstance(AsyncCache.from_env({"REDIS_URL": "redis://h"}).backend, FallbackBackend)


def test_from_env_reports_every_problem_without_secrets() -> None:
    """All bad variables are listed at once; the Redis password never appears."""
    with pytest.raises(ConfigError) as info:
        Cache.from_env(
            {
                "REDIS_URL": "http://:hunter2@host",
                "CACHE_TTL": "soon",
                "CACHE_TYPE": "disk",
                "CACHE_ENABLED": "perhaps",
                "CACHE_MAX_BYTES": "lots",
            }
        )
    names = {p.variable for p in info.value.errors}
    assert names == {"REDIS_URL", "CACHE_TTL", "CACHE_TYPE", "CACHE_ENABLED", "CACHE_MAX_BYTES"}
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Cache.from_env({"CACHE_TYPE": "redis"})


def test_from_env_reads_every_cache_setting() -> None:
    """CacheSettings declares the variables; each one reaches the backend it configures."""
    from renderkit.cache import CacheSettings

    cache = Cache.from_env(
        {
            "REDIS_URL": "redis://h:6379/1",
            "CACHE_TYPE": "Hybrid",  # case does not matter
            "CACHE_MAX_ENTRIES": "100",
            "CACHE_L1_TTL": "2s",
            "CACHE_PROBE_INTERVAL": "1m",
            "CACHE_REDIS_TIMEOUT": "100ms",
            "CACHE_NAMESPACE": "env",
        },
        namespace="code",  # arguments win over the environment
    )
    tiered = cache.backend
    assert isinstance(tiered, TieredBackend) and tiered.l1_ttl == 2.0
    assert isinstance(tiered.l2, FallbackBackend)
    assert tiered.l2.breaker.recovery_timeout == 60.0
    assert tiered.l2.fallback.max_entries == 100  # type: ignore[attr-defined]
    kwargs = tiered.l2.primary.client.connection_pool.connection_kwargs  # type: ignore[attr-defined]
    assert kwargs["socket_timeout"] == 0.1
    assert cache.namespace == "code"
    with pytest.raises(ConfigError) as info:
        Cache.from_env({"CACHE_MAX_ENTRIES": "0", "CACHE_TTL": "0s", "CACHE_L1_TTL": "-1s"})
    assert {p.variable for p in info.value.errors} == {
        "CACHE_MAX_ENTRIES",
        "CACHE_TTL",
        "CACHE_L1_TTL",
    }
    documented = {f.variable for f in CacheSettings.describe()}
    assert {"REDIS_URL", "CACHE_TYPE", "CACHE_PROBE_INTERVAL", "CACHE_MAX_BYTES"} <= documented


def test_bad_constructor_options() -> None:
    """Invalid sizes and jitter fail at construction with the option named."""
    with pytest.raises(ValueError, match="max_entries"):
        MemoryBackend(max_entries=0)
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryBackend(max_bytes=0)
    with pytest.raises(ValueError, match="ttl_jitter"):
        Cache(ttl_jitter=1.5)


async def test_health_registry_sees_degraded_cache_and_down_database() -> None:
    """Wired into Health: a cache on its fallback degrades (200); a down database fails (503)."""
    from renderkit.db import AsyncDatabase
    from renderkit.health import Health

    primary = Broken()
    primary.down = True
    cache = AsyncCache(FallbackBackend(primary, MemoryBackend(), failure_threshold=1))
    await cache.get("k")  # trips the breaker
    health = Health()
    health.add("cache", cache.health_check, critical=False)
    report = await health.run(fresh=True)
    assert report.status == "degraded"
    assert report.http_status == 200
    db = AsyncDatabase("postgresql://u@127.0.0.1:1/db")  # never opened: unhealthy
    health.add("database", db.health_check, critical=True)
    report = await health.run(fresh=True)
    assert report.status == "unhealthy"
    assert report.http_status == 503
