# DO NOT EDIT: generated from src/renderkit/sessions/_postgres_async.py by tools/twins.py.
# Edit the async source and run `nox -s twins` (or `python tools/twins.py`).
"""PostgresStore's I/O (async source; ``_postgres_sync`` is generated; private module).

A store given only a sync ``Database`` runs the sync methods in a worker thread.
"""

from __future__ import annotations

from typing import Any

from renderkit.health import CheckResult
from renderkit.sessions._base import Changes, RawRecord
from renderkit.sessions._postgres_base import (
    PRUNE_BATCH,
    PRUNE_ROUNDS,
    PostgresBase,
    logger,
    table_ddl,
)

__all__ = ["PostgresHooks"]


class PostgresHooks(PostgresBase):
    """The raw hooks, schema creation, pruning and health probe of :class:`PostgresStore`."""

    def create_table(self) -> None:
        """Create the table and its indexes if missing (safe to run from many instances)."""
        db = self._db_sync()
        statements = table_ddl(self.table)

        def migrate(conn: Any) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key ^ 1,))
            for statement in statements:
                conn.execute(statement)

        db.run(migrate)

    def prune(self) -> int:
        """Delete expired rows now; 0 when another instance is pruning (advisory lock)."""
        db = self._db_sync()

        def work(conn: Any) -> int | None:
            got = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (self._lock_key,))
            row = got.fetchone()
            if not row[0]:
                return None
            removed = 0
            for _ in range(PRUNE_ROUNDS):
                cur = conn.execute(self._sql_prune)
                removed += cur.rowcount
                if cur.rowcount < PRUNE_BATCH:
                    break
            return removed

        return self._pruned(db.run(work))

    def _background_prune(self) -> None:
        try:
            self.prune()
        except Exception as exc:
            self._prune_counts["prune_errors"] += 1
            logger.warning("%s: pruning expired sessions failed: %s", self.name, exc)
        finally:
            self._pruning = False

    def _get(self, session_id: str) -> RawRecord | None:
        db = self._db_sync()
        try:
            return self._raw(db.fetch_one(self._sql_load, (session_id,)))
        except self._undefined_table as exc:
            raise self._missing_table(exc) from exc

    def _put(
        self, session_id: str, blob: bytes, expected: int, user_id: str | None, ttl: float
    ) -> int | None:
        db = self._db_sync()
        sql, params = (
            (self._sql_insert, (session_id, blob, user_id, float(ttl)))
            if expected == 0
            else (self._sql_update, (blob, user_id, float(ttl), session_id, expected))
        )
        try:
            row = db.fetch_one(sql, params, idempotent=False)
        except self._undefined_table as exc:
            raise self._missing_table(exc) from exc
        self._maybe_prune()
        return None if row is None else int(row[0])

    def _merge(
        self, session_id: str, changes: Changes, user_id: str | None, set_user: bool, ttl: float
    ) -> int | None:
        db = self._db_sync()

        def work(conn: Any) -> int | None:
            cur = conn.execute(self._sql_lock, (session_id,))
            raw = self._raw(cur.fetchone())
            if raw is None:
                return None
            blob = self._apply(session_id, raw, changes)
            owner = user_id if set_user else raw.user_id
            cur = conn.execute(self._sql_write, (blob, owner, float(ttl), session_id))
            return int((cur.fetchone())[0])

        return db.run(work)

    def _remove(self, session_id: str) -> bool:
        db = self._db_sync()
        return db.execute(self._sql_delete, (session_id,), idempotent=True) > 0

    def _expire(self, session_id: str, ttl: float) -> bool:
        db = self._db_sync()
        return db.execute(self._sql_touch, (float(ttl), session_id), idempotent=True) > 0

    def _remove_user(self, user_id: str) -> int:
        db = self._db_sync()
        return db.execute(self._sql_delete_user, (user_id,), idempotent=True)

    def health_check(self) -> CheckResult:
        """The database's own check (``SELECT 1``): unhealthy when Postgres does not answer."""
        try:
            db = self._db_sync()
        except TypeError:
            return CheckResult.healthy("Database only: the async health check probes it")
        except Exception as exc:
            return CheckResult.unhealthy(f"postgres unreachable: {type(exc).__name__}: {exc}")
        return db.health_check()
