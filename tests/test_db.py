"""renderkit.db: URL handling, presets, env, retry decisions; then real Postgres behaviour.

Every test runs for both twins (``side`` is ``sync`` or ``async``): the sync ``Database`` is
generated from the ``AsyncDatabase`` source, and this one matrix holds both to one contract.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

from _pg_servers import Side, backends, backends_after_close, terminate
from renderkit._context import correlation_id_var
from renderkit.db import is_transient, normalize_url
from renderkit.db._core import Attempt
from renderkit.errors import BackendUnavailable, ConfigError

URL = "postgresql://app:s3cret@db.example.com:5432/app"


@pytest.fixture(params=["sync", "async"])
def side(request: pytest.FixtureRequest) -> Side:
    return Side(request.param)


# -- configuration (no server) -----------------------------------------------------------


def test_postgres_scheme_is_normalised(side: Side) -> None:
    """PaaS-style postgres:// URLs are accepted and rewritten to postgresql://."""
    assert normalize_url("postgres://u:p@h/db") == "postgresql://u:p@h/db"
    assert side.make("postgres://u@h/db").url == "postgresql://u@h/db"


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
def test_malformed_url_is_a_config_error_with_masked_password(side: Side, bad: str) -> None:
    """A bad DATABASE_URL raises ConfigError naming the variable, never the password."""
    with pytest.raises(ConfigError) as info:
        side.make(bad)
    assert info.value.errors[0].variable == "DATABASE_URL"
    assert info.value.errors[0].source == "code"  # passed as an argument, not read from env
    assert "hunter2" not in str(info.value)


def test_defaults_follow_the_issue(side: Side) -> None:
    """Pool 2-10, 5 s connect, 30 s idle, 30 s statement timeout, 1 s slow-query threshold."""
    db = side.make(URL)
    s = db.settings
    assert (s.min_size, s.max_size, s.connect_timeout, s.max_idle) == (2, 10, 5.0, 30.0)
    assert (s.statement_timeout, s.slow_query, s.pooled) == (30.0, 1.0, False)
    assert (s.reconnect_initial, s.reconnect_max, s.on_startup_timeout) == (1.0, 16.0, "reconnect")
    assert s.max_lifetime < 3600
    kwargs = db._connect_kwargs()
    assert kwargs["options"] == "-c statement_timeout=30000"
    assert kwargs["connect_timeout"] == 5
    pool = db._pool_kwargs()
    assert pool["open"] is False
    assert (pool["min_size"], pool["max_size"], pool["max_idle"]) == (2, 10, 30.0)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@ep-cool-123-pooler.us-east-2.aws.neon.tech/db",
        "postgresql://u@pgbouncer.internal/db?pgbouncer=true",
    ],
)
def test_transaction_pooler_disables_prepared_statements(side: Side, url: str) -> None:
    """PgBouncer / Neon pooled endpoints get prepare_threshold=None and no startup options."""
    db = side.make(url)
    kwargs = db._connect_kwargs()
    assert db.settings.pooled is True
    assert kwargs["prepare_threshold"] is None
    assert "options" not in kwargs
    assert "pgbouncer=" not in db.url  # libpq would reject the unknown parameter


def test_neon_preset_and_explicit_override(side: Side) -> None:
    """Neon hosts get a longer connect timeout, start-up budget and short lifetime."""
    neon = side.make("postgresql://u@ep-x.us-east-2.aws.neon.tech/db").settings
    assert (neon.connect_timeout, neon.startup_budget) == (10.0, 60.0)
    assert neon.max_lifetime < 300
    assert side.make(URL, pooled=True).settings.pooled is True
    assert side.make(URL, connect_timeout=2).settings.connect_timeout == 2


def test_sslmode_policy_in_production(side: Side, caplog: pytest.LogCaptureFixture) -> None:
    """Production without sslmode=require warns (default) or fails (ssl='error')."""
    with caplog.at_level(logging.WARNING, logger="renderkit.db"):
        side.make(URL, environment="production")
    assert "sslmode=require" in caplog.text
    with pytest.raises(ConfigError, match="sslmode"):
        side.make(URL, environment="production", ssl="error")
    side.make(URL + "?sslmode=require", environment="production", ssl="error")
    side.make("postgresql://u@localhost/db", environment="production", ssl="error")
    side.make(URL, environment="development", ssl="error")


