"""renderkit.db against its own Postgres, started late and restarted under the app's feet."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from renderkit.db import AsyncDatabase, Database

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*cmd: str) -> list[str]:
    if os.geteuid() != 0:
        return list(cmd)
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-c", " ".join(cmd)]


class OwnPostgres:
    def __init__(self, root: str, port: int) -> None:
        self.data = os.path.join(root, "data")
        self.sock = root
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres(str(_bin("pg_ctl")), "-D", self.data, "-w", "-t", "20", *args),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=40,
        )

    def start(self) -> None:
        self.pg_ctl(
            "-o",
            f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1",
            "-l",
            os.path.join(self.sock, "log"),
            "start",
        )

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "stop")


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnPostgres]:
    initdb = _bin("initdb")
    if initdb is None or _bin("pg_ctl") is None:
        pytest.skip("Postgres server binaries are not installed")
    root = tempfile.mkdtemp(prefix="rk-pg-")
    os.chmod(root, 0o777)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    pg = OwnPostgres(root, _free_port())
    subprocess.run(
        _as_postgres(initdb, "-D", pg.data, "-A", "trust", "-U", "postgres", "--no-sync"),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    yield pg
    try:
        pg.stop()
    except Exception:
        pass
    shutil.rmtree(root, ignore_errors=True)


def _backends(pg: OwnPostgres, app: str) -> int:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_open_waits_for_a_late_postgres_then_survives_a_restart(own_pg: OwnPostgres) -> None:
    """open() retries until Postgres is up; after a restart run() succeeds, health recovers."""
    db = Database(
        own_pg.url,
        application_name="rk-restart",
        min_size=2,
        max_size=4,
        startup_budget=30,
        retry_backoff=0.2,
        retry_backoff_max=1.0,
        pool_timeout=5,
    )
    opened: list[BaseException | None] = []
    opener = threading.Thread(target=lambda: opened.append(_try(db.open)))
    opener.start()
    time.sleep(1.0)  # open() is retrying against a closed port meanwhile
    own_pg.start()
    opener.join(40)
    assert opened == [None]
    assert db.stats()["open_attempts"] >= 2
    try:
        assert db.fetch_one("SELECT 1") == (1,)
        assert db.health_check().status == "healthy"

        own_pg.stop()
        health = db.health_check()
        assert health.status == "unhealthy"
        assert "unreachable" in health.message

        own_pg.start()
        attempts = []

        def work(conn: Any) -> int:
            attempts.append(1)
            return int(conn.execute("SELECT 40 + 2").fetchone()[0])

        assert db.run(work) == 42  # no app restart needed
        assert db.health_check().status == "healthy"
        for _ in range(20):
            assert db.fetch_one("SELECT 1") == (1,)
        # No leaks: at most the pool's size of backends carry our application_name.
        assert 1 <= _backends(own_pg, "rk-restart") <= 4
        assert db.stats()["pool_size"] <= 4
    finally:
        db.close()
    deadline = time.monotonic() + 5
    while _backends(own_pg, "rk-restart") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _backends(own_pg, "rk-restart") == 0


def test_async_database_survives_a_restart(own_pg: OwnPostgres) -> None:
    """AsyncDatabase goes unhealthy during the outage and serves again afterwards."""
    try:
        own_pg.start()
    except subprocess.CalledProcessError:
        pass  # already running from the previous test

    async def scenario() -> None:
        db = AsyncDatabase(
            own_pg.url,
            application_name="rk-arestart",
            min_size=2,
            max_size=4,
            retry_backoff=0.2,
            pool_timeout=5,
        )
        await db.open()
        try:
            assert await db.fetch_one("SELECT 1") == (1,)
            await asyncio.to_thread(own_pg.stop)
            assert (await db.health_check()).status == "unhealthy"
            await asyncio.to_thread(own_pg.start)

            async def work(conn: Any) -> int:
                cur = await conn.execute("SELECT 5")
                row = await cur.fetchone()
                return int(row[0])

            assert await db.run(work) == 5
            assert (await db.health_check()).status == "healthy"
            assert _backends(own_pg, "rk-arestart") <= 4
        finally:
            await db.close()

    asyncio.run(scenario())


def _try(fn: Any) -> BaseException | None:
    try:
        fn()
    except BaseException as exc:
        return exc
    return None
