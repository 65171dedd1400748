# twins: source
# twins: rename enter_async_context=enter_context
"""The I/O of the Postgres pool, written once.

The asyncio module is the source; ``tools/twins.py`` (``nox -s twins``) generates the threaded
one from it, so edit the asyncio file and regenerate. Decisions live in ``_core.DatabaseBase``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from renderkit import _compat_async as compat
from renderkit._optional import require
from renderkit._redact import first_line
from renderkit.db._core import (
    Attempt,
    DatabaseBase,
    Params,
    connection_failure,
    is_transient,
    logger,
    mask,
    server_down,
)
from renderkit.db._replicas import REPLICA_PROBE, Replica, replica_facts
from renderkit.health import CheckResult

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

T = TypeVar("T")
Work = Callable[["psycopg.AsyncConnection[Any]"], Awaitable[T]]


class AsyncDatabaseIO(DatabaseBase):
    """The pool's lifecycle and queries: open, reconnect, close, retries, replicas."""

    _pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
    _reconnector: Any = None  # the background task (asyncio) or thread (sync)

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the pool, retrying the first connect with backoff within ``startup_budget``.

        When Postgres is still down after the budget, ``open()`` returns and keeps
        reconnecting in the background (``on_startup_timeout="reconnect"``, the default;
        ``"raise"`` re-raises instead): meanwhile queries raise ``BackendUnavailable`` at once
        and ``health_check()`` says unhealthy. Errors no retry can fix (wrong password,
        unknown database) are raised at once. Replica pools open without waiting.
        """
        if self._pool is not None or self._reconnecting:
            return
        tenacity = require("tenacity", extra="postgres", feature="renderkit.db")
        self._stop = compat.Event()
        retrying = tenacity.AsyncRetrying(**self._connect_retrying_kwargs(background=False))
        try:
            self._pool = await self._connect(retrying)
        except Exception as exc:
            if self.settings.on_startup_timeout == "raise" or not is_transient(exc):
                raise
            self._gave_up(exc)
            self._start_reconnect()
        else:
            logger.info("%s pool open (%s)", self.name, mask(self.url))
        await self._open_replicas()

    async def _connect(
        self, retrying: Any, *, new_pool: bool = True
    ) -> psycopg_pool.AsyncConnectionPool[Any] | None:
        """Probe with one direct connection, then open a pool; ``retrying`` repeats both.

        ``new_pool=False`` (an outage of an open pool) only waits for the probe to succeed:
        the pool's own workers reconnect its connections.
        """
        async for attempt in retrying:
            with attempt:
                self._count("open_attempts")
                await self._probe()
                if not new_pool:
                    return None
                return await self._open_pool(self.url, self.name, wait=True)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _probe(self) -> None:
        """One direct connection and ``SELECT 1``, within ``connect_timeout`` + 1 s.

        A direct connection surfaces the real error (refused, starting up, bad password)
        where a pool would only time out; the query is what finds a Postgres that is down
        behind PgBouncer (which accepts the login itself, then holds the query).
        """

        async def attempt() -> None:
            conn = await self._direct_connection()
            try:
                await conn.execute("SELECT 1")
            finally:
                await conn.close()

        await compat.run_with_deadline(attempt, self.settings.connect_timeout + 1.0)

    async def _direct_connection(self) -> psycopg.AsyncConnection[Any]:
        # A PgBouncer refusing the "options" startup parameter is detected here.
        pg = require("psycopg", extra="postgres", feature="renderkit.db")
        connect = pg.AsyncConnection.connect
        try:
            conn: psycopg.AsyncConnection[Any] = await connect(self.url, **self._connect_kwargs())
        except pg.OperationalError as exc:
            if not self._detect_pooler(exc):
                raise
            conn = await connect(self.url, **self._connect_kwargs())
        return conn

    async def _open_pool(
        self, url: str, name: str, *, wait: bool
    ) -> psycopg_pool.AsyncConnectionPool[Any]:
        pool_mod = require("psycopg_pool", extra="postgres", feature="renderkit.db")
        pool: psycopg_pool.AsyncConnectionPool[Any] = pool_mod.AsyncConnectionPool(
            check=pool_mod.AsyncConnectionPool.check_connection, **self._pool_kwargs(url, name)
        )
        try:
            await pool.open(wait=wait, timeout=max(self.settings.connect_timeout * 2, 5.0))
        except BaseException:
            await pool.close()
            raise
        return pool

    async def _open_replicas(self) -> None:
        """Open each replica's pool without waiting: a replica that is down is skipped."""
        for replica in self.replicas.all:
            if replica.pool is None:
                replica.pool = await self._open_pool(replica.url, replica.name, wait=False)

    def _start_reconnect(self) -> None:
        # Claimed under a lock, before the start: one reconnect at a time, and a thread that
        # finishes at once clears the flag itself.
        if self._claim_reconnect():
            self._reconnector = compat.start_task(self._reconnect, f"{self.name}-reconnect")

    async def _reconnect(self) -> None:
        """Keep connecting with the reconnect backoff until Postgres answers or close()."""
        tenacity = require("tenacity", extra="postgres", feature="renderkit.db")
        stop = self._stop  # this run's event: a later open() makes a new one
        new_pool = self._pool is None

        async def pause(seconds: float) -> None:
            await compat.wait_event(stop, seconds)

        kwargs = self._connect_retrying_kwargs(background=True)
        try:
            pool = await self._connect(
                tenacity.AsyncRetrying(sleep=pause, **kwargs), new_pool=new_pool
            )
        except Exception as exc:
            if not stop.is_set():
                self._outage = exc
                logger.error(
                    "%s: stopped reconnecting, the error is not transient (%s: %s); fix "
                    "DATABASE_URL or the server, then restart the app (or call open() again)",
                    self.name,
                    type(exc).__name__,
                    first_line(exc),
                )
            return
        finally:
            self._reconnecting = False
        if pool is not None:
            if stop.is_set():
                await pool.close()
                return
            self._pool = pool
        self._recovered()

    async def _down(self, exc: BaseException) -> bool:
        """After a connection-level failure, True when Postgres is down: a direct connect
        fails too. Then queries fail fast and the background reconnect runs until it is up."""
        if self._outage is not None:
            return True
        if self._stop is None or not connection_failure(exc):
            return False
        try:
            await self._probe()
        except Exception as probe_exc:
            if not server_down(probe_exc):
                return False
            if self._outage_began(probe_exc):
                self._start_reconnect()
            return True
        return False

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pools (waiting up to ``timeout`` for connections in use); idempotent."""
        if self._stop is not None:
            self._stop.set()
        task, self._reconnector = self._reconnector, None
        if task is not None:
            await compat.join_task(task, timeout)
        self._reconnecting = False
        pool, self._pool = self._pool, None
        self._outage = None
        if pool is not None:
            await pool.close(timeout=timeout)
            logger.info("%s pool closed", self.name)
        for replica in self.replicas.all:
            replica_pool, replica.pool = replica.pool, None
            if replica_pool is not None:
                await replica_pool.close(timeout=timeout)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _require_pool(self) -> psycopg_pool.AsyncConnectionPool[Any]:
        if self._pool is None or self._outage is not None:
            raise self._not_open()
        return self._pool

    # -- connections -----------------------------------------------------------------------
    @asynccontextmanager
    async def connection(
        self, timeout: float | None = None, *, read_only: bool = False
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Borrow a checked connection; commits on success, rolls back on error.

        ``read_only=True`` borrows from a read replica when one answers, else the primary.
        """
        async with AsyncExitStack() as stack:
            if read_only:
                for replica in self.replicas.candidates():
                    try:
                        conn = await stack.enter_async_context(
                            replica.pool.connection(timeout=self.settings.replica_timeout)
                        )
                    except Exception as exc:
                        self._replica_failed(replica, exc)
                        continue
                    self.replicas.succeeded(replica)
                    self._count("replica_queries")
                    yield conn
                    return
            async with self._require_pool().connection(timeout=timeout) as conn:
                yield conn

    @asynccontextmanager
    async def transaction(
        self, timeout: float | None = None, *, read_only: bool = False
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Borrow a connection inside one explicit transaction (on a replica if ``read_only``)."""
        async with self.connection(timeout, read_only=read_only) as conn, conn.transaction():
            if self._timeout_sql is not None:
                await conn.execute(self._timeout_sql)
            yield conn

    def _replica_failed(self, replica: Replica, exc: BaseException) -> None:
        self._count("replica_fallbacks")
        self.replicas.failed(replica, exc)

    async def _on_replica(self, work: Work[T], what: Any) -> tuple[bool, T | None]:
        """Run ``work`` on the first replica that answers; ``(False, None)`` when none did."""
        for replica in self.replicas.candidates():
            started = time.perf_counter()
            try:
                async with replica.pool.connection(timeout=self.settings.replica_timeout) as conn:
                    result = await work(conn)
            except Exception as exc:
                if not is_transient(exc):
                    self.replicas.succeeded(replica)  # it answered: the error is the query's
                    self._count("errors")
                    raise
                self._replica_failed(replica, exc)
                continue
            self.replicas.succeeded(replica)
            self._count("replica_queries")
            self._observe(started, what)
            return True, result
        return False, None

    # -- work ------------------------------------------------------------------------------
    async def run(self, fn: Work[T], *, idempotent: bool = True, read_only: bool = False) -> T:
        """Run ``fn(conn)`` in a transaction; retry transient failures (see ``is_transient``).

        Work that failed after it was sent is repeated only when ``idempotent`` is true (or
        the server rolled it back: serialization failure, deadlock). The original error is
        raised when retries are exhausted. ``read_only=True`` runs it on a read replica when
        one answers, else on the primary.
        """
        what = getattr(fn, "__qualname__", "run")
        if read_only and self.replicas:
            done, result = await self._on_replica(self._with_timeout(fn), what)
            if done:
                return cast(T, result)
        attempt = Attempt()
        try:
            return await self._once(fn, attempt, what)
        except Exception as exc:
            return await self._recover(exc, fn, idempotent, attempt, what)

    async def _recover(
        self, exc: Exception, fn: Work[T], idempotent: bool, attempt: Attempt, what: Any
    ) -> T:
        """After a failed first attempt: fail fast if Postgres is down, else retry or raise."""
        self._count("errors")
        if await self._down(exc):
            raise self._not_open() from exc
        if self.settings.retry_attempts < 2 or not self._should_retry(exc, idempotent, attempt):
            raise exc
        try:
            return await self._retry(fn, idempotent, what)
        except Exception as last:
            if await self._down(last):
                raise self._not_open() from last
            raise

    def _with_timeout(self, fn: Work[T]) -> Work[T]:
        if self._timeout_sql is None:
            return fn
        timeout_sql = self._timeout_sql

        async def work(conn: psycopg.AsyncConnection[Any]) -> T:
            await conn.execute(timeout_sql)
            return await fn(conn)

        return work

    async def _retry(self, fn: Work[T], idempotent: bool, what: Any) -> T:
        """Attempts 2..retry_attempts after a retryable first failure, with backoff."""
        self._count("retries")
        await compat.sleep(self._backoff(1))
        tenacity = require("tenacity", extra="postgres", feature="renderkit.db")
        box = [Attempt()]
        async for retry in tenacity.AsyncRetrying(**self._retrying_kwargs(idempotent, box)):
            with retry:
                box[0] = Attempt()
                try:
                    return await self._once(fn, box[0], what)
                except Exception:
                    self._count("errors")
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, fn: Work[T], attempt: Attempt, what: Any) -> T:
        pool = self._require_pool()
        started = time.perf_counter()
        async with pool.connection() as conn:
            attempt.sent = True
            if self._timeout_sql is not None:
                await conn.execute(self._timeout_sql)
            result = await fn(conn)
        self._observe(started, what)
        return result

    async def _statement(
        self,
        sql: Any,
        params: Params,
        idempotent: bool,
        fetch: Callable[[Any], Awaitable[T]],
        read_only: bool,
    ) -> T:
        if self._pooled:
            self._refuse_session_features(sql)
        if read_only and self.replicas:
            work = self._with_timeout(_statement_work(sql, params, fetch))
            done, result = await self._on_replica(work, sql)
            if done:
                return cast(T, result)
        pool = self._pool
        if pool is None or self._outage is not None:
            raise self._not_open()
        attempt = Attempt()
        started = time.perf_counter()
        try:
            async with pool.connection() as conn:
                attempt.sent = True
                if self._timeout_sql is not None:
                    await conn.execute(self._timeout_sql)
                result = await fetch(await conn.execute(sql, params))
        except Exception as exc:
            work = _statement_work(sql, params, fetch)
            return await self._recover(exc, work, idempotent, attempt, sql)
        self._count("queries")
        if self.settings.slow_query is not None:
            self._observe(started, sql)
        return result

    async def execute(self, sql: Any, params: Params = None, *, idempotent: bool = False) -> int:
        """Run one statement; return the affected row count."""
        return await self._statement(sql, params, idempotent, _rowcount, False)

    async def fetch_one(
        self, sql: Any, params: Params = None, *, idempotent: bool = True, read_only: bool = False
    ) -> Any:
        """Run a query and return its first row, or ``None`` (on a replica if ``read_only``)."""
        return await self._statement(sql, params, idempotent, _fetchone, read_only)

    async def fetch_all(
        self, sql: Any, params: Params = None, *, idempotent: bool = True, read_only: bool = False
    ) -> list[Any]:
        """Run a query and return all rows (on a replica if ``read_only``)."""
        return await self._statement(sql, params, idempotent, _fetchall, read_only)


class AsyncDatabase(AsyncDatabaseIO):
    """A Postgres pool with retries, timeouts, read replicas, health and stats."""

    async def check(self, timeout: float = 3.0) -> float:
        """Run ``SELECT 1`` within ``timeout`` seconds; return the latency in milliseconds.

        The wait for a connection is bounded by the pool's own timeout, the statement by
        ``SET LOCAL statement_timeout`` in its transaction (which works through PgBouncer), and
        the whole probe by a client-side deadline of ``timeout + 0.5`` s (``TimeoutError``),
        the same on both twins. During an outage of an open pool it first tries one direct
        connect, so a health check ends the fail-fast mode as soon as Postgres is back.
        """
        if self._outage is not None and self._pool is not None:
            await compat.run_with_deadline(self._probe, timeout + 0.5)
            self._recovered()
        latency, _ = await self._probe_pool(self._require_pool(), timeout, "SELECT 1")
        return latency

    async def _probe_pool(self, pool: Any, timeout: float, sql: str) -> tuple[float, Any]:
        """(latency in ms, first row) of ``sql`` on ``pool``, bounded as ``check()`` says."""
        started = time.perf_counter()

        async def probe() -> Any:
            return await _select(pool, timeout, sql)

        # A frozen server (SIGSTOP, a network black hole) answers nothing, so neither the pool
        # timeout nor statement_timeout fires: a client-side deadline bounds the whole probe.
        row = await compat.run_with_deadline(probe, timeout + 0.5)
        return (time.perf_counter() - started) * 1000, row

    async def health_check(self) -> CheckResult:
        """Healthy with latency when ``SELECT 1`` answers; unhealthy when Postgres is down.

        With read replicas, each is probed too: one that does not answer makes the result
        ``degraded`` (reads go to the primary), listed under ``details["replicas"]``.
        """
        replicas = {r.name: await self._replica_health(r) for r in self.replicas.all}
        if self._pool is None:
            return self._health(None, self._not_open(), replicas)
        try:
            latency = await self.check()
        except Exception as exc:
            return self._health(None, exc, replicas)
        return self._health(latency, None, replicas)

    async def _replica_health(self, replica: Replica) -> dict[str, Any]:
        shown = {"url": mask(replica.url)}
        if replica.pool is None:
            return {"status": "unhealthy", "error": "not open", **shown}
        try:
            latency, row = await self._probe_pool(
                replica.pool, self.settings.replica_timeout, REPLICA_PROBE
            )
        except Exception as exc:
            self.replicas.failed(replica, exc)
            error = f"{type(exc).__name__}: {first_line(exc)}"
            return {"status": "unhealthy", "error": error, **shown}
        self.replicas.succeeded(replica)
        return {"status": "healthy", "latency_ms": round(latency, 2), **replica_facts(row), **shown}

    def stats(self) -> dict[str, Any]:
        """Pool figures (size, idle, waiting, lost), replicas and counters as a plain dict."""
        pool = self._pool
        return self._stats(pool.get_stats() if pool is not None else None)


async def _select(pool: Any, timeout: float, sql: str) -> Any:
    async with pool.connection(timeout=timeout) as conn:
        await conn.execute(f"SET LOCAL statement_timeout = {max(1, round(timeout * 1000))}")
        cur = await conn.execute(sql)
        return await cur.fetchone()


def _statement_work(sql: Any, params: Params, fetch: Callable[[Any], Awaitable[T]]) -> Work[T]:
    async def work(conn: psycopg.AsyncConnection[Any]) -> T:
        return await fetch(await conn.execute(sql, params))

    return work


async def _rowcount(cur: Any) -> int:
    return int(cur.rowcount)


async def _fetchone(cur: Any) -> Any:
    return await cur.fetchone()


async def _fetchall(cur: Any) -> list[Any]:
    return list(await cur.fetchall())
