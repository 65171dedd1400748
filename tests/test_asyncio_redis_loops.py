"""asyncio Redis clients survive event-loop changes without leaking sockets (real Redis).

Starlette's ``TestClient(app)`` used without ``with`` runs every request in a fresh event
loop that is closed afterwards; app test suites do exactly that. Every renderkit object that
owns a ``redis.asyncio`` client (``RedisStore.from_url``, ``AsyncCache.from_url``,
``RateLimiter(redis_url)``) must then keep working, stay healthy (no spurious fallback),
and leave no unclosed socket behind: the suite runs with warnings as errors.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.integration

redis = pytest.importorskip("redis")
pytest.importorskip("limits")

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from renderkit.cache import AsyncCache, RedisBackend  # noqa: E402
from renderkit.ratelimit import RateLimiter, RateLimitMiddleware  # noqa: E402
from renderkit.sessions import RedisStore, SessionMiddleware  # noqa: E402

SECRET = "s" * 40


def _db_url(url: str, db: int = 11) -> str:
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{db}"


@pytest.fixture
def url(renderkit_redis_url: str) -> str:
    return _db_url(renderkit_redis_url)


@pytest.fixture
def ns() -> str:
    return f"rk-loops-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sync_redis(url: str, ns: str) -> Iterator[Any]:
    client = redis.Redis.from_url(url)
    yield client
    keys = list(client.scan_iter(match=f"*{ns}*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


def _collect_resource_warnings() -> list[str]:
    """Run the collector and return every ResourceWarning it (or a finalizer) raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def _app(url: str, ns: str) -> tuple[Starlette, RedisStore, AsyncCache, RateLimiter]:
    store = RedisStore.from_url(url, prefix=f"{ns}:session:")
    cache = AsyncCache.from_url(url, namespace=ns)
    limiter = RateLimiter(url, default="1000/minute", key_prefix=f"{ns}-rl")

    async def visits(request: Request) -> JSONResponse:
        request.session["visits"] = request.session.get("visits", 0) + 1
        return JSONResponse({"visits": request.session["visits"]})

    async def cached(request: Request) -> JSONResponse:
        hits = await cache.get("hits", 0) + 1
        await cache.set("hits", hits, ttl=60)
        return JSONResponse({"hits": hits})

    app = Starlette(routes=[Route("/visits", visits), Route("/cached", cached)])
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(SessionMiddleware, store=store, secret_key=SECRET)
    return app, store, cache, limiter


async def _health(cache: AsyncCache, store: RedisStore) -> list[str]:
    return [(await cache.health_check()).status, (await store.ahealth_check()).status]


