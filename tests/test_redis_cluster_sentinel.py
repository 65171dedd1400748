"""Cache, sessions and rate limits on a real Redis Cluster and a real Sentinel set, sync and async.

One matrix: every behaviour runs on both topologies and both sides. The servers are the
``redis_cluster`` (session-scoped, never killed here) and ``redis_sentinel`` fixtures; the
failover tests are in ``test_redis_failover.py``.
"""

from __future__ import annotations

import inspect
import uuid
from collections import Counter
from typing import Any

import pytest

from renderkit._redis import aclose_client, close_client, is_cluster, redis_client
from renderkit.cache import AsyncCache, Cache, RedisBackend
from renderkit.config import parse_redis_url
from renderkit.ratelimit import RateLimiter
from renderkit.sessions import RedisStore

pytestmark = [pytest.mark.e2e]

TOPOLOGIES = ["cluster", "sentinel"]
SIDES = ["sync", "async"]


@pytest.fixture(params=TOPOLOGIES)
def topology_url(request: pytest.FixtureRequest) -> str:
    """The URL of a real Redis Cluster or Sentinel set."""
    servers = request.getfixturevalue(f"redis_{request.param}")
    return str(servers.url)


async def call(obj: Any, name: str, side: str, *args: Any, **kwargs: Any) -> Any:
    """``obj.name(...)`` on the sync side, ``await obj.aname(...)`` on the async one."""
    if side == "sync":
        return getattr(obj, name)(*args, **kwargs)
    return await getattr(obj, "a" + name)(*args, **kwargs)


async def run(value: Any) -> Any:
    """Await what the async side returns; the sync side's value as it is."""
    return await value if inspect.isawaitable(value) else value


# -- URLs -----------------------------------------------------------------------------------


def test_config_accepts_every_topology_url() -> None:
    """parse_redis_url takes the URLs the clients take, and says what is wrong otherwise."""
    for url in (
        "redis+cluster://10.0.0.1:7000,10.0.0.2:7001",
        "redis+sentinel://:p%40ss@10.0.0.1:26379,10.0.0.2:26379/mymaster/2",
        "valkey://kv:6379/0",
        "valkeys://kv:6380",
    ):
        assert parse_redis_url(url) == url
    with pytest.raises(ValueError, match="service name"):
        parse_redis_url("redis+sentinel://10.0.0.1:26379")
    with pytest.raises(ValueError, match="numeric port"):
        parse_redis_url("redis+cluster://10.0.0.1:7000,:7001")
    with pytest.raises(ValueError, match="must be a number"):
        parse_redis_url("redis+sentinel://10.0.0.1:26379/mymaster/zero")


def test_a_bad_cluster_url_names_the_variable() -> None:
    """Through the settings loader the error names the variable that held the URL."""
    from renderkit.config import ConfigError
    from renderkit.ratelimit._limiter import RateLimitSettings

    with pytest.raises(ConfigError, match="REDIS_URL"):
        RateLimitSettings.load({"REDIS_URL": "redis+cluster://a:1,b:port"})


# -- cache ----------------------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
async def test_cache_on_topology(topology_url: str, side: str) -> None:
    """get/set/delete/clear and health through Cache.from_url on a cluster or Sentinel."""
    cls = Cache if side == "sync" else AsyncCache
    cache: Any = cls.from_url(topology_url, fallback=False, namespace=uuid.uuid4().hex[:6])
    try:
        for i in range(30):  # spread over the cluster's slots
            await run(cache.set(f"k{i}", {"i": i}, ttl=60))
        got = [await run(cache.get(f"k{i}")) for i in range(30)]
        assert got == [{"i": i} for i in range(30)]
        assert await run(cache.delete("k0")) is True
        assert await run(cache.get("k0")) is None
        assert await run(cache.clear()) == 29
        assert await run(cache.get("k1")) is None
        health = await run(cache.health_check())
        assert health.status == "healthy", health
    finally:
        await run(cache.close())


@pytest.mark.parametrize("side", SIDES)
async def test_cache_given_a_cluster_client(redis_cluster: Any, side: str) -> None:
    """A RedisCluster built by the app works as the backend's client, sync or asyncio."""
    client = redis_client(redis_cluster.url, asyncio=side == "async", extra="redis", feature="t")
    assert is_cluster(client)
    backend = RedisBackend(client, prefix=f"given{uuid.uuid4().hex[:6]}:")
    cache: Any = (Cache if side == "sync" else AsyncCache)(backend)
    await run(cache.set("a", [1, 2], ttl=30))
    assert await run(cache.get("a")) == [1, 2]
    assert await run(cache.clear()) == 1
    if side == "sync":
        close_client(client)
    else:
        await aclose_client(client)


