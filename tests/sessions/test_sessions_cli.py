"""``renderkit sessions migrate`` / ``prune``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from renderkit.cli import main


def test_migrate_without_a_database_says_which_variable(monkeypatch: Any, capsys: Any) -> None:
    """No --database-url and no DATABASE_URL: exit 2 naming both."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["sessions", "migrate"]) == 2
    assert "--database-url" in capsys.readouterr().err


def test_migrate_with_a_bad_url_fails_cleanly(capsys: Any) -> None:
    """A malformed URL exits 1 with a one-line reason, no traceback."""
    assert main(["sessions", "migrate", "--database-url", "mysql://x@h/db", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("renderkit sessions migrate:") and "Traceback" not in err


@pytest.mark.integration
def test_migrate_creates_the_table_idempotently(renderkit_database_url: str, capsys: Any) -> None:
    """migrate twice succeeds; the table and its indexes exist; prune runs on it."""
    from renderkit.db import Database

    table = "rk_cli_" + uuid.uuid4().hex[:10]
    args = ["--database-url", renderkit_database_url, "--table", table]
    assert main(["sessions", "migrate", *args]) == 0
    assert main(["sessions", "migrate", *args]) == 0
    assert main(["sessions", "prune", *args]) == 0
    assert "pruned 0 expired" in capsys.readouterr().out
    with Database(renderkit_database_url, min_size=0, max_size=1) as db:
        try:
            indexes = {
                row[0]
                for row in db.fetch_all(
                    "SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)
                )
            }
            assert {f"{table}_expires_at_idx", f"{table}_user_id_idx"} <= indexes
        finally:
            db.execute(f"DROP TABLE IF EXISTS {table}")
