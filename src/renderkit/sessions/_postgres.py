"""PostgresStore: sessions in a Postgres table through ``renderkit.db`` (private module)."""

from __future__ import annotations

from renderkit.sessions._postgres_async import AsyncPostgresHooks
from renderkit.sessions._postgres_sync import PostgresHooks

__all__ = ["PostgresStore"]


class PostgresStore(PostgresHooks, AsyncPostgresHooks):
    """Sessions in the ``renderkit_sessions`` table (id, data BYTEA, user_id, version,
    expires_at, created_at, updated_at; indexes on expires_at and user_id).

    ``data`` is BYTEA, not JSONB: it holds exactly what the other stores hold (UTF-8 JSON,
    or an AES-GCM blob when ``encryption_key`` is set), so encryption can be switched on
    without a schema change. Plain rows read as JSON with ``convert_from(data, 'UTF8')::jsonb``.

    ``PostgresStore(db)`` takes a :class:`renderkit.db.Database` (sync methods; the async
    ones run it in a thread) or an :class:`~renderkit.db.AsyncDatabase` (async methods; the
    sync ones raise), or both (``async_db=``). :meth:`from_url` builds both lazily, opened on
    first use. Create the table with :meth:`create_table` or ``renderkit sessions migrate``.

    Expired rows are never returned; they are deleted by :meth:`prune`, which also runs by
    itself about every ``prune_interval`` seconds (randomised +-50%, piggybacked on writes,
    in the background) on one instance at a time (``pg_try_advisory_xact_lock``).
    Concurrent merges of one session lock its row (``SELECT ... FOR UPDATE``) and queue.
    """