def test_invalid_options_listed_together(side: Side) -> None:
    """Every invalid constructor option is reported in one ConfigError, replicas included."""
    with pytest.raises(ConfigError) as info:
        side.make(
            URL,
            min_size=-1,
            max_size=0,
            retry_attempts=0,
            pool_timeout=0,
            reconnect_initial=4,
            reconnect_max=2,
            on_startup_timeout="crash",
            replicas=["mysql://u:hunter2@h/db"],
        )
    assert {p.variable for p in info.value.errors} == {
        "min_size",
        "max_size",
        "retry_attempts",
        "pool_timeout",
        "reconnect_max",
        "on_startup_timeout",
        "replicas[0]",
    }
    assert "hunter2" not in str(info.value)


def test_from_env_reads_variables(side: Side) -> None:
    """DATABASE_URL and DB_* variables configure the pool; durations accept units."""
    db = side.cls.from_env(
        {
            "DATABASE_URL": "postgres://u@h/db",
            "DATABASE_REPLICA_URLS": "postgres://u@r1/db,postgres://u@r2/db",
            "DB_POOL_MIN": "1",
            "DB_POOL_MAX": "4",
            "DB_CONNECT_TIMEOUT": "3s",
            "DB_STATEMENT_TIMEOUT": "1500ms",
            "DB_SLOW_QUERY": "0",
            "DB_POOLED": "true",
            "DB_RECONNECT_INITIAL": "500ms",
            "DB_RECONNECT_MAX": "8s",
            "DB_ON_STARTUP_TIMEOUT": "raise",
            "DB_APPLICATION_NAME": "web",
        }
    )
    assert isinstance(db, side.cls)
    s = db.settings
    assert (s.min_size, s.max_size, s.connect_timeout) == (1, 4, 3.0)
    assert (s.statement_timeout, s.slow_query, s.pooled) == (1.5, None, True)
    assert (s.reconnect_initial, s.reconnect_max, s.on_startup_timeout) == (0.5, 8.0, "raise")
    assert s.application_name == "web"
    assert [r.url for r in db.replicas.all] == ["postgresql://u@r1/db", "postgresql://u@r2/db"]


def test_from_env_defaults_and_render_service_name(side: Side) -> None:
    """Unset variables keep the constructor's presets; Render's service name names the pool."""
    db = side.cls.from_env({"DATABASE_URL": "postgres://u@h/db", "RENDER": "true"})
    assert db.settings.application_name == "renderkit"
    named = side.cls.from_env(
        {"DATABASE_URL": "postgres://u@h/db", "RENDER": "true", "RENDER_SERVICE_NAME": "api"}
    )
    assert named.settings.application_name == "api"
    neon = side.cls.from_env({"DATABASE_URL": "postgres://u@ep-1.eu.aws.neon.tech/db"})
    assert neon.settings.startup_budget == 60.0
    assert (
        side.cls.from_env({"DATABASE_URL": "postgres://u@h/db"}, min_size=0).settings.min_size == 0
    )


def test_from_env_reports_all_problems_masked(side: Side) -> None:
    """Missing or malformed variables are all listed; the password is masked."""
    with pytest.raises(ConfigError) as info:
        side.cls.from_env(
            {
                "DATABASE_URL": "postgres://u:hunter2@h:bad/db",
                "DB_POOL_MAX": "ten",
                "DB_CONNECT_TIMEOUT": "soon",
                "DB_POOLED": "maybe",
                "DB_SSL": "strict",
                "DB_RECONNECT_MAX": "-",
            }
        )
    names = {p.variable for p in info.value.errors}
    assert names == {
        "DATABASE_URL",
        "DB_POOL_MAX",
        "DB_CONNECT_TIMEOUT",
        "DB_POOLED",
        "DB_SSL",
        "DB_RECONNECT_MAX",
    }
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        side.cls.from_env({})