def test_testclient_with_and_without_context_manager(url: str, ns: str, sync_redis: Any) -> None:
    """Five requests each in a new loop, then a `with` block: 200s, state kept, no leaks."""
    app, store, cache, limiter = _app(url, ns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = TestClient(app)  # no `with`: every request runs in its own event loop
        for number in range(1, 6):
            response = client.get("/visits")
            assert response.status_code == 200, response.text
            assert response.json() == {"visits": number}
            response = client.get("/cached")
            assert response.status_code == 200, response.text
            assert response.json() == {"hits": number}
        with TestClient(app, cookies=client.cookies) as same_loop:
            for number in range(6, 9):
                response = same_loop.get("/visits")
                assert response.status_code == 200, response.text
                assert response.json() == {"visits": number}
                assert same_loop.get("/cached").json() == {"hits": number}
            assert same_loop.get("/visits").headers.get("ratelimit-policy")

        assert asyncio.run(_health(cache, store)) == ["healthy", "healthy"]
    # No spurious outage on any side: the cache never fell back, the limiter counted shared.
    assert cache.backend.stats()["fallback_active"] is False, cache.backend.stats()
    # Clients of closed loops are dropped, not kept one per request ever made.
    assert store._async_clients is not None and len(store._async_clients.values()) <= 2
    assert not limiter.fallback_active
    assert limiter.health_check().status == "healthy"
    assert limiter.stats()["storage"] == "redis"
    assert list(sync_redis.scan_iter(match=f"{ns}-rl*")), "the limiter did not count in Redis"
    cache_keys = [k for k in sync_redis.scan_iter(match=f"*{ns}*hits*")]
    assert cache_keys, "the cache did not store in Redis"
    assert _collect_resource_warnings() == []
    store.close()
    limiter.close()
    del app, store, cache, limiter
    assert _collect_resource_warnings() == []


def test_cache_backend_follows_the_running_loop(url: str, ns: str) -> None:
    """One RedisBackend(asyncio=True) used from three asyncio.run() calls: no loop errors."""
    backend = RedisBackend.from_url(url, asyncio=True, prefix=f"{ns}:")
    first = backend.client

    async def roundtrip(value: bytes) -> bytes | None:
        await backend.aset("k", value, 30)
        return await backend.aget("k")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in range(3):
            assert asyncio.run(roundtrip(b"v%d" % n)) == b"v%d" % n
    assert backend.client is first  # the public attribute stays the first client
    assert _collect_resource_warnings() == []

    async def last() -> None:
        assert await backend.aget("k") == b"v2"
        await backend.adelete("k")
        await backend.aclose()

    asyncio.run(last())
    assert _collect_resource_warnings() == []


def test_loop_closed_without_shutdown_is_cleaned_on_next_use(url: str, ns: str) -> None:
    """A loop closed abruptly (no shutdown_asyncgens): its sockets close on the next loop."""
    store = RedisStore.from_url(url, prefix=f"{ns}:session:")
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(store.ahealth_check()).status == "healthy"
    finally:
        loop.close()  # no shutdown_asyncgens: nothing ran on this loop at its end
    del loop

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert asyncio.run(store.ahealth_check()).status == "healthy"
    assert _collect_resource_warnings() == []
    store.close()
    del store
    assert _collect_resource_warnings() == []


async def _close_then_hit(limiter: RateLimiter) -> bool:
    await limiter.aclose()  # this loop's client closes now ...
    return (await limiter.ahit("client-2")).allowed  # ... and a new one serves after it


def test_limiter_follows_the_running_loop(url: str, ns: str, sync_redis: Any) -> None:
    """RateLimiter(redis_url).ahit from several loops counts on, in Redis, without leaks."""
    limiter = RateLimiter(url, default="5/minute", key_prefix=f"{ns}-rl")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = [asyncio.run(limiter.ahit("client-1")) for _ in range(6)]
    answers = [(result.allowed, result.remaining) for result in results]
    assert answers == [(True, 4), (True, 3), (True, 2), (True, 1), (True, 0), (False, 0)]
    assert not limiter.fallback_active
    assert list(sync_redis.scan_iter(match=f"{ns}-rl*"))
    assert _collect_resource_warnings() == []

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert asyncio.run(_close_then_hit(limiter)) is True
    assert not limiter.fallback_active
    del limiter
    assert _collect_resource_warnings() == []


def test_cache_backend_in_two_threads_each_with_its_loop(url: str, ns: str) -> None:
    """Two threads, each running its own loop on one backend: each gets its own client."""
    import threading

    backend = RedisBackend.from_url(url, asyncio=True, prefix=f"{ns}:")
    clients: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    async def work(n: int) -> None:
        for i in range(30):
            await backend.aset(f"t{n}", b"%d" % i, 30)
            assert await backend.aget(f"t{n}") == b"%d" % i
            clients.setdefault(n, []).append(backend._bound()[0])
            await asyncio.sleep(0)

    def run(n: int) -> None:
        try:
            asyncio.run(work(n))
        except BaseException as exc:  # reported below
            errors.append(exc)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
    assert not errors, errors
    for n in (0, 1):
        assert all(client is clients[n][0] for client in clients[n])
    assert clients[0][0] is not clients[1][0]  # never another loop's client
    assert _collect_resource_warnings() == []