# -- sessions -------------------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
async def test_sessions_and_log_out_everywhere(topology_url: str, side: str) -> None:
    """Save, merge, touch, delete, and deleting all of one user's sessions across slots."""
    store = RedisStore.from_url(topology_url, prefix=f"s{uuid.uuid4().hex[:6]}:")
    user = f"user-{uuid.uuid4().hex[:6]}"
    try:
        ids = [uuid.uuid4().hex for _ in range(12)]  # on a cluster: many slots
        for sid in ids:
            assert await call(store, "save", side, sid, {"n": 1}, user_id=user, ttl=60) == 1
        other = uuid.uuid4().hex
        await call(store, "save", side, other, {"n": 2}, user_id="someone-else", ttl=60)
        version = await call(store, "merge", side, ids[0], {"m": 2}, user_id=user, ttl=60)
        assert version == 2
        record = await call(store, "load", side, ids[0])
        assert record is not None and record.data == {"n": 1, "m": 2}
        assert record.user_id == user
        assert await call(store, "touch", side, ids[1], ttl=120) is True
        assert await call(store, "delete", side, ids[2]) is True
        assert await call(store, "delete_user_sessions", side, user) == 11
        for sid in ids:
            assert await call(store, "load", side, sid) is None
        kept = await call(store, "load", side, other)
        assert kept is not None and kept.data == {"n": 2}
        assert (await call(store, "health_check", side)).status == "healthy"
    finally:
        await store.aclose()


@pytest.mark.parametrize("side", SIDES)
async def test_a_session_moved_to_another_user_leaves_the_first_index(
    topology_url: str, side: str
) -> None:
    """Re-owning a session takes it out of the old user's index (log-out of A spares it)."""
    store = RedisStore.from_url(topology_url, prefix=f"o{uuid.uuid4().hex[:6]}:")
    try:
        sid = uuid.uuid4().hex
        await call(store, "save", side, sid, {"a": 1}, user_id="alice", ttl=60)
        await call(store, "save", side, sid, {"a": 1}, version=1, user_id="bob", ttl=60)
        assert await call(store, "delete_user_sessions", side, "alice") == 0
        assert await call(store, "load", side, sid) is not None
        assert await call(store, "delete_user_sessions", side, "bob") == 1
    finally:
        await store.aclose()


def test_cluster_user_index_is_one_hash_tagged_key(redis_cluster: Any) -> None:
    """The index key carries the user as its hash tag; no script ever spans two slots."""
    store = RedisStore.from_url(redis_cluster.url, prefix="tag:")
    client = redis_client(redis_cluster.url, asyncio=False, extra="redis", feature="t")
    try:
        store.save(uuid.uuid4().hex, {"x": 1}, user_id="u{1}", ttl=60)
        assert client.smembers("tag:user:{u{1}}")
        assert client.pttl("tag:user:{u{1}}") > 0
    finally:
        store.close()
        close_client(client)


# -- rate limits ----------------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
async def test_rate_limits_on_topology(topology_url: str, side: str) -> None:
    """A 3/minute limit allows three hits and refuses the fourth, and reset() forgets them."""
    limiter = RateLimiter(topology_url, default="3/minute", key_prefix=f"rl{uuid.uuid4().hex[:6]}")
    try:
        results = [await call(limiter, "hit", side, "client-1") for _ in range(4)]
        assert [r.allowed for r in results] == [True, True, True, False]
        assert limiter.stats()["storage"] == "redis" and not limiter.fallback_active
        assert (await call(limiter, "hit", side, "client-2")).allowed
        limiter.reset("client-1")
        assert (await call(limiter, "hit", side, "client-1")).allowed
    finally:
        await limiter.aclose()