def test_from_env_names_the_variable_of_an_out_of_range_value(side: Side) -> None:
    """A parsable but invalid pool size is reported under its DB_* variable."""
    with pytest.raises(ConfigError) as info:
        side.cls.from_env(
            {"DATABASE_URL": "postgres://u@h/db", "DB_POOL_MIN": "5", "DB_POOL_MAX": "2"}
        )
    assert [p.variable for p in info.value.errors] == ["DB_POOL_MAX"]
    assert info.value.errors[0].source == "environment"


def test_settings_declare_every_variable_with_help() -> None:
    """Each variable from_env() reads is declared with help text (docs/environment.md)."""
    from renderkit.db._settings import DatabaseSettings

    fields = DatabaseSettings.describe()
    assert all(f.help for f in fields)
    assert {"DATABASE_URL", "DB_POOL_MIN", "DB_POOL_MAX", "DB_RECONNECT_MAX"} <= {
        f.variable for f in fields
    }
    assert next(f for f in fields if f.variable == "DATABASE_URL").secret


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (psycopg.OperationalError("connection refused"), True),
        (psycopg.OperationalError("FATAL:  unsupported startup parameter: options"), False),
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


def test_non_idempotent_work_is_not_repeated_after_it_was_sent(side: Side) -> None:
    """A lost connection after sending is retried only for idempotent work; rollbacks always."""
    db = side.make(URL)
    sent, unsent = Attempt(), Attempt()
    sent.sent = True
    lost = pg_errors.AdminShutdown()
    assert db._should_retry(lost, False, unsent) is True
    assert db._should_retry(lost, False, sent) is False
    assert db._should_retry(lost, True, sent) is True
    assert db._should_retry(pg_errors.SerializationFailure(), False, sent) is True


def test_backoff_is_full_jitter_and_capped(side: Side) -> None:
    """Backoff is uniform in [0, min(cap, base*2^n)]."""
    db = side.make(URL, retry_backoff=0.1, retry_backoff_max=0.5)
    samples = [db._backoff(10) for _ in range(200)]
    assert max(samples) <= 0.5
    assert min(samples) < 0.1


def test_reconnect_backoff_defaults_to_1_2_4_8_16_with_full_jitter(side: Side) -> None:
    """The connect retries wait uniform(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), then (0, 16)."""
    from tenacity import RetryCallState

    wait = side.make(URL)._connect_retrying_kwargs(background=True)["wait"]
    for attempt, cap in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (9, 16)]:
        state = RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        samples = [wait(state) for _ in range(300)]
        assert max(samples) <= cap
        assert min(samples) < cap * 0.2  # full jitter: from zero, not from the cap's half
        assert max(samples) > cap * 0.8


async def test_unopened_database_is_clear_and_unhealthy(side: Side) -> None:
    """Using a database before open() says so; health reports unhealthy; close is harmless."""
    db = side.make(URL)
    with pytest.raises(BackendUnavailable, match="open"):
        await side.call(db, "fetch_one", "SELECT 1")
    assert (await side.call(db, "health_check")).status == "unhealthy"
    assert db.stats()["open"] is False
    await side.call(db, "close")
    await side.call(db, "close")


# -- real Postgres ---------------------------------------------------------------------


@pytest.fixture
def app_name() -> str:
    return f"rk-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def db(side: Side, renderkit_database_url: str, app_name: str) -> AsyncIterator[Any]:
    database = side.make(
        renderkit_database_url,
        application_name=app_name,
        min_size=2,
        max_size=4,
        retry_backoff=0.01,
    )
    await side.call(database, "open")
    yield database
    await side.call(database, "close")


@pytest.mark.integration
async def test_url_options_are_kept_beside_the_statement_timeout(
    side: Side, renderkit_database_url: str
) -> None:
    """A URL's own ?options= (Neon's endpoint=, -c search_path=) survives our statement_timeout."""
    separator = "&" if "?" in renderkit_database_url else "?"
    url = f"{renderkit_database_url}{separator}options=-c%20search_path%3Drk_custom_path"
    database = side.make(url, min_size=1, max_size=1, statement_timeout=7)
    await side.call(database, "open")
    try:
        assert await side.call(database, "fetch_one", "SHOW search_path") == ("rk_custom_path",)
        assert await side.call(database, "fetch_one", "SHOW statement_timeout") == ("7s",)
    finally:
        await side.call(database, "close")


