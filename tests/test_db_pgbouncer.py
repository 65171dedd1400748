"""renderkit.db behind PgBouncer in transaction mode (Debian's package, run by the test).

PgBouncer hands each transaction whichever server connection is free, so nothing may rely on
session state: no server-side prepared statements, no startup ``options``, the statement
timeout set per transaction, and LISTEN refused. Every test runs for both twins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

from _pg_servers import OwnPostgres, PgBouncer, Side, own_postgres

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture(params=["sync", "async"])
def side(request: pytest.FixtureRequest) -> Side:
    return Side(request.param)


@pytest.fixture(scope="module")
def server() -> Iterator[OwnPostgres]:
    with own_postgres() as pg:
        pg.start()
        yield pg


@pytest.fixture(scope="module")
def bouncer(server: OwnPostgres) -> Iterator[PgBouncer]:
    pgbouncer = PgBouncer(server.url, pool_size=2)
    try:
        yield pgbouncer
    finally:
        pgbouncer.stop()


@pytest.fixture
async def db(side: Side, bouncer: PgBouncer) -> Any:
    # Auto-detected: nothing in the URL says PgBouncer, the server's refusal of "options" does.
    database = side.make(bouncer.url, min_size=1, max_size=4, statement_timeout=0.5)
    await side.call(database, "open")
    yield database
    await side.call(database, "close")


def test_control_prepared_statements_break_behind_this_pgbouncer(bouncer: PgBouncer) -> None:
    """The set-up is really transaction pooling: plain prepared statements collide here."""
    conns = [psycopg.connect(bouncer.url, prepare_threshold=0, autocommit=True) for _ in range(3)]
    failures = 0
    try:
        for i in range(30):
            try:
                conns[i % 3].execute("SELECT %s::int", (i,)).fetchone()
            except psycopg.errors.DuplicatePreparedStatement:
                failures += 1
            except psycopg.errors.InvalidSqlStatementName:
                failures += 1
    finally:
        for conn in conns:
            conn.close()
    assert failures > 0


async def test_pgbouncer_is_detected_and_prepared_statements_stay_off(side: Side, db: Any) -> None:
    """A server refusing startup options switches the database to pooled mode by itself; then
    many repeats of one parametrised query over several clients never collide."""
    assert db.settings.pooled is True
    assert db.stats()["pooled_endpoint"] is True
    assert db._connect_kwargs()["prepare_threshold"] is None

    async def burst(n: int) -> list[Any]:
        return [await side.call(db, "fetch_one", "SELECT %s::int", (i,)) for i in range(n)]

    results = await asyncio.gather(*(burst(15) for _ in range(4)))
    assert all(rows == [(i,) for i in range(15)] for rows in results)


async def test_statement_timeout_holds_per_transaction_and_never_leaks(
    side: Side, db: Any, bouncer: PgBouncer
) -> None:
    """SET LOCAL statement_timeout bounds each statement; other clients of the same server
    connections keep the server default (nothing is left on the session)."""
    with pytest.raises(pg_errors.QueryCanceled):
        await side.call(db, "fetch_one", "SELECT pg_sleep(3)")
    assert await side.call(db, "fetch_one", "SHOW statement_timeout") == ("500ms",)
    attempts: list[int] = []
    assert await side.call(db, "run", side.work(attempts, "SHOW statement_timeout")) == "500ms"
    rows = await side.in_transaction(db, ["SHOW statement_timeout"])
    assert rows == [("500ms",)]
    for _ in range(6):
        with psycopg.connect(bouncer.url, prepare_threshold=None) as other:
            assert other.execute("SHOW statement_timeout").fetchone() == ("0",)
    assert await side.call(db, "check", 2.0) > 0
    assert (await side.call(db, "health_check")).status == "healthy"


@pytest.mark.parametrize("sql", ["LISTEN jobs", "  listen jobs", "-- wait\nLISTEN jobs"])
async def test_listen_is_refused_with_a_clear_error(side: Side, db: Any, sql: str) -> None:
    """LISTEN through a transaction pooler would never be notified: refused, saying why."""
    with pytest.raises(psycopg.NotSupportedError, match="pooled=False") as info:
        await side.call(db, "execute", sql)
    assert "transaction pooler" in str(info.value)
    assert await side.call(db, "fetch_one", "SELECT 1") == (1,)  # the database still works


async def test_explicit_pooled_false_is_respected(side: Side, bouncer: PgBouncer) -> None:
    """pooled=False is a decision, not a guess: PgBouncer's refusal is raised, not retried."""
    database = side.make(bouncer.url, pooled=False, startup_budget=10)
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
        await side.call(database, "open")
    assert database.stats()["open_attempts"] == 1


async def test_configured_pooled_mode_works_too(side: Side, bouncer: PgBouncer) -> None:
    """pooled=True (or ?pgbouncer=true) skips the detection round trip and behaves the same."""
    database = side.make(bouncer.url + "?pgbouncer=true", statement_timeout=0.25)
    await side.call(database, "open")
    try:
        assert database.stats()["open_attempts"] == 1
        with pytest.raises(pg_errors.QueryCanceled):
            await side.call(database, "fetch_one", "SELECT pg_sleep(2)")
        assert await side.call(database, "fetch_one", "SHOW statement_timeout") == ("250ms",)
    finally:
        await side.call(database, "close")


async def test_postgres_down_behind_pgbouncer_fails_fast_then_recovers(
    side: Side, server: OwnPostgres, bouncer: PgBouncer
) -> None:
    """PgBouncer accepts logins while Postgres is down and holds queries for its
    query_wait_timeout (1 s in this set-up, 120 s by default): the probe's SELECT 1 finds the
    outage, later queries fail fast, and the database serves again once Postgres is up."""
    from renderkit.errors import BackendUnavailable

    database = side.make(
        bouncer.url,
        min_size=1,
        max_size=2,
        pool_timeout=2,
        retry_attempts=1,
        reconnect_initial=0.05,
        reconnect_max=0.3,
    )
    await side.call(database, "open")
    try:
        assert await side.call(database, "fetch_one", "SELECT 1") == (1,)
        await asyncio.to_thread(server.stop)
        try:
            with pytest.raises(BackendUnavailable):
                await side.call(database, "fetch_one", "SELECT 1")
            assert database.stats()["reconnecting"] is True
            for _ in range(5):
                with pytest.raises(BackendUnavailable, match="reconnecting in the background"):
                    await side.call(database, "fetch_one", "SELECT 1")
        finally:
            await asyncio.to_thread(server.start)
        for _ in range(200):
            if (await side.call(database, "health_check")).status == "healthy":
                break
            await asyncio.sleep(0.1)
        assert await side.call(database, "fetch_one", "SELECT 2") == (2,)
    finally:
        await side.call(database, "close")
