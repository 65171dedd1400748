"""renderkit.db with read replicas: a real streaming replica made with pg_basebackup.

What the app marks ``read_only`` goes to a replica; while the replica is down it goes to the
primary, health says ``degraded`` naming the replica, and the replica is used again once it
answers. Every test runs for both twins.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from _pg_servers import OwnPostgres, Side, own_postgres

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

IN_RECOVERY = "SELECT pg_is_in_recovery()"


@pytest.fixture(params=["sync", "async"])
def side(request: pytest.FixtureRequest) -> Side:
    return Side(request.param)


@pytest.fixture(scope="module")
def primary() -> Iterator[OwnPostgres]:
    with own_postgres() as pg:
        pg.start()
        yield pg


@pytest.fixture(scope="module")
def replica(primary: OwnPostgres) -> Iterator[OwnPostgres]:
    standby = primary.replica()
    try:
        with psycopg.connect(standby.url, autocommit=True) as conn:
            assert conn.execute(IN_RECOVERY).fetchone() == (True,), "not a standby"
        yield standby
    finally:
        standby.destroy()


@pytest.fixture
async def db(side: Side, primary: OwnPostgres, replica: OwnPostgres) -> Any:
    if not replica.running():
        await asyncio.to_thread(replica.start)
    database = side.make(
        primary.url,
        replicas=[replica.url],
        min_size=1,
        max_size=2,
        replica_timeout=0.5,
        pool_timeout=2,
        reconnect_initial=0.05,
        reconnect_max=0.5,
    )
    await side.call(database, "open")
    yield database
    await side.call(database, "close")


async def _until(side: Side, db: Any, status: str) -> Any:
    for _ in range(100):
        result = await side.call(db, "health_check")
        if result.status == status:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"health never became {status}: {result.message}")


async def test_read_only_work_goes_to_the_replica(side: Side, db: Any) -> None:
    """fetch_one/fetch_all/run/transaction with read_only=True are served by the standby;
    everything else by the primary."""
    assert await side.call(db, "fetch_one", IN_RECOVERY) == (False,)
    assert await side.call(db, "fetch_one", IN_RECOVERY, read_only=True) == (True,)
    assert await side.call(db, "fetch_all", IN_RECOVERY, read_only=True) == [(True,)]
    assert await side.call(db, "run", side.work([], IN_RECOVERY), read_only=True) is True
    assert await side.in_transaction(db, [IN_RECOVERY], read_only=True) == [(True,)]
    assert await side.in_transaction(db, [IN_RECOVERY]) == [(False,)]
    stats = db.stats()
    assert stats["replica_queries"] == 4
    assert stats["replica_fallbacks"] == 0
    assert stats["replicas"]["database-replica-1"]["state"] == "closed"
    health = await side.call(db, "health_check")
    assert health.status == "healthy"
    facts = health.details["replicas"]["database-replica-1"]
    assert facts["status"] == "healthy"
    assert facts["standby"] is True
    assert facts["lag_s"] is not None and facts["lag_s"] >= 0


async def test_writes_reach_the_replica_and_a_write_marked_read_only_fails(
    side: Side, db: Any
) -> None:
    """Rows written on the primary stream to the replica; a write sent with read_only=True is
    refused by the standby instead of silently running on the primary."""
    table = f"rk_rep_{uuid.uuid4().hex[:8]}"
    await side.call(db, "execute", f"CREATE TABLE {table} (x int)")
    try:
        await side.call(db, "execute", f"INSERT INTO {table} VALUES (1), (2)")
        count = f"SELECT count(*) FROM {table}"
        for _ in range(100):  # replication is asynchronous: bounded wait for the standby
            try:
                row = await side.call(db, "fetch_one", count, read_only=True)
            except psycopg.errors.UndefinedTable:
                row = None
            if row == (2,):
                break
            await asyncio.sleep(0.05)
        assert row == (2,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            insert = f"INSERT INTO {table} VALUES (3) RETURNING x"
            await side.call(db, "fetch_one", insert, read_only=True)
        assert await side.call(db, "fetch_one", count) == (2,)
        assert db.stats()["replica_fallbacks"] == 0
    finally:
        await side.call(db, "execute", f"DROP TABLE {table}")


async def test_replica_down_falls_back_to_the_primary_then_returns(
    side: Side, db: Any, replica: OwnPostgres
) -> None:
    """A stopped replica: reads go to the primary, health is degraded naming the replica;
    restarted, health recovers and reads go back to it."""
    assert await side.call(db, "fetch_one", IN_RECOVERY, read_only=True) == (True,)
    await asyncio.to_thread(replica.stop)
    for _ in range(5):
        assert await side.call(db, "fetch_one", IN_RECOVERY, read_only=True) == (False,)
    assert await side.in_transaction(db, [IN_RECOVERY], read_only=True) == [(False,)]
    stats = db.stats()
    assert stats["replica_fallbacks"] >= 1
    assert stats["replicas"]["database-replica-1"]["state"] != "closed"
    health = await _until(side, db, "degraded")
    assert "database-replica-1" in health.message
    assert health.details["replicas"]["database-replica-1"]["status"] == "unhealthy"

    await asyncio.to_thread(replica.start)
    await _until(side, db, "healthy")
    assert await side.call(db, "fetch_one", IN_RECOVERY, read_only=True) == (True,)


async def test_open_with_the_replica_down_still_serves(
    side: Side, primary: OwnPostgres, replica: OwnPostgres
) -> None:
    """A replica that is down at boot does not hold up open(); reads use the primary."""
    if replica.running():
        await asyncio.to_thread(replica.stop)
    database = side.make(primary.url, replicas=[replica.url], min_size=1, replica_timeout=0.3)
    await side.call(database, "open")
    try:
        assert await side.call(database, "fetch_one", IN_RECOVERY, read_only=True) == (False,)
        assert (await side.call(database, "health_check")).status == "degraded"
    finally:
        await side.call(database, "close")
        await asyncio.to_thread(replica.start)


async def test_primary_down_read_only_work_still_served_by_the_replica(
    side: Side, db: Any, primary: OwnPostgres
) -> None:
    """With the primary stopped, reads marked read_only keep working from the standby while
    everything else fails fast; health is unhealthy (the primary is critical), listing the
    replica as healthy. The primary back, writes work again without a restart."""
    from renderkit.errors import BackendUnavailable

    await asyncio.to_thread(primary.stop)
    try:
        assert await side.call(db, "fetch_one", IN_RECOVERY, read_only=True) == (True,)
        with pytest.raises(BackendUnavailable):
            await side.call(db, "fetch_one", IN_RECOVERY)
        assert await side.call(db, "fetch_all", IN_RECOVERY, read_only=True) == [(True,)]
        health = await side.call(db, "health_check")
        assert health.status == "unhealthy"
        assert health.details["replicas"]["database-replica-1"]["status"] == "healthy"
    finally:
        await asyncio.to_thread(primary.start)
    await _until(side, db, "healthy")
    assert await side.call(db, "fetch_one", IN_RECOVERY) == (False,)
