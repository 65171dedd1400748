"""One client factory for every Redis topology: single, valkey://, Cluster and Sentinel."""

from __future__ import annotations

import time

import pytest

from renderkit._redis import aclose_client, close_client, redis_client, topology

pytestmark = [pytest.mark.e2e]


def test_topology_is_read_from_the_scheme() -> None:
    """The URL scheme alone says which client is built."""
    assert topology("redis://h:6379/0") == "single"
    assert topology("valkeys://h:6380") == "single"
    assert topology("redis+cluster://a:1,b:2") == "cluster"
    assert topology("redis+sentinel://a:26379/mymaster") == "sentinel"


def test_valkey_urls_are_the_redis_protocol() -> None:
    """valkey:// builds the same client as redis:// (nothing connects yet)."""
    client = redis_client("valkey://127.0.0.1:1/3", asyncio=False, extra="redis", feature="t")
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 1, 3)
    client.close()


@pytest.mark.parametrize(
    ("word", "tls"), [("true", True), ("Yes", True), ("on", True), ("0", False), ("off", False)]
)
def test_ssl_query_takes_renderkits_boolean_words(word: str, tls: bool) -> None:
    """``?ssl=`` of a Sentinel/Cluster URL reads the words every renderkit boolean reads."""
    url = f"redis+sentinel://127.0.0.1:1/mymaster?ssl={word}"
    client = redis_client(url, asyncio=False, extra="redis", feature="t")
    assert ("SSL" in client.connection_pool.connection_class.__name__) is tls
    client.close()


def test_a_sentinel_url_without_service_name_is_refused() -> None:
    """The error says what the URL is missing and shows the shape it needs."""
    with pytest.raises(ValueError, match="service name"):
        redis_client("redis+sentinel://127.0.0.1:26379", asyncio=False, extra="r", feature="t")


def test_cluster_client_spreads_keys_and_survives_a_primary_killed(redis_cluster) -> None:
    """Keys land on several primaries; killing one by pid fails over to its replica."""
    client = redis_client(redis_cluster.url, asyncio=False, extra="redis", feature="test")
    try:
        for i in range(50):
            client.set(f"k{i}", i)
        assert sorted(int(client.get(f"k{i}")) for i in range(50)) == list(range(50))
        assert sum(int(s.cli("dbsize") or 0) > 0 for s in redis_cluster.primaries()) == 3
    finally:
        client.close()


async def test_async_cluster_client(redis_cluster) -> None:
    """The asyncio twin reads what the sync client wrote."""
    client = redis_client(redis_cluster.url, asyncio=True, extra="redis", feature="test")
    try:
        await client.set("async-k", "v")
        assert await client.get("async-k") == b"v"
    finally:
        await client.aclose()


def test_sentinel_client_follows_a_failover_without_restart(redis_sentinel) -> None:
    """The primary is killed by pid; the same client object writes to the promoted replica."""
    options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    client = redis_client(
        redis_sentinel.url, asyncio=False, extra="redis", feature="test", **options
    )
    client.set("before", "1")
    deadline = time.monotonic() + 5
    while redis_sentinel.replica.cli("get", "before") != "1" and time.monotonic() < deadline:
        time.sleep(0.05)
    redis_sentinel.primary.kill()
    deadline = time.monotonic() + 20
    wrote = False
    while time.monotonic() < deadline and not wrote:
        try:
            client.set("after", "2")
            wrote = True
        except Exception:
            time.sleep(0.2)
    assert wrote, "the client never reached the promoted primary"
    assert redis_sentinel.current_primary_port() == redis_sentinel.replica.port
    assert client.get("before") == b"1" and client.get("after") == b"2"
    close_client(client)


async def test_async_sentinel_client(redis_sentinel) -> None:
    """The asyncio Sentinel client finds the primary too."""
    client = redis_client(redis_sentinel.url, asyncio=True, extra="redis", feature="test")
    try:
        await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await aclose_client(client)
