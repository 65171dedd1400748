"""Pooled Postgres for PaaS apps: ``Database`` (sync) and ``AsyncDatabase`` (asyncio).

Both wrap a psycopg_pool pool that checks every connection before handing it out, so a
Postgres restart costs a reconnect, never an error from a dead connection::

    db = Database(os.environ["DATABASE_URL"])
    db.open()                      # retries the first connect while Postgres wakes up
    db.fetch_one("SELECT 1")
    db.run(lambda conn: conn.execute("UPDATE ...").rowcount)   # retried if transient

The decisions (URL handling, presets, retry rules, health verdicts) live once in
``_core.py``; the I/O is written once in ``_database_async.py``, from which
``tools/twins.py`` generates the sync ``Database`` in ``_database_sync.py``. The environment
variables ``from_env()`` reads are declared in ``_settings.DatabaseSettings``.
"""

from __future__ import annotations

from renderkit.db._core import PoolSettings, is_transient, normalize_url
from renderkit.db._database_async import AsyncDatabase
from renderkit.db._database_sync import Database

__all__ = ["AsyncDatabase", "Database", "PoolSettings", "is_transient", "normalize_url"]