@pytest.mark.integration
async def test_queries_and_transactions(side: Side, db: Any) -> None:
    """execute/fetch_one/fetch_all work; a failing transaction() rolls back."""
    assert await side.call(db, "fetch_one", "SELECT %s::int + 1", (41,)) == (42,)
    assert await side.call(db, "fetch_all", "SELECT generate_series(1, 3)") == [(1,), (2,), (3,)]
    assert await side.call(db, "fetch_one", "SELECT 1 WHERE false") is None
    name = f"rk_t_{uuid.uuid4().hex[:8]}"
    await side.call(db, "execute", f"CREATE TABLE {name} (x int)")
    try:
        assert await side.call(db, "execute", f"INSERT INTO {name} VALUES (1), (2)") == 2
        with pytest.raises(RuntimeError):
            await side.in_transaction(db, [f"INSERT INTO {name} VALUES (3)"], fail=True)
        assert await side.call(db, "fetch_one", f"SELECT count(*) FROM {name}") == (2,)
        await side.in_transaction(db, [f"INSERT INTO {name} VALUES (3)"])
        assert await side.call(db, "fetch_one", f"SELECT count(*) FROM {name}") == (3,)
    finally:
        await side.call(db, "execute", f"DROP TABLE {name}")
    stats = db.stats()
    assert stats["open"] is True
    assert stats["queries"] >= 5
    assert stats["pool_max"] == 4


@pytest.mark.integration
async def test_read_only_without_replicas_uses_the_primary(side: Side, db: Any) -> None:
    """read_only=True on a database without replicas is simply served by the primary."""
    assert await side.call(db, "fetch_one", "SELECT 3", read_only=True) == (3,)
    assert await side.call(db, "fetch_all", "SELECT 4", read_only=True) == [(4,)]
    assert await side.in_transaction(db, ["SELECT 5"], read_only=True) == [(5,)]
    assert db.stats()["replica_queries"] == 0


@pytest.mark.integration
async def test_terminated_connections_are_never_handed_out(
    side: Side, db: Any, renderkit_database_url: str, app_name: str
) -> None:
    """After pg_terminate_backend of every pooled connection, the next query just works."""
    await side.call(db, "fetch_one", "SELECT 1")
    assert terminate(renderkit_database_url, app_name) >= 1
    for _ in range(5):
        assert await side.call(db, "fetch_one", "SELECT 1") == (1,)
    assert db.stats()["retries"] == 0  # the pool's check discarded them, no retry needed
    health = await side.call(db, "health_check")
    assert health.status == "healthy"
    assert health.latency_ms is not None


@pytest.mark.integration
async def test_run_retries_idempotent_work_after_connection_loss(side: Side, db: Any) -> None:
    """run() repeats idempotent work whose connection died mid-transaction."""
    attempts: list[int] = []
    kill = "SELECT pg_terminate_backend(pg_backend_pid())"
    assert await side.call(db, "run", side.work(attempts, "SELECT 7", first=kill)) == 7
    assert len(attempts) == 2
    assert db.stats()["retries"] == 1


@pytest.mark.integration
async def test_run_does_not_repeat_non_idempotent_work(side: Side, db: Any) -> None:
    """With idempotent=False a connection lost after sending raises the original error."""
    attempts: list[int] = []
    work = side.work(attempts, "SELECT 1", every="SELECT pg_terminate_backend(pg_backend_pid())")
    with pytest.raises(psycopg.OperationalError):
        await side.call(db, "run", work, idempotent=False)
    assert len(attempts) == 1


@pytest.mark.integration
async def test_run_gives_up_after_bounded_attempts(side: Side, db: Any) -> None:
    """A failure that keeps happening is retried retry_attempts times, then re-raised as is."""
    attempts: list[int] = []
    work = side.work(attempts, "SELECT 1", every="SELECT pg_terminate_backend(pg_backend_pid())")
    with pytest.raises(psycopg.OperationalError) as info:
        await side.call(db, "run", work)
    assert len(attempts) == 3
    assert not type(info.value).__name__.startswith("Retry")


