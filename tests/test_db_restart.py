"""renderkit.db against its own Postgres: started late, down past the boot budget, restarted.

Every test runs for both twins. The cluster is this module's own (free port, stopped by pid
through pg_ctl); the shared server is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import psutil
import psycopg
import pytest

from _pg_servers import OwnPostgres, Side, backends, backends_after_close, own_postgres
from renderkit.errors import BackendUnavailable
from renderkit.health import Health

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture(params=["sync", "async"])
def side(request: pytest.FixtureRequest) -> Side:
    return Side(request.param)


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnPostgres]:
    with own_postgres() as pg:
        yield pg


async def _ensure(pg: OwnPostgres, up: bool) -> None:
    if pg.running() != up:
        await asyncio.to_thread(pg.start if up else pg.stop)


async def _until_healthy(side: Side, db: Any, rounds: int = 300) -> Any:
    """Poll health (bounded) until the background reconnect has found Postgres."""
    for _ in range(rounds):
        result = await side.call(db, "health_check")
        if result.status == "healthy":
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"{db.name} never became healthy: {result.message}")


def _reconnect_threads(name: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == f"{name}-reconnect"]


async def test_open_waits_for_a_late_postgres_then_survives_a_restart(
    side: Side, own_pg: OwnPostgres
) -> None:
    """open() retries until Postgres is up; after a restart run() succeeds, health recovers."""
    await _ensure(own_pg, up=False)
    app = f"rk-restart-{side}"
    db = side.make(
        own_pg.url,
        application_name=app,
        min_size=2,
        max_size=4,
        startup_budget=30,
        reconnect_initial=0.2,
        reconnect_max=1.0,
        retry_backoff=0.2,
        retry_backoff_max=1.0,
        pool_timeout=5,
    )
    opener = asyncio.create_task(side.call(db, "open"))
    await asyncio.sleep(1.0)  # open() is retrying against a closed port meanwhile
    await _ensure(own_pg, up=True)
    await asyncio.wait_for(opener, 40)
    assert db.stats()["open_attempts"] >= 2
    assert db.stats()["reconnecting"] is False
    try:
        assert await side.call(db, "fetch_one", "SELECT 1") == (1,)
        assert (await side.call(db, "health_check")).status == "healthy"

        await _ensure(own_pg, up=False)
        health = await side.call(db, "health_check")
        assert health.status == "unhealthy"
        assert "unreachable" in health.message

        await _ensure(own_pg, up=True)
        attempts: list[int] = []
        assert await side.call(db, "run", side.work(attempts, "SELECT 40 + 2")) == 42
        assert (await side.call(db, "health_check")).status == "healthy"
        for _ in range(20):
            assert await side.call(db, "fetch_one", "SELECT 1") == (1,)
        # No leaks: at most the pool's size of backends carry our application_name.
        assert 1 <= backends(own_pg.url, app) <= 4
        assert db.stats()["pool_size"] <= 4
    finally:
        await side.call(db, "close")
    assert backends_after_close(own_pg.url, app) == 0


async def test_boot_that_waits_serves_without_postgres_then_reconnects(
    side: Side, own_pg: OwnPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """Postgres down past the budget: open() returns, queries fail fast, health is unhealthy,
    the background reconnect finds Postgres and the next query works, without a restart."""
    await _ensure(own_pg, up=False)
    app = f"rk-boot-{side}"
    db = side.make(
        own_pg.url,
        application_name=app,
        min_size=1,
        max_size=2,
        startup_budget=0.5,
        reconnect_initial=0.05,
        reconnect_max=0.2,
    )
    health = Health(cache_ttl=0)
    health.add("database", db.health_check, critical=True)
    with caplog.at_level(logging.INFO, logger="renderkit.db"):
        await side.call(db, "open")  # returns: the app boots and serves what needs no database
        try:
            assert db.stats()["reconnecting"] is True
            with pytest.raises(BackendUnavailable, match="reconnecting in the background"):
                await side.call(db, "fetch_one", "SELECT 1")
            with pytest.raises(BackendUnavailable):
                await side.call(db, "run", side.work([], "SELECT 1"))
            report = await health.run()
            assert (report.status, report.http_status) == ("unhealthy", 503)
            await side.call(db, "open")  # a second open() while reconnecting changes nothing
            assert len(_reconnect_threads(db.name)) <= 1

            await _ensure(own_pg, up=True)
            await _until_healthy(side, db)
            assert await side.call(db, "fetch_one", "SELECT 2") == (2,)
            assert db.stats()["reconnecting"] is False
            assert (await health.run()).status == "healthy"
        finally:
            await side.call(db, "close")
    gave_up = [r for r in caplog.records if "start-up budget" in r.getMessage()]
    recovered = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert [r.levelname for r in gave_up] == ["ERROR"]  # once per outage, not per attempt
    assert len(recovered) == 1
    assert backends_after_close(own_pg.url, app) == 0


async def test_on_startup_timeout_raise_fails_the_boot(side: Side, own_pg: OwnPostgres) -> None:
    """on_startup_timeout='raise' re-raises the connect error and starts no background work."""
    await _ensure(own_pg, up=False)
    db = side.make(
        own_pg.url, startup_budget=0.3, reconnect_initial=0.05, on_startup_timeout="raise"
    )
    with pytest.raises(psycopg.OperationalError):
        await side.call(db, "open")
    assert db.stats()["reconnecting"] is False
    assert not _reconnect_threads(db.name)
    with pytest.raises(BackendUnavailable, match="not open"):
        await side.call(db, "fetch_one", "SELECT 1")


async def test_close_stops_the_background_reconnect(side: Side, own_pg: OwnPostgres) -> None:
    """close() during the background reconnect ends it: no pool appears afterwards, and a
    later open() starts afresh."""
    await _ensure(own_pg, up=False)
    app = f"rk-closed-{side}"
    db = side.make(
        own_pg.url,
        application_name=app,
        startup_budget=0.3,
        reconnect_initial=5.0,
        reconnect_max=5.0,
    )
    await side.call(db, "open")
    assert db.stats()["reconnecting"] is True
    await side.call(db, "close")  # wakes the reconnect loop out of its 5 s sleep
    assert not _reconnect_threads(db.name)
    assert db.stats()["reconnecting"] is False
    await _ensure(own_pg, up=True)
    assert db.stats()["open"] is False
    assert backends_after_close(own_pg.url, app) == 0
    with pytest.raises(BackendUnavailable, match="not open"):
        await side.call(db, "fetch_one", "SELECT 1")
    await side.call(db, "open")  # the same object opens again once Postgres is there
    try:
        assert await side.call(db, "fetch_one", "SELECT 1") == (1,)
    finally:
        await side.call(db, "close")


async def _unless_hung(call: Any, patience: float = 8.0) -> Any:
    """Await ``call``; a hang fails the test instead of raising TimeoutError. ``patience`` is
    ten times the probe's deadline: it catches a probe that waits for psycopg's own 10 s
    cancellation, not a slow machine."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=patience)
    if not done:
        task.cancel()
        raise AssertionError("the call hung on the frozen server")
    return task.result()


