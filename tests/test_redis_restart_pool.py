"""After a Redis restart every pooled connection of a renderkit client is dead once; the
client's reconnect-once policy must reach those connections, so the first command on each
succeeds instead of counting as an outage (it did not: the policy sat on the client, which
redis-py ignores when the client is given a pool)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _redis_topology import Server, free_ports, start_server
from renderkit._redis import aclose_client, close_client, redis_client

pytestmark = pytest.mark.integration

POOLED = 8  # connections held at once before the restart


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Server]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; .ci/run installs it")
    server = start_server(tmp_path / "r", free_ports(1)[0])
    yield server
    server.kill()


def _restart(server: Server) -> Server:
    server.kill()
    return start_server(server.directory, server.port)


@pytest.mark.parametrize("blocking_pool", [True, False], ids=["blocking-pool", "plain-pool"])
def test_sync_client_survives_a_restart_on_every_pooled_connection(
    own_redis: Server, blocking_pool: bool
) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    client = redis_client(url, asyncio=False, extra="redis", feature="test",
                          blocking_pool=blocking_pool, max_connections=POOLED)  # fmt: skip

    def wait(_: int) -> object:
        return client.blpop(["nothing"], timeout=0.2)

    with ThreadPoolExecutor(POOLED) as pool:
        # BLPOP holds its connection for 0.2 s, so the pool opens POOLED sockets.
        list(pool.map(wait, range(POOLED)))
        restarted = _restart(own_redis)
        try:
            answers = list(pool.map(wait, range(POOLED)))
            assert answers == [None] * POOLED
            assert client.ping() is True
        finally:
            restarted.kill()
    close_client(client)


@pytest.mark.parametrize("blocking_pool", [True, False], ids=["blocking-pool", "plain-pool"])
async def test_asyncio_client_survives_a_restart_on_every_pooled_connection(
    own_redis: Server, blocking_pool: bool
) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    client = redis_client(url, asyncio=True, extra="redis", feature="test",
                          blocking_pool=blocking_pool, max_connections=POOLED)  # fmt: skip
    await asyncio.gather(*(client.blpop(["nothing"], timeout=0.2) for _ in range(POOLED)))
    restarted = await asyncio.to_thread(_restart, own_redis)
    try:
        answers = await asyncio.gather(
            *(client.blpop(["nothing"], timeout=0.2) for _ in range(POOLED))
        )
        assert answers == [None] * POOLED
    finally:
        restarted.kill()
        await aclose_client(client)


def test_a_server_that_stays_down_still_raises(own_redis: Server) -> None:
    """One reconnect, not a loop: a Redis that is really gone surfaces as ConnectionError."""
    import redis.exceptions

    client = redis_client(f"redis://127.0.0.1:{own_redis.port}/0", asyncio=False,
                          extra="redis", feature="test", socket_connect_timeout=0.5)  # fmt: skip
    assert client.ping() is True
    own_redis.kill()
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    close_client(client)