@pytest.mark.integration
async def test_statement_retries_are_bounded_too(side: Side, db: Any) -> None:
    """fetch_one on a statement that always loses its connection tries retry_attempts times."""
    with pytest.raises(psycopg.OperationalError):
        await side.call(db, "fetch_one", "SELECT pg_terminate_backend(pg_backend_pid())")
    stats = db.stats()
    assert stats["errors"] == 3
    assert stats["retries"] == 2
    assert await side.call(db, "fetch_one", "SELECT 1") == (1,)


@pytest.mark.integration
async def test_statement_timeout_and_slow_query_log(
    side: Side, renderkit_database_url: str, app_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """statement_timeout cancels long statements; slow ones are logged with the request id."""
    db = side.make(
        renderkit_database_url,
        application_name=app_name,
        min_size=1,
        statement_timeout=0.3,
        slow_query=0.05,
    )
    await side.call(db, "open")
    try:
        with pytest.raises(pg_errors.QueryCanceled):
            await side.call(db, "fetch_one", "SELECT pg_sleep(2)")
        token = correlation_id_var.set("req-123")
        try:
            with caplog.at_level(logging.WARNING, logger="renderkit.db"):
                await side.call(db, "fetch_one", "SELECT pg_sleep(0.1)")
        finally:
            correlation_id_var.reset(token)
        record = next(r for r in caplog.records if "slow query" in r.message)
        assert record.correlation_id == "req-123"  # type: ignore[attr-defined]
        assert "pg_sleep(0.1)" in record.getMessage()
        assert db.stats()["slow_queries"] == 1
    finally:
        await side.call(db, "close")


@pytest.mark.integration
async def test_check_bounds_the_statement_server_side(side: Side, db: Any) -> None:
    """check() runs SELECT 1 under SET LOCAL statement_timeout; the setting does not leak."""
    assert await side.call(db, "check", 2.0) > 0
    # SET LOCAL lasted only the check's transaction: the session keeps the pool's 30 s.
    for _ in range(4):
        assert await side.call(db, "fetch_one", "SHOW statement_timeout") == ("30s",)


@pytest.mark.integration
async def test_close_releases_every_connection(
    side: Side, renderkit_database_url: str, app_name: str
) -> None:
    """close() is orderly and idempotent: no backend of ours remains."""
    db = side.make(renderkit_database_url, application_name=app_name, min_size=3, max_size=3)
    await side.call(db, "open")
    await side.call(db, "open")  # idempotent
    assert backends(renderkit_database_url, app_name) == 3
    await side.call(db, "close")
    await side.call(db, "close")
    assert backends_after_close(renderkit_database_url, app_name) == 0
    assert (await side.call(db, "health_check")).status == "unhealthy"


@pytest.mark.integration
async def test_open_fails_fast_on_auth_errors(side: Side, renderkit_database_url: str) -> None:
    """A non-transient connect error (unknown database) is raised at once, not retried."""
    info = psycopg.conninfo.conninfo_to_dict(renderkit_database_url)
    url = f"postgresql://postgres@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/rk_nodb"
    db = side.make(url, startup_budget=20)
    with pytest.raises(psycopg.OperationalError, match="rk_nodb"):
        await side.call(db, "open")
    assert db.stats()["open_attempts"] == 1
    assert db.stats()["reconnecting"] is False


@pytest.mark.integration
async def test_a_burst_of_concurrent_queries_stays_within_the_pool(
    side: Side, renderkit_database_url: str, app_name: str
) -> None:
    """200 queries at once against a pool of 3: every one answers, never more than 3
    server connections, nobody waits past the pool timeout."""
    import asyncio

    db = side.make(renderkit_database_url, application_name=app_name, min_size=1, max_size=3)
    await side.call(db, "open")
    try:
        rows = await asyncio.gather(
            *(
                side.call(db, "fetch_one", "SELECT %s::int, pg_sleep(0.002)", (i,))
                for i in range(200)
            )
        )
        assert [r[0] for r in rows] == list(range(200))
        assert backends(renderkit_database_url, app_name) <= 3
        stats = db.stats()
        assert stats["errors"] == 0
        assert stats["pool_size"] <= 3
    finally:
        await side.call(db, "close")
