"""Cost of ``Database.fetch_one("SELECT 1")`` against the same query on a bare psycopg_pool.

Variants, interleaved in one run against the same server:

- ``psycopg_pool``: ``with pool.connection() as c: c.execute("SELECT 1").fetchone()`` on a
  ``ConnectionPool`` with the same ``check=ConnectionPool.check_connection`` renderkit uses.
- ``psycopg_pool (no check)``: the pool's defaults (no check on checkout), for orientation.
- ``Database.fetch_one``: renderkit's facade (retry fast path, slow-query timer, counters).
- the asyncio twins of the first and third.

Target (issue 4): ``Database.fetch_one`` at most 1.10x the bare pool doing the same work.
Postgres: ``RENDERKIT_BENCH_DATABASE_URL`` (default postgresql://postgres@127.0.0.1:5432/test).
Run: ``python benchmarks/bench_db.py``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from _harness import Result, Target, measure, report

from renderkit.db import AsyncDatabase, Database

URL = os.environ.get("RENDERKIT_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def run() -> list[Result]:
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    loop = asyncio.new_event_loop()
    checked = ConnectionPool(
        URL, min_size=2, max_size=2, open=False, check=ConnectionPool.check_connection
    )
    unchecked = ConnectionPool(URL, min_size=2, max_size=2, open=False)
    checked.open(wait=True)
    unchecked.open(wait=True)
    db = Database(URL, min_size=2, max_size=2, application_name="rk-bench")
    db.open()

    def bare(pool: Any) -> Any:
        with pool.connection() as conn:
            return conn.execute("SELECT 1").fetchone()

    sync = measure(
        "Database.fetch_one (sync)",
        {
            "psycopg_pool": lambda: bare(checked),
            "psycopg_pool (no check)": lambda: bare(unchecked),
            "Database.fetch_one": lambda: db.fetch_one("SELECT 1"),
        },
        baseline="psycopg_pool",
        rounds=15,
        number=200,
    )
    sync.check(
        Target(
            "Database.fetch_one <= 1.10x psycopg_pool",
            "Database.fetch_one",
            "psycopg_pool",
            max_ratio=1.10,
        ),
        sync.ratio("Database.fetch_one", "psycopg_pool"),
    )

    async def setup() -> tuple[Any, AsyncDatabase]:
        apool = AsyncConnectionPool(
            URL, min_size=2, max_size=2, open=False, check=AsyncConnectionPool.check_connection
        )
        await apool.open(wait=True)
        adb = AsyncDatabase(URL, min_size=2, max_size=2, application_name="rk-bench")
        await adb.open()
        return apool, adb

    apool, adb = loop.run_until_complete(setup())

    async def abare() -> Any:
        async with apool.connection() as conn:
            cur = await conn.execute("SELECT 1")
            return await cur.fetchone()

    async def afetch() -> Any:
        return await adb.fetch_one("SELECT 1")

    asy = measure(
        "AsyncDatabase.fetch_one (asyncio)",
        {"psycopg_pool async": abare, "AsyncDatabase.fetch_one": afetch},
        baseline="psycopg_pool async",
        rounds=15,
        number=200,
        loop=loop,
    )
    asy.check(
        Target(
            "AsyncDatabase.fetch_one <= 1.10x async psycopg_pool",
            "AsyncDatabase.fetch_one",
            "psycopg_pool async",
            max_ratio=1.10,
        ),
        asy.ratio("AsyncDatabase.fetch_one", "psycopg_pool async"),
    )

    db.close()
    checked.close()
    unchecked.close()
    loop.run_until_complete(adb.close())
    loop.run_until_complete(apool.close())
    loop.close()
    return [sync, asy]


if __name__ == "__main__":
    report(run(), "db")