def _signal_cluster(pg: OwnPostgres, sig: signal.Signals) -> None:
    with open(os.path.join(pg.data, "postmaster.pid")) as fh:
        postmaster = psutil.Process(int(fh.readline()))
    for process in [postmaster, *postmaster.children(recursive=True)]:
        process.send_signal(sig)


async def test_check_is_bounded_on_a_frozen_server(side: Side, own_pg: OwnPostgres) -> None:
    """A server that accepts nothing and refuses nothing (SIGSTOP) cannot hang check() or
    health: both twins give up at the same client-side deadline, then recover on SIGCONT."""
    await _ensure(own_pg, up=True)
    db = side.make(own_pg.url, min_size=1, max_size=2, application_name=f"rk-frozen-{side}")
    await side.call(db, "open")
    try:
        assert (await side.call(db, "health_check")).status == "healthy"
        _signal_cluster(own_pg, signal.SIGSTOP)
        try:
            with pytest.raises(TimeoutError):
                await _unless_hung(side.call(db, "check", 0.3))
            health = await _unless_hung(side.call(db, "health_check"))
            assert health.status == "unhealthy"
            assert "unreachable" in health.message  # TimeoutError, or PoolTimeout once the
            # frozen probe still holds a connection
        finally:
            _signal_cluster(own_pg, signal.SIGCONT)
        await _until_healthy(side, db)
        assert await side.call(db, "fetch_one", "SELECT 1") == (1,)
    finally:
        await side.call(db, "close")


