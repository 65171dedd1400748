"""renderkit.db: URL handling, presets, env, retry decisions; then real Postgres behaviour."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

from renderkit._context import correlation_id_var
from renderkit.db import AsyncDatabase, Database, is_transient, normalize_url
from renderkit.db._core import _Attempt as Attempt
from renderkit.errors import BackendUnavailable, ConfigError

URL = "postgresql://app:s3cret@db.example.com:5432/app"


# -- configuration (no server) -----------------------------------------------------------


def test_postgres_scheme_is_normalised() -> None:
    """PaaS-style postgres:// URLs are accepted and rewritten to postgresql://."""
    assert normalize_url("postgres://u:p@h/db") == "postgresql://u:p@h/db"
    assert Database("postgres://u@h/db").url == "postgresql://u@h/db"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "mysql://u:hunter2@h/db",
        "postgresql://u:hunter2@h:notaport/db",
        "postgresql://u:hunter2@/db",
        "just text hunter2",
    ],
)
def test_malformed_url_is_a_config_error_with_masked_password(bad: str) -> None:
    """A bad DATABASE_URL raises ConfigError naming the variable, never the password."""
    with pytest.raises(ConfigError) as info:
        Database(bad)
    assert info.value.errors[0].variable == "DATABASE_URL"
    assert "hunter2" not in str(info.value)


def test_defaults_follow_the_issue() -> None:
    """Pool 2-10, 5 s connect, 30 s idle, 30 s statement timeout, 1 s slow-query threshold."""
    s = Database(URL).settings
    assert (s.min_size, s.max_size, s.connect_timeout, s.max_idle) == (2, 10, 5.0, 30.0)
    assert (s.statement_timeout, s.slow_query, s.pooled) == (30.0, 1.0, False)
    assert s.max_lifetime < 3600
    kwargs = Database(URL)._connect_kwargs()
    assert kwargs["options"] == "-c statement_timeout=30000"
    assert kwargs["connect_timeout"] == 5
    pool = Database(URL)._pool_kwargs()
    assert pool["open"] is False
    assert (pool["min_size"], pool["max_size"], pool["max_idle"]) == (2, 10, 30.0)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@ep-cool-123-pooler.us-east-2.aws.neon.tech/db",
        "postgresql://u@pgbouncer.internal/db?pgbouncer=true",
    ],
)
def test_transaction_pooler_disables_prepared_statements(url: str) -> None:
    """PgBouncer / Neon pooled endpoints get prepare_threshold=None and no startup options."""
    db = Database(url)
    kwargs = db._connect_kwargs()
    assert db.settings.pooled is True
    assert kwargs["prepare_threshold"] is None
    assert "options" not in kwargs
    assert "pgbouncer=" not in db.url  # libpq would reject the unknown parameter


def test_neon_preset_and_explicit_override() -> None:
    """Neon hosts get a longer connect timeout, start-up budget and short lifetime."""
    neon = Database("postgresql://u@ep-x.us-east-2.aws.neon.tech/db").settings
    assert (neon.connect_timeout, neon.startup_budget) == (10.0, 60.0)
    assert neon.max_lifetime < 300
    assert Database(URL, pooled=True).settings.pooled is True
    assert Database(URL, connect_timeout=2).settings.connect_timeout == 2


def test_sslmode_policy_in_production(caplog: pytest.LogCaptureFixture) -> None:
    """Production without sslmode=require warns (default) or fails (ssl='error')."""
    with caplog.at_level(logging.WARNING, logger="renderkit.db"):
        Database(URL, environment="production")
    assert "sslmode=require" in caplog.text
    with pytest.raises(ConfigError, match="sslmode"):
        Database(URL, environment="production", ssl="error")
    Database(URL + "?sslmode=require", environment="production", ssl="error")
    Database("postgresql://u@localhost/db", environment="production", ssl="error")
    Database(URL, environment="development", ssl="error")