@pytest.mark.parametrize("side", SIDES)
async def test_rate_limiter_given_a_cluster_client(redis_cluster: Any, side: str) -> None:
    """A RedisCluster client passed as the storage counts in the cluster."""
    client = redis_client(redis_cluster.url, asyncio=side == "async", extra="redis", feature="t")
    limiter = RateLimiter(client, default="2/minute", key_prefix=f"given{uuid.uuid4().hex[:6]}")
    results = [await call(limiter, "hit", side, "k") for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert not limiter.fallback_active
    if side == "sync":
        close_client(client)
    else:
        await aclose_client(client)


def test_limits_of_different_identities_are_charged_per_identity(redis_cluster: Any) -> None:
    """Two identities in one call land in two slots and are still counted exactly."""
    from renderkit.ratelimit._store_sync import RedisCounts, cluster_key

    assert (
        cluster_key("default:GET /a|ip:1.2.3.4:10/60")
        == "{ip:1.2.3.4}default:GET /a|ip:1.2.3.4:10/60"
    )
    assert cluster_key("client-1:3/60").startswith("{client-1}")
    client = redis_client(redis_cluster.url, asyncio=False, extra="redis", feature="t")
    from renderkit.ratelimit._counting import Charge

    counts = RedisCounts(client, "fixed-window", prefix=f"mix{uuid.uuid4().hex[:6]}", timeout=1)
    charges = [Charge("r|ip:1:2/60", 2, 60), Charge("r|user:9:1/60", 1, 60)]
    assert counts.acquire(charges)[0] is True
    allowed, tallies = counts.acquire(charges)
    assert allowed is False
    assert tallies[1][0] == 1  # user:9 refused, its count untouched by the refusal
    close_client(client)


def _commands(cluster: Any) -> Counter[str]:
    """Calls per command, summed over every node (INFO COMMANDSTATS is per node)."""
    total: Counter[str] = Counter()
    for server in cluster.primaries():  # replicas replay script effects as MULTI/EXEC
        for line in server.cli("info", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, _, rest = line.partition(":")
                total[name.removeprefix("cmdstat_")] += int(rest.split(",")[0].split("=")[1])
    for noise in ("info", "replconf", "ping", "psync", "cluster|nodes"):
        total.pop(noise, None)  # the counting itself, replication, health probes
    return total


def test_a_rate_limit_check_is_one_round_trip_on_the_cluster(redis_cluster: Any) -> None:
    """A request under a route limit and the default limit sends one EVALSHA, nothing else."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from renderkit.ratelimit import RateLimitMiddleware, limit

    limiter = RateLimiter(redis_cluster.url, default="1000/minute;5000/hour")

    @limit("100/minute;1000/day", limiter=limiter)
    async def page(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/page", page)])
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    with TestClient(app) as client:
        for _ in range(3):  # warm-up: the client learns the slots, the script gets loaded
            assert client.get("/page").status_code == 200
        before = _commands(redis_cluster)
        for _ in range(20):
            response = client.get("/page")
            assert response.status_code == 200
        sent = _commands(redis_cluster) - before
    # Commands a script runs count too (INFO COMMANDSTATS sees them): what the client sent is
    # the EVALSHA alone, one per request, and that one script charged both counters.
    import re

    from renderkit.ratelimit._counting import LUA

    in_script = {name.lower() for name in re.findall(r"redis\.call\('(\w+)'", LUA)}
    assert sent.pop("evalsha") == 20, sent
    assert set(sent) <= in_script, sent  # nothing the script does not run itself
    assert sent["hmget"] == 40  # two limits (route and default) read in the one script
    assert "ratelimit-policy" in {k.lower() for k in response.headers}


async def test_a_connection_closed_under_a_command_is_a_connection_error(
    redis_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py's asyncio cluster closes every connection after one fails; the commands caught
    mid-way raise AttributeError there. Ours raise ConnectionError, which fallbacks handle."""
    import redis.asyncio.cluster
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = redis_client(redis_cluster.url, asyncio=True, extra="redis", feature="t")
    closed = AttributeError("'NoneType' object has no attribute 'writelines'")

    async def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise closed

    monkeypatch.setattr(redis.asyncio.cluster.RedisCluster, "execute_command", broken)
    with pytest.raises(RedisConnectionError, match="closed under this command") as caught:
        await client.get("k")
    assert caught.value.__cause__ is closed
    monkeypatch.undo()
    await aclose_client(client)


@pytest.mark.parametrize("side", SIDES)
async def test_session_store_given_a_cluster_client(redis_cluster: Any, side: str) -> None:
    """RedisStore(RedisCluster) serves its side (a sync client: async calls in a thread)."""
    client = redis_client(redis_cluster.url, asyncio=side == "async", extra="redis", feature="t")
    store = RedisStore(client, prefix=f"g{uuid.uuid4().hex[:6]}:")
    ids = [uuid.uuid4().hex for _ in range(5)]
    for sid in ids:
        await call(store, "save", side, sid, {"k": sid}, user_id="ada", ttl=60)
    assert (await call(store, "load", side, ids[0])).data == {"k": ids[0]}
    assert await call(store, "delete_user_sessions", side, "ada") == 5
    if side == "sync":
        assert await store.adelete_user_sessions("ada") == 0  # the thread path
        close_client(client)
    else:
        await aclose_client(client)


def test_rate_limiter_given_limits_cluster_storage(redis_cluster: Any) -> None:
    """limits' own RedisClusterStorage works too: renderkit's script on its cluster client."""
    from limits.storage import storage_from_string

    storage = storage_from_string(redis_cluster.url)
    limiter = RateLimiter(storage, default="2/minute", key_prefix=f"lim{uuid.uuid4().hex[:6]}")
    assert [limiter.hit("k").allowed for _ in range(3)] == [True, True, False]
    assert not limiter.fallback_active