async def test_a_password_with_url_delimiters_reaches_the_server(
    side: Side, own_pg: OwnPostgres
) -> None:
    """A password holding @ # / ? % authenticates once percent-encoded; raw, it is refused
    with the fix and never echoed (scram-sha-256 for this role on the test's own cluster)."""
    from urllib.parse import quote

    from renderkit.errors import ConfigError

    await _ensure(own_pg, up=True)
    password = "p@ss#/?w%rd:1"
    with psycopg.connect(own_pg.url, autocommit=True) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute("DROP ROLE IF EXISTS rk_pw")
        conn.execute(f"CREATE ROLE rk_pw LOGIN PASSWORD '{password}'")
    hba = os.path.join(own_pg.data, "pg_hba.conf")
    with open(hba) as fh:
        original = fh.read()
    with open(hba, "w") as fh:
        fh.write("host all rk_pw 127.0.0.1/32 scram-sha-256\n" + original)
    await asyncio.to_thread(own_pg.reload)
    try:
        good = f"postgres://rk_pw:{quote(password, safe='')}@127.0.0.1:{own_pg.port}/postgres"
        db = side.make(good, min_size=1, max_size=1)
        await side.call(db, "open")
        try:
            assert await side.call(db, "fetch_one", "SELECT current_user") == ("rk_pw",)
        finally:
            await side.call(db, "close")
        wrong = good.replace("%40", "%41")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            await side.call(side.make(wrong, startup_budget=5), "open")  # permanent: at once
        raw = f"postgres://rk_pw:{password}@127.0.0.1:{own_pg.port}/postgres"
        with pytest.raises(ConfigError, match="percent-encode") as info:
            side.make(raw)
        assert "ss#/?w" not in str(info.value)
    finally:
        with open(hba, "w") as fh:
            fh.write(original)
        await asyncio.to_thread(own_pg.reload)