def test_invalid_options_listed_together() -> None:
    """Every invalid constructor option is reported in one ConfigError."""
    with pytest.raises(ConfigError) as info:
        Database(URL, min_size=-1, max_size=0, retry_attempts=0, pool_timeout=0)
    assert {p.variable for p in info.value.errors} == {
        "min_size",
        "max_size",
        "retry_attempts",
        "pool_timeout",
    }


def test_from_env_reads_variables() -> None:
    """DATABASE_URL and DB_* variables configure the pool; durations accept units."""
    db = Database.from_env(
        {
            "DATABASE_URL": "postgres://u@h/db",
            "DB_POOL_MIN": "1",
            "DB_POOL_MAX": "4",
            "DB_CONNECT_TIMEOUT": "3s",
            "DB_STATEMENT_TIMEOUT": "1500ms",
            "DB_SLOW_QUERY": "0",
            "DB_POOLED": "true",
            "DB_APPLICATION_NAME": "web",
        }
    )
    s = db.settings
    assert (s.min_size, s.max_size, s.connect_timeout) == (1, 4, 3.0)
    assert (s.statement_timeout, s.slow_query, s.pooled) == (1.5, None, True)
    assert s.application_name == "web"
    assert isinstance(AsyncDatabase.from_env({"DATABASE_URL": "postgres://u@h/db"}), AsyncDatabase)


def test_from_env_reports_all_problems_masked() -> None:
    """Missing or malformed variables are all listed; the password is masked."""
    with pytest.raises(ConfigError) as info:
        Database.from_env(
            {
                "DATABASE_URL": "postgres://u:hunter2@h:bad/db",
                "DB_POOL_MAX": "ten",
                "DB_CONNECT_TIMEOUT": "soon",
                "DB_POOLED": "maybe",
                "DB_SSL": "strict",
            }
        )
    names = {p.variable for p in info.value.errors}
    assert names == {"DATABASE_URL", "DB_POOL_MAX", "DB_CONNECT_TIMEOUT", "DB_POOLED", "DB_SSL"}
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Database.from_env({})


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (psycopg.OperationalError("connection refused"), True),
        (pg_errors.AdminShutdown(), True),
        (pg_errors.CannotConnectNow(), True),
        (pg_errors.SerializationFailure(), True),
        (pg_errors.DeadlockDetected(), True),
        (pg_errors.InvalidPassword(), False),
        (pg_errors.UniqueViolation(), False),
        (pg_errors.QueryCanceled(), False),
        (ValueError("x"), False),
    ],
)
def test_transient_classification(exc: BaseException, transient: bool) -> None:
    """Only connection loss, shutdowns and server-resolved conflicts are retryable."""
    assert is_transient(exc) is transient


def test_non_idempotent_work_is_not_repeated_after_it_was_sent() -> None:
    """A lost connection after sending is retried only for idempotent work; rollbacks always."""
    db = Database(URL)
    sent, unsent = Attempt(), Attempt()
    sent.sent = True
    lost = pg_errors.AdminShutdown()
    assert db._should_retry(lost, False, unsent) is True
    assert db._should_retry(lost, False, sent) is False
    assert db._should_retry(lost, True, sent) is True
    assert db._should_retry(pg_errors.SerializationFailure(), False, sent) is True


def test_backoff_is_full_jitter_and_capped() -> None:
    """Backoff is uniform in [0, min(cap, base*2^n)]."""
    db = Database(URL, retry_backoff=0.1, retry_backoff_max=0.5)
    samples = [db._backoff(10) for _ in range(200)]
    assert max(samples) <= 0.5
    assert min(samples) < 0.1


def test_unopened_database_is_clear_and_unhealthy() -> None:
    """Using a database before open() says so; health reports unhealthy; close is harmless."""
    db = Database(URL)
    with pytest.raises(BackendUnavailable, match="open"):
        db.fetch_one("SELECT 1")
    assert db.health_check().status == "unhealthy"
    assert db.stats()["open"] is False
    db.close()
    db.close()


# -- real Postgres ---------------------------------------------------------------------


