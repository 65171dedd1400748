"""What PostgresStore is besides its I/O: SQL, databases, pruning schedule (private module)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Self

from renderkit._optional import require
from renderkit.errors import BackendUnavailable, SessionError
from renderkit.sessions._base import RawRecord
from renderkit.sessions._store import SessionStore

if TYPE_CHECKING:
    from renderkit.db import AsyncDatabase, Database

__all__ = ["PostgresBase"]

logger = logging.getLogger("renderkit.sessions")
_IDENT = re.compile(r"(?:[a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}")
PRUNE_BATCH = 1000
PRUNE_ROUNDS = 100


def table_ddl(table: str) -> list[str]:
    base = table.rsplit(".", 1)[-1]
    return [
        f"""CREATE TABLE IF NOT EXISTS {table} (
    id          TEXT PRIMARY KEY,
    data        BYTEA NOT NULL,
    user_id     TEXT,
    version     BIGINT NOT NULL DEFAULT 1,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
)""",
        f"CREATE INDEX IF NOT EXISTS {base}_expires_at_idx ON {table} (expires_at)",
        f"CREATE INDEX IF NOT EXISTS {base}_user_id_idx ON {table} (user_id) "
        "WHERE user_id IS NOT NULL",
    ]


class PostgresBase(SessionStore):
    """The shared part of :class:`PostgresStore` (see there): SQL, databases, pruning plan."""

    def __init__(
        self,
        db: Database | AsyncDatabase | None = None,
        *,
        async_db: AsyncDatabase | None = None,
        table: str = "renderkit_sessions",
        prune_interval: float | None = 15 * 60,
        encryption_key: str | bytes | None = None,
        max_size: int = 64 * 1024,
        name: str = "sessions",
        _url: str | None = None,
        _db_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(encryption_key=encryption_key, max_size=max_size, name=name)
        from renderkit.db import AsyncDatabase

        if not _IDENT.fullmatch(table):
            raise ValueError(
                f"PostgresStore(table={table!r}): use a lower-case SQL identifier, optionally "
                "schema-qualified (e.g. 'renderkit_sessions' or 'app.sessions')"
            )
        if prune_interval is not None and prune_interval <= 0:
            raise ValueError(f"PostgresStore(prune_interval={prune_interval}): must be > 0 or None")
        if db is None and async_db is None and _url is None:
            raise TypeError(
                "PostgresStore needs a renderkit.db Database or AsyncDatabase "
                "(PostgresStore(db)) or a URL (PostgresStore.from_url(DATABASE_URL))"
            )
        psycopg = require("psycopg", extra="postgres", feature="PostgresStore")
        pool_mod = require("psycopg_pool", extra="postgres", feature="PostgresStore")
        self.errors = (psycopg.OperationalError, pool_mod.PoolTimeout, BackendUnavailable, OSError)
        self._undefined_table: type[BaseException] = psycopg.errors.UndefinedTable
        self.table = table
        self._sync_db: Database | None = None
        self._async_db: AsyncDatabase | None = async_db
        if isinstance(db, AsyncDatabase):
            self._async_db = db
        elif db is not None:
            self._sync_db = db
        self._url = _url
        self._db_options = dict(_db_options or {})
        self._async_dbs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncDatabase] = (
            weakref.WeakKeyDictionary()
        )
        self._open_lock = threading.Lock()
        self._lock_key = int.from_bytes(
            hashlib.sha256(f"renderkit.sessions.prune:{table}".encode()).digest()[:8],
            "big",
            signed=True,
        )
        self.prune_interval = prune_interval
        self._next_prune = self._schedule(time.monotonic())
        self._pruning = False
        self._prune_tasks: set[asyncio.Task[Any]] = set()
        self._prune_counts = {"prune_runs": 0, "pruned": 0, "prune_skipped": 0, "prune_errors": 0}
        self._prepare_statements(table)

    def _prepare_statements(self, t: str) -> None:
        """The SQL of every operation on table ``t`` (a checked identifier), built once."""
        self._sql_load = (
            f"SELECT data, version, user_id, extract(epoch FROM expires_at)::float8 "
            f"FROM {t} WHERE id = %s AND expires_at > now()"
        )
        self._sql_insert = (
            f"INSERT INTO {t} AS s (id, data, user_id, version, expires_at) "
            "VALUES (%s, %s, %s, 1, now() + make_interval(secs => %s)) "
            "ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, user_id = EXCLUDED.user_id, "
            "version = 1, expires_at = EXCLUDED.expires_at, created_at = now(), "
            "updated_at = now() WHERE s.expires_at <= now() RETURNING version"
        )
        self._sql_update = (
            f"UPDATE {t} SET data = %s, user_id = %s, version = version + 1, "
            "expires_at = now() + make_interval(secs => %s), updated_at = now() "
            "WHERE id = %s AND version = %s AND expires_at > now() RETURNING version"
        )
        # A merge locks the row, applies the changes in Python (the data may be encrypted) and
        # writes it back in one transaction: concurrent merges queue, none is lost.
        self._sql_lock = self._sql_load + " FOR UPDATE"
        self._sql_write = (
            f"UPDATE {t} SET data = %s, user_id = %s, version = version + 1, "
            "expires_at = now() + make_interval(secs => %s), updated_at = now() "
            "WHERE id = %s RETURNING version"
        )
        self._sql_delete = f"DELETE FROM {t} WHERE id = %s"
        self._sql_touch = (
            f"UPDATE {t} SET expires_at = now() + make_interval(secs => %s) "
            "WHERE id = %s AND expires_at > now()"
        )
        self._sql_delete_user = f"DELETE FROM {t} WHERE user_id = %s"
        self._sql_prune = (
            f"DELETE FROM {t} WHERE ctid IN "
            f"(SELECT ctid FROM {t} WHERE expires_at <= now() LIMIT {PRUNE_BATCH})"
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        table: str = "renderkit_sessions",
        prune_interval: float | None = 15 * 60,
        encryption_key: str | bytes | None = None,
        max_size: int = 64 * 1024,
        name: str = "sessions",
        **db_options: Any,
    ) -> Self:
        """A store for ``url`` whose Database/AsyncDatabase pools open on first use.

        ``db_options`` go to :class:`renderkit.db.Database` (``min_size``, ``max_size``, ...).
        """
        # A short start-up budget: while Postgres is down a request waits at most a few
        # seconds for its session (then proceeds with an empty one), not the pool's 30 s.
        options = {
            "min_size": 1,
            "max_size": 5,
            "startup_budget": 3.0,
            "name": "sessions-db",
            **db_options,
        }
        return cls(
            table=table,
            prune_interval=prune_interval,
            encryption_key=encryption_key,
            max_size=max_size,
            name=name,
            _url=url,
            _db_options=options,
        )

    # -- databases ------------------------------------------------------------------------
    def _db_sync(self) -> Database:
        db = self._sync_db
        if db is None:
            if self._url is None:
                raise TypeError(
                    "PostgresStore was given an AsyncDatabase, so its synchronous methods "
                    "(WSGI/Flask) cannot run; pass a Database too, or use "
                    "PostgresStore.from_url(url) to serve both"
                )
            from renderkit.db import Database

            with self._open_lock:
                if self._sync_db is None:
                    created = Database(self._url, **self._db_options)
                    created.open()
                    self._sync_db = created
                db = self._sync_db
        return db

    def _threaded(self) -> bool:
        """True when only a sync Database was given: the async methods run it in a thread."""
        return self._async_db is None and self._url is None

    async def _db_async(self) -> AsyncDatabase:
        if self._async_db is not None:
            return self._async_db
        assert self._url is not None  # else _threaded() sent the call to a thread
        from renderkit.db import AsyncDatabase

        loop = asyncio.get_running_loop()
        db = self._async_dbs.get(loop)
        if db is None:
            db = AsyncDatabase(self._url, **self._db_options)
            self._async_dbs[loop] = db
        await db.open()  # returns at once when already open
        return db

    def _missing_table(self, exc: BaseException) -> SessionError:
        return SessionError(
            f"the sessions table {self.table!r} does not exist; create it with "
            f"`renderkit sessions migrate --database-url $DATABASE_URL` or "
            f"PostgresStore.create_table() ({exc})"
        )

    # -- pruning ----------------------------------------------------------------------------
    def _schedule(self, now: float) -> float:
        if self.prune_interval is None:
            return float("inf")
        return now + self.prune_interval * random.uniform(0.5, 1.5)

    def _prune_due(self) -> bool:
        now = time.monotonic()
        if self._pruning or now < self._next_prune:
            return False
        with self._open_lock:
            if self._pruning or now < self._next_prune:
                return False
            self._pruning = True
            self._next_prune = self._schedule(now)
        return True

    def _pruned(self, removed: int | None) -> int:
        if removed is None:
            self._prune_counts["prune_skipped"] += 1
            return 0
        self._prune_counts["prune_runs"] += 1
        self._prune_counts["pruned"] += removed
        if removed:
            logger.info("%s: pruned %d expired session(s)", self.name, removed)
        return removed

    if TYPE_CHECKING:  # implemented by the class this is mixed into

        def _background_prune(self) -> None: ...  # PostgresHooks

        async def _abackground_prune(self) -> None: ...  # AsyncPostgresHooks

    def _maybe_prune(self) -> None:
        if self._prune_due():
            threading.Thread(
                target=self._background_prune, name="renderkit-sessions-prune", daemon=True
            ).start()

    def _amaybe_prune(self) -> None:
        if self._prune_due():
            task = asyncio.get_running_loop().create_task(self._abackground_prune())
            self._prune_tasks.add(task)
            task.add_done_callback(self._prune_tasks.discard)

    @staticmethod
    def _raw(row: Any) -> RawRecord | None:
        if row is None:
            return None
        data, version, user_id, expires = row
        return RawRecord(bytes(data), int(version), user_id, float(expires))

    # -- observability --------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters plus pruning figures (prune_runs, pruned, prune_skipped, prune_errors)."""
        stats = self._base_stats()
        stats.update(self._prune_counts)
        stats["table"] = self.table
        return stats

    def close(self) -> None:
        """Close the sync pool this store opened (from_url)."""
        if self._url is not None and self._sync_db is not None:
            self._sync_db.close()
            self._sync_db = None

    async def aclose(self) -> None:
        """Close the pools this store opened (from_url)."""
        for task in list(self._prune_tasks):
            task.cancel()
        self.close()
        for db in list(self._async_dbs.values()):
            try:
                await db.close()
            except RuntimeError:
                pass
        self._async_dbs.clear()