async def test_an_app_boots_and_serves_without_postgres(
    side: Side, own_pg: OwnPostgres, renderkit_client: Any
) -> None:
    """A Starlette app whose lifespan opens the database boots with Postgres down: routes that
    need no database answer 200, a route that does gets BackendUnavailable (503 here), /health
    says 503; once Postgres starts, the same process serves the database route."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    await _ensure(own_pg, up=False)
    db = side.make(own_pg.url, startup_budget=0.3, reconnect_initial=0.05, reconnect_max=0.2)
    health = Health(cache_ttl=0)
    health.add("database", db.health_check, critical=True)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        await side.call(db, "open")
        yield
        await side.call(db, "close")

    async def ping(request: Request) -> Response:
        return PlainTextResponse("pong")

    async def one(request: Request) -> Response:
        try:
            row = await side.call(db, "fetch_one", "SELECT 1")
        except BackendUnavailable as exc:
            return PlainTextResponse(str(exc), status_code=503)
        return JSONResponse(list(row))

    routes = [Route("/ping", ping), Route("/one", one), *health.routes(prefix="/health")]
    client = await renderkit_client(Starlette(routes=routes, lifespan=lifespan))
    assert (await client.get("/ping")).status_code == 200
    down = await client.get("/one")
    assert down.status_code == 503
    assert "reconnecting in the background" in down.text
    assert (await client.get("/health")).status_code == 503
    await _ensure(own_pg, up=True)
    for _ in range(300):
        if (await client.get("/health")).status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/one")).json() == [1]


async def test_an_outage_after_open_fails_fast_then_recovers(
    side: Side, own_pg: OwnPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """Postgres stops under an open pool: the first query finds it down (a direct connect
    fails too) and raises BackendUnavailable; the next ones raise at once without asking the
    pool; the background reconnect finds Postgres again and queries work, no restart."""
    await _ensure(own_pg, up=True)
    db = side.make(
        own_pg.url,
        application_name=f"rk-outage-{side}",
        min_size=1,
        max_size=2,
        pool_timeout=1,
        retry_backoff=0.01,
        reconnect_initial=0.05,
        reconnect_max=0.2,
    )
    await side.call(db, "open")
    try:
        assert await side.call(db, "fetch_one", "SELECT 1") == (1,)
        with caplog.at_level(logging.INFO, logger="renderkit.db"):
            await _ensure(own_pg, up=False)
            with pytest.raises(BackendUnavailable) as info:
                await side.call(db, "fetch_one", "SELECT 1")
            assert isinstance(info.value.__cause__, Exception)  # the pool's own error
            assert db.stats()["reconnecting"] is True
            asked = db.stats()["pool"].get("requests_num", 0)
            for _ in range(20):
                with pytest.raises(BackendUnavailable, match="reconnecting in the background"):
                    await side.call(db, "fetch_one", "SELECT 1")
            with pytest.raises(BackendUnavailable):
                await side.call(db, "run", side.work([], "SELECT 1"))
            assert db.stats()["pool"].get("requests_num", 0) == asked  # failed fast
            assert (await side.call(db, "health_check")).status == "unhealthy"
            await _ensure(own_pg, up=True)
            await _until_healthy(side, db)
            assert await side.call(db, "fetch_one", "SELECT 3") == (3,)
        began = [r for r in caplog.records if "queries raise BackendUnavailable" in r.message]
        back = [r for r in caplog.records if "reachable again" in r.getMessage()]
        assert (len(began), len(back)) == (1, 1)  # one line per outage, one per recovery
    finally:
        await side.call(db, "close")


async def test_a_busy_server_is_not_an_outage(side: Side, own_pg: OwnPostgres) -> None:
    """A pool timeout while Postgres answers (the pool is simply exhausted) raises the pool's
    error and does not switch to fail-fast mode."""
    await _ensure(own_pg, up=True)
    db = side.make(own_pg.url, min_size=1, max_size=1, pool_timeout=0.5, retry_attempts=1)
    await side.call(db, "open")
    try:
        holder = asyncio.create_task(side.call(db, "fetch_one", "SELECT pg_sleep(2)"))
        await asyncio.sleep(0.3)
        with pytest.raises(Exception) as info:
            await side.call(db, "fetch_one", "SELECT 1")
        assert type(info.value).__name__ == "PoolTimeout"
        assert db.stats()["reconnecting"] is False
        await holder
        assert await side.call(db, "fetch_one", "SELECT 1") == (1,)
    finally:
        await side.call(db, "close")


async def test_a_health_check_ends_the_outage_without_waiting_for_the_backoff(
    side: Side, own_pg: OwnPostgres
) -> None:
    """With a 30 s reconnect backoff, the first health check after Postgres returns finds it
    and queries work at once: recovery is not held back by the background loop's sleep."""
    await _ensure(own_pg, up=True)
    db = side.make(
        own_pg.url, min_size=1, max_size=2, pool_timeout=1, reconnect_initial=30, reconnect_max=30
    )
    await side.call(db, "open")
    try:
        await _ensure(own_pg, up=False)
        with pytest.raises(BackendUnavailable):
            await side.call(db, "fetch_one", "SELECT 1")
        assert db.stats()["reconnecting"] is True
        assert (await side.call(db, "health_check")).status == "unhealthy"
        await _ensure(own_pg, up=True)
        assert (await side.call(db, "health_check")).status == "healthy"
        assert await side.call(db, "fetch_one", "SELECT 4") == (4,)
    finally:
        await side.call(db, "close")  # also wakes the loop out of its 30 s sleep