@pytest.fixture
def app_name() -> str:
    return f"rk-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def db(renderkit_database_url: str, app_name: str) -> Iterator[Database]:
    database = Database(
        renderkit_database_url,
        application_name=app_name,
        min_size=2,
        max_size=4,
        retry_backoff=0.01,
    )
    database.open()
    yield database
    database.close()


def _backends(url: str, app_name: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app_name,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _terminate(url: str, app_name: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (app_name,),
        ).fetchall()
    return len(rows)


@pytest.mark.integration
def test_url_options_are_kept_beside_the_statement_timeout(renderkit_database_url: str) -> None:
    """A URL's own ?options= (Neon's endpoint=, -c search_path=) survives our statement_timeout."""
    separator = "&" if "?" in renderkit_database_url else "?"
    url = f"{renderkit_database_url}{separator}options=-c%20search_path%3Drk_custom_path"
    database = Database(url, min_size=1, max_size=1, statement_timeout=7)
    database.open()
    try:
        assert database.fetch_one("SHOW search_path") == ("rk_custom_path",)
        assert database.fetch_one("SHOW statement_timeout") == ("7s",)
    finally:
        database.close()


@pytest.mark.integration
def test_queries_and_transactions(db: Database) -> None:
    """execute/fetch_one/fetch_all work; a failing transaction() rolls back."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS t (x int)")  # temp: per connection, fine here
    assert db.fetch_one("SELECT %s::int + 1", (41,)) == (42,)
    assert db.fetch_all("SELECT generate_series(1, 3)") == [(1,), (2,), (3,)]
    assert db.fetch_one("SELECT 1 WHERE false") is None
    name = f"rk_t_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE TABLE {name} (x int)")
    try:
        assert db.execute(f"INSERT INTO {name} VALUES (1), (2)") == 2
        with pytest.raises(RuntimeError), db.transaction() as conn:
            conn.execute(f"INSERT INTO {name} VALUES (3)")
            raise RuntimeError("abort")
        assert db.fetch_one(f"SELECT count(*) FROM {name}") == (2,)
    finally:
        db.execute(f"DROP TABLE {name}")
    stats = db.stats()
    assert stats["open"] is True
    assert stats["queries"] >= 5
    assert stats["pool_max"] == 4


@pytest.mark.integration
def test_terminated_connections_are_never_handed_out(
    db: Database, renderkit_database_url: str, app_name: str
) -> None:
    """After pg_terminate_backend of every pooled connection, the next query just works."""
    db.fetch_one("SELECT 1")
    assert _terminate(renderkit_database_url, app_name) >= 1
    for _ in range(5):
        assert db.fetch_one("SELECT 1") == (1,)
    assert db.stats()["retries"] == 0  # the pool's check discarded them, no retry needed
    assert db.health_check().status == "healthy"


@pytest.mark.integration
def test_run_retries_idempotent_work_after_connection_loss(db: Database) -> None:
    """run() repeats idempotent work whose connection died mid-transaction."""
    attempts = []

    def work(conn: Any) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return int(conn.execute("SELECT 7").fetchone()[0])

    assert db.run(work) == 7
    assert len(attempts) == 2
    assert db.stats()["retries"] == 1


@pytest.mark.integration
def test_run_does_not_repeat_non_idempotent_work(db: Database) -> None:
    """With idempotent=False a connection lost after sending raises the original error."""
    attempts = []

    def work(conn: Any) -> None:
        attempts.append(1)
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(psycopg.OperationalError):
        db.run(work, idempotent=False)
    assert len(attempts) == 1


@pytest.mark.integration
def test_run_gives_up_after_bounded_attempts(db: Database) -> None:
    """A failure that keeps happening is retried retry_attempts times, then re-raised as is."""
    attempts = []

    def work(conn: Any) -> None:
        attempts.append(1)
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(psycopg.OperationalError) as info:
        db.run(work)
    assert len(attempts) == 3
    assert not type(info.value).__name__.startswith("Retry")


@pytest.mark.integration
def test_statement_timeout_and_slow_query_log(
    renderkit_database_url: str, app_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """statement_timeout cancels long statements; slow ones are logged with the request id."""
    with Database(
        renderkit_database_url,
        application_name=app_name,
        min_size=1,
        statement_timeout=0.3,
        slow_query=0.05,
    ) as db:
        with pytest.raises(pg_errors.QueryCanceled):
            db.fetch_one("SELECT pg_sleep(2)")
        token = correlation_id_var.set("req-123")
        try:
            with caplog.at_level(logging.WARNING, logger="renderkit.db"):
                db.fetch_one("SELECT pg_sleep(0.1)")
        finally:
            correlation_id_var.reset(token)
        record = next(r for r in caplog.records if "slow query" in r.message)
        assert record.correlation_id == "req-123"  # type: ignore[attr-defined]
        assert "pg_sleep(0.1)" in record.getMessage()
        assert db.stats()["slow_queries"] == 1


@pytest.mark.integration
def test_close_releases_every_connection(renderkit_database_url: str, app_name: str) -> None:
    """close() is orderly and idempotent: no backend of ours remains."""
    db = Database(renderkit_database_url, application_name=app_name, min_size=3, max_size=3)
    db.open()
    db.open()  # idempotent
    assert _backends(renderkit_database_url, app_name) == 3
    db.close()
    db.close()
    assert _backends(renderkit_database_url, app_name) == 0
    assert db.health_check().status == "unhealthy"


@pytest.mark.integration
def test_open_fails_fast_on_auth_errors() -> None:
    """A non-transient connect error (unknown database) is raised at once, not retried."""
    db = Database("postgresql://postgres@127.0.0.1:5432/rk_no_such_db", startup_budget=20)
    with pytest.raises(psycopg.OperationalError, match="rk_no_such_db"):
        db.open()
    assert db.stats()["open_attempts"] == 1


@pytest.mark.integration
async def test_async_database(renderkit_database_url: str, app_name: str) -> None:
    """AsyncDatabase mirrors Database: queries, run() retry, health, terminate survival."""
    db = AsyncDatabase(
        renderkit_database_url,
        application_name=app_name,
        min_size=2,
        max_size=4,
        retry_backoff=0.01,
    )
    await db.open()
    try:
        assert await db.fetch_one("SELECT %s::int", (5,)) == (5,)
        assert await db.fetch_all("SELECT 1 UNION ALL SELECT 2") == [(1,), (2,)]
        assert await db.execute("SELECT 1") == 1
        attempts = []

        async def work(conn: Any) -> int:
            attempts.append(1)
            if len(attempts) == 1:
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            cur = await conn.execute("SELECT 9")
            row = await cur.fetchone()
            return int(row[0])

        assert await db.run(work) == 9
        assert len(attempts) == 2
        _terminate(renderkit_database_url, app_name)
        assert await db.fetch_one("SELECT 1") == (1,)
        health = await db.health_check()
        assert health.status == "healthy"
        assert health.latency_ms is not None
        async with db.transaction() as conn:
            await conn.execute("SELECT 1")
    finally:
        await db.close()
        await db.close()
    assert _backends(renderkit_database_url, app_name) == 0


@pytest.mark.integration
def test_statement_retries_are_bounded_too(db: Database) -> None:
    """fetch_one on a statement that always loses its connection tries retry_attempts times."""
    with pytest.raises(psycopg.OperationalError):
        db.fetch_one("SELECT pg_terminate_backend(pg_backend_pid())")
    stats = db.stats()
    assert stats["errors"] == 3
    assert stats["retries"] == 2
    assert db.fetch_one("SELECT 1") == (1,)


def test_from_env_names_the_variable_of_an_out_of_range_value() -> None:
    """A parsable but invalid pool size is reported under its DB_* variable."""
    with pytest.raises(ConfigError) as info:
        Database.from_env(
            {"DATABASE_URL": "postgres://u@h/db", "DB_POOL_MIN": "5", "DB_POOL_MAX": "2"}
        )
    assert [p.variable for p in info.value.errors] == ["DB_POOL_MAX"]
    assert info.value.errors[0].source == "environment"
