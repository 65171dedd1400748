"""The environment variables ``Database.from_env()`` reads, declared once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from renderkit._variables import DATABASE_URL
from renderkit.config import ConfigError, ConfigProblem, PostgresUrl, Seconds, Settings, env

D = TypeVar("D")


class DatabaseSettings(Settings):
    """Postgres connection and pool settings for ``Database.from_env()`` / ``AsyncDatabase``."""

    # The shared DATABASE_URL, but required here: there is no database without it.
    url: PostgresUrl = env("DATABASE_URL", secret=True, help=DATABASE_URL.help)
    replicas: list[PostgresUrl] = env("DATABASE_REPLICA_URLS", default=[], secret=True)
    """Read replicas, comma-separated URLs; read_only=True queries go there first."""
    min_size: int = env("DB_POOL_MIN", default=2)
    """Connections the pool keeps open."""
    max_size: int = env("DB_POOL_MAX", default=10)
    """Upper bound of the pool, per process."""
    connect_timeout: Seconds | None = env("DB_CONNECT_TIMEOUT", default=None)
    """libpq connect timeout; unset: 5s (Neon: 10s)."""
    pool_timeout: Seconds = env("DB_POOL_TIMEOUT", default="10s")
    """Wait for a free connection before PoolTimeout."""
    max_idle: Seconds = env("DB_MAX_IDLE", default="30s")
    """Close connections idle longer (above DB_POOL_MIN)."""
    max_lifetime: Seconds | None = env("DB_MAX_LIFETIME", default=None)
    """Recycle connections after this long; unset: 30m (Neon: 4m)."""
    statement_timeout: Seconds = env("DB_STATEMENT_TIMEOUT", default="30s")
    """Server-side limit per statement; 0 disables."""
    slow_query: Seconds = env("DB_SLOW_QUERY", default="1s")
    """Log statements slower than this; 0 disables."""
    startup_budget: Seconds | None = env("DB_STARTUP_BUDGET", default=None)
    """How long open() retries the first connect; unset: 30s (Neon: 60s)."""
    on_startup_timeout: Literal["reconnect", "raise"] = env(
        "DB_ON_STARTUP_TIMEOUT", default="reconnect"
    )
    """Past the budget: reconnect (serve without Postgres, retry in the background) or raise (fail
    the boot)."""
    reconnect_initial: Seconds = env("DB_RECONNECT_INITIAL", default="1s")
    """First connect-retry backoff cap; doubles each attempt (full jitter)."""
    reconnect_max: Seconds = env("DB_RECONNECT_MAX", default="16s")
    """Largest connect-retry backoff cap."""
    retry_attempts: int = env("DB_RETRY_ATTEMPTS", default=3)
    """Attempts in total for run() and statements."""
    pooled: Literal["auto", "true", "false"] = env("DB_POOLED", default="auto")
    """true behind PgBouncer in transaction mode; auto: -pooler hosts, ?pgbouncer=true, or a server
    refusing startup options."""
    ssl: Literal["error", "warn", "off"] = env("DB_SSL", default="warn")
    """A non-TLS URL in production: error, warn or off (private networks)."""
    application_name: str | None = env("DB_APPLICATION_NAME", default=None)
    """Shown in pg_stat_activity; unset: the Render service name, else renderkit."""


def build(
    cls: Callable[..., D], environ: Mapping[str, str] | None, overrides: Mapping[str, Any]
) -> D:
    """``cls(**settings)`` from the environment, each problem named by its variable."""
    from renderkit.platform import detect

    settings = DatabaseSettings.load(environ)
    # Unset presets (connect_timeout, max_lifetime, startup_budget) are left out: the
    # constructor decides them (Neon or not).
    kwargs = settings.options()
    kwargs["url"] = str(kwargs["url"])
    kwargs["replicas"] = [str(u) for u in kwargs["replicas"]]
    kwargs["pooled"] = {"auto": None, "true": True, "false": False}[kwargs["pooled"]]
    if "application_name" not in kwargs:
        service = detect(environ).service_name
        kwargs["application_name"] = (service or "renderkit")[:63]
    kwargs.update(overrides)
    url = kwargs.pop("url")
    try:
        return cls(url, **kwargs)
    except ConfigError as exc:
        # A value that parses but is out of range (DB_POOL_MAX below DB_POOL_MIN) is reported
        # under the variable it came from, unless the caller passed it in code.
        variables = {f.attribute: f.variable for f in DatabaseSettings.describe()}
        problems = [
            ConfigProblem(variables[p.variable], p.message, "environment")
            if p.source == "code" and p.variable in variables and p.variable not in overrides
            else p
            for p in exc.errors
        ]
        raise ConfigError(problems) from None
