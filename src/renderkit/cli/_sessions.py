"""``renderkit sessions``: create the Postgres sessions table, prune expired sessions."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from renderkit._redact import first_line
from renderkit.cli._output import add_command

__all__ = ["register"]


def _store(args: argparse.Namespace) -> Any:
    from renderkit.db import Database
    from renderkit.sessions import PostgresStore, SessionStoreSettings

    url = args.database_url or SessionStoreSettings.load().database_url
    if not url:
        print(
            "renderkit sessions: no database; pass --database-url or set DATABASE_URL",
            file=sys.stderr,
        )
        return None
    db = Database(url, min_size=0, max_size=1, startup_budget=args.timeout)
    return db, PostgresStore(db, table=args.table, prune_interval=None)


def _run(args: argparse.Namespace) -> int:
    """manage the Postgres sessions table (migrate, prune)

    migrate: create the renderkit_sessions table and its indexes if missing
    (idempotent, safe from several instances); prune: delete expired sessions now.
    """
    try:
        opened = _store(args)
        if opened is None:
            return 2
        db, store = opened
        try:
            db.open()
            if args.action == "migrate":
                store.create_table()
                print(f"sessions table {args.table!r} is ready (created if it was missing)")
            else:
                removed = store.prune()
                print(f"pruned {removed} expired session(s) from {args.table!r}")
        finally:
            db.close()
    except Exception as exc:
        print(
            f"renderkit sessions {args.action}: {type(exc).__name__}: {first_line(exc)}",
            file=sys.stderr,
        )
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add ``sessions migrate`` and ``sessions prune`` to the CLI."""
    parser = add_command(subparsers, "sessions", _run)
    parser.add_argument("action", choices=["migrate", "prune"])
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="Postgres URL (default: $DATABASE_URL)",
    )
    parser.add_argument(
        "--table", default="renderkit_sessions", help="table name (default: renderkit_sessions)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to keep retrying the first connection (default: 30)",
    )
