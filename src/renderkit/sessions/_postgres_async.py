# twins: source
# twins: rename _aget=_get _aput=_put _amerge=_merge _aremove=_remove _aexpire=_expire
# twins: rename _aremove_user=_remove_user ahealth_check=health_check acreate_table=create_table
# twins: rename aprune=prune _abackground_prune=_background_prune _amaybe_prune=_maybe_prune
"""PostgresStore's I/O (async source; ``_postgres_sync`` is generated; private module).

A store given only a sync ``Database`` runs the sync methods in a worker thread.
"""

from __future__ import annotations

from typing import Any

from renderkit.health import CheckResult
from renderkit.sessions._base import Changes, RawRecord, thread_if_sync_only
from renderkit.sessions._postgres_base import (
    PRUNE_BATCH,
    PRUNE_ROUNDS,
    PostgresBase,
    logger,
    table_ddl,
)

__all__ = ["AsyncPostgresHooks"]


class AsyncPostgresHooks(PostgresBase):
    """The raw hooks, schema creation, pruning and health probe of :class:`PostgresStore`."""

    @thread_if_sync_only  # twins: async-only
    async def acreate_table(self) -> None:
        """Create the table and its indexes if missing (safe to run from many instances)."""
        db = await self._db_async()
        statements = table_ddl(self.table)

        async def migrate(conn: Any) -> None:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key ^ 1,))
            for statement in statements:
                await conn.execute(statement)

        await db.run(migrate)

    @thread_if_sync_only  # twins: async-only
    async def aprune(self) -> int:
        """Delete expired rows now; 0 when another instance is pruning (advisory lock)."""
        db = await self._db_async()

        async def work(conn: Any) -> int | None:
            got = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (self._lock_key,))
            row = await got.fetchone()
            if not row[0]:
                return None
            removed = 0
            for _ in range(PRUNE_ROUNDS):
                cur = await conn.execute(self._sql_prune)
                removed += cur.rowcount
                if cur.rowcount < PRUNE_BATCH:
                    break
            return removed

        return self._pruned(await db.run(work))

    async def _abackground_prune(self) -> None:
        try:
            await self.aprune()
        except Exception as exc:
            self._prune_counts["prune_errors"] += 1
            logger.warning("%s: pruning expired sessions failed: %s", self.name, exc)
        finally:
            self._pruning = False

    @thread_if_sync_only  # twins: async-only
    async def _aget(self, session_id: str) -> RawRecord | None:
        db = await self._db_async()
        try:
            return self._raw(await db.fetch_one(self._sql_load, (session_id,)))
        except self._undefined_table as exc:
            raise self._missing_table(exc) from exc

    @thread_if_sync_only  # twins: async-only
    async def _aput(
        self, session_id: str, blob: bytes, expected: int, user_id: str | None, ttl: float
    ) -> int | None:
        db = await self._db_async()
        sql, params = (
            (self._sql_insert, (session_id, blob, user_id, float(ttl)))
            if expected == 0
            else (self._sql_update, (blob, user_id, float(ttl), session_id, expected))
        )
        try:
            row = await db.fetch_one(sql, params, idempotent=False)
        except self._undefined_table as exc:
            raise self._missing_table(exc) from exc
        self._amaybe_prune()  # twins: sync: self._maybe_prune()
        return None if row is None else int(row[0])

    @thread_if_sync_only  # twins: async-only
    async def _amerge(
        self, session_id: str, changes: Changes, user_id: str | None, set_user: bool, ttl: float
    ) -> int | None:
        db = await self._db_async()

        async def work(conn: Any) -> int | None:
            cur = await conn.execute(self._sql_lock, (session_id,))
            raw = self._raw(await cur.fetchone())
            if raw is None:
                return None
            blob = self._apply(session_id, raw, changes)
            owner = user_id if set_user else raw.user_id
            cur = await conn.execute(self._sql_write, (blob, owner, float(ttl), session_id))
            return int((await cur.fetchone())[0])

        return await db.run(work)

    @thread_if_sync_only  # twins: async-only
    async def _aremove(self, session_id: str) -> bool:
        db = await self._db_async()
        return await db.execute(self._sql_delete, (session_id,), idempotent=True) > 0

    @thread_if_sync_only  # twins: async-only
    async def _aexpire(self, session_id: str, ttl: float) -> bool:
        db = await self._db_async()
        return await db.execute(self._sql_touch, (float(ttl), session_id), idempotent=True) > 0

    @thread_if_sync_only  # twins: async-only
    async def _aremove_user(self, user_id: str) -> int:
        db = await self._db_async()
        return await db.execute(self._sql_delete_user, (user_id,), idempotent=True)

    @thread_if_sync_only  # twins: async-only
    async def ahealth_check(self) -> CheckResult:
        """The database's own check (``SELECT 1``): unhealthy when Postgres does not answer."""
        try:
            db = await self._db_async()
        except TypeError:
            return CheckResult.healthy("AsyncDatabase only: the async health check probes it")
        except Exception as exc:
            return CheckResult.unhealthy(f"postgres unreachable: {type(exc).__name__}: {exc}")
        return await db.health_check()
