"""Pooled Postgres for PaaS apps: ``Database`` (sync) and ``AsyncDatabase`` (asyncio).

Both wrap a psycopg_pool pool that checks every connection before handing it out, so a
Postgres restart costs a reconnect, never an error from a dead connection::

    db = Database(os.environ["DATABASE_URL"])
    db.open()                      # retries the first connect while Postgres wakes up
    db.fetch_one("SELECT 1")
    db.run(lambda conn: conn.execute("UPDATE ...").rowcount)   # retried if transient

Everything that does not touch the network (URL handling, presets, retry decisions, slow-query
logging, counters, health verdicts) lives in :class:`_DatabaseBase`, shared by the twins.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

from renderkit._context import correlation_id_var
from renderkit._optional import require
from renderkit.errors import BackendUnavailable, ConfigError, ConfigProblem
from renderkit.health import CheckResult

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = ["AsyncDatabase", "Database", "PoolSettings", "is_transient", "normalize_url"]

T = TypeVar("T")
SslPolicy = Literal["error", "warn", "off"]
Params = Sequence[Any] | Mapping[str, Any] | None

logger = logging.getLogger("renderkit.db")

_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
_SECURE_SSLMODES = {"require", "verify-ca", "verify-full"}
# SQLSTATEs after which a retry can succeed: connection exceptions (class 08), the server
# shutting down or starting (57P01-57P03), too many connections, and the two conflicts the
# server resolves by rolling the transaction back.
_RETRY_CLASSES = ("08",)
_RETRY_STATES = {"57P01", "57P02", "57P03", "53300"}
_ROLLED_BACK_STATES = {"40001", "40P01"}
_PERMANENT_CONNECT_ERRORS = (
    "does not exist",
    "authentication failed",
    "no pg_hba.conf entry",
    "permission denied",
    "invalid sslmode",
    "certificate",
    "password supplied",
    "no password",
)


def _mask(url: str) -> str:
    """The URL with its password replaced, safe for logs and error messages."""
    from renderkit.config import mask_url

    return mask_url(url)


def normalize_url(url: str, *, variable: str = "DATABASE_URL") -> str:
    """Accept ``postgres://`` and ``postgresql://`` URLs; return the ``postgresql://`` form.

    Raises :class:`~renderkit.errors.ConfigError` naming ``variable`` (password masked) when the
    value is not a usable Postgres URL.
    """
    from renderkit.config import parse_postgres_url

    if not isinstance(url, str) or not url.strip():
        raise ConfigError(ConfigProblem(variable, "is empty; set it to postgresql://user@host/db"))
    try:
        return str(parse_postgres_url(url))
    except ValueError as exc:
        # Only a URL's password can be masked reliably; anything else is not echoed at all.
        shown = _mask(url.strip()) if "://" in url else "a value that is not a URL (hidden)"
        raise ConfigError(ConfigProblem(variable, f"{exc}; got {shown}")) from None


def is_transient(exc: BaseException) -> bool:
    """True for failures a retry can fix: lost connections, shutdowns, serialization conflicts."""
    psycopg = require("psycopg", extra="postgres", feature="renderkit.db")
    pool_mod = require("psycopg_pool", extra="postgres", feature="renderkit.db")
    if isinstance(exc, pool_mod.PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    if state is None:
        # A failed connect carries no SQLSTATE: tell refused/reset/timed out/starting up
        # (worth retrying) from a wrong password, database or host (never going to work).
        message = str(exc).lower()
        return not any(marker in message for marker in _PERMANENT_CONNECT_ERRORS)
    return (
        state.startswith(_RETRY_CLASSES) or state in _RETRY_STATES or (state in _ROLLED_BACK_STATES)
    )


def _rolled_back(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) in _ROLLED_BACK_STATES


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Resolved settings of one database (what ``stats()`` and the docs call the options)."""

    min_size: int
    max_size: int
    connect_timeout: float
    pool_timeout: float
    max_idle: float
    max_lifetime: float
    statement_timeout: float | None
    slow_query: float | None
    pooled: bool
    startup_budget: float
    retry_attempts: int
    application_name: str


class _Attempt:
    """Tracks whether one attempt reached the point where the statement may have been sent."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


class _DatabaseBase:
    """All decisions of :class:`Database` and :class:`AsyncDatabase`; no I/O."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        connect_timeout: float | None = None,
        pool_timeout: float = 10.0,
        max_idle: float = 30.0,
        max_lifetime: float | None = None,
        statement_timeout: float | None = 30.0,
        slow_query: float | None = 1.0,
        pooled: bool | None = None,
        startup_budget: float | None = None,
        retry_attempts: int = 3,
        retry_backoff: float = 0.1,
        retry_backoff_max: float = 2.0,
        application_name: str = "renderkit",
        ssl: SslPolicy = "warn",
        environment: str | None = None,
        name: str = "database",
        connect_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = normalize_url(url)
        self.name = name
        parts = urlsplit(self.url)
        query = dict(parse_qsl(parts.query))
        host = (parts.hostname or query.get("host", "")).lower()
        problems: list[ConfigProblem] = []
        if min_size < 0:
            problems.append(ConfigProblem("min_size", f"must be >= 0, got {min_size}", "code"))
        if max_size < max(1, min_size):
            problems.append(
                ConfigProblem("max_size", f"must be >= max(1, min_size), got {max_size}", "code")
            )
        if retry_attempts < 1:
            problems.append(
                ConfigProblem("retry_attempts", f"must be >= 1, got {retry_attempts}", "code")
            )
        for label, value in (("pool_timeout", pool_timeout), ("max_idle", max_idle)):
            if value <= 0:
                problems.append(ConfigProblem(label, f"must be > 0 seconds, got {value}", "code"))
        if ssl not in ("error", "warn", "off"):
            problems.append(ConfigProblem("ssl", f"must be error|warn|off, got {ssl!r}", "code"))
        if problems:
            raise ConfigError(problems)

        # PgBouncer in transaction mode (Neon "-pooler" hosts too) cannot keep prepared
        # statements, nor accept the "options" startup parameter.
        pgbouncer_flag = query.pop("pgbouncer", "").lower() in ("true", "1", "yes")
        if pgbouncer_flag:
            self.url = parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()
        is_neon = host.endswith(".neon.tech")
        if pooled is None:
            pooled = pgbouncer_flag or "-pooler" in host
        # Serverless Postgres (Neon) wakes in seconds: longer connect timeout and budget, and
        # connections recycled before the provider's idle cut-off.
        if connect_timeout is None:
            connect_timeout = 10.0 if is_neon else 5.0
        if startup_budget is None:
            startup_budget = 60.0 if is_neon else 30.0
        if max_lifetime is None:
            max_lifetime = 240.0 if is_neon else 1800.0
        self.settings = PoolSettings(
            min_size=min_size,
            max_size=max_size,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            max_idle=max_idle,
            max_lifetime=max_lifetime,
            statement_timeout=statement_timeout,
            slow_query=slow_query,
            pooled=pooled,
            startup_budget=startup_budget,
            retry_attempts=retry_attempts,
            application_name=application_name,
        )
        self._retry_backoff = retry_backoff
        self._retry_backoff_max = retry_backoff_max
        self._extra_kwargs = dict(connect_kwargs or {})
        self._counter_lock = threading.Lock()
        self._counters = {
            "queries": 0,
            "errors": 0,
            "retries": 0,
            "slow_queries": 0,
            "open_attempts": 0,
        }
        self._closed = False
        self._check_ssl(host, query.get("sslmode", ""), ssl, environment)

    # -- configuration -------------------------------------------------------------------
    def _check_ssl(self, host: str, sslmode: str, policy: SslPolicy, env: str | None) -> None:
        if policy == "off" or host in _LOCAL_HOSTS or host.startswith("/"):
            return
        if env is None:
            env = _environment()
        if env != "production" or sslmode in _SECURE_SSLMODES:
            return
        message = (
            f"DATABASE_URL for {self.name!r} does not require TLS in production "
            f"(sslmode={sslmode or 'unset'}); add ?sslmode=require to the URL "
            "(or pass ssl='off' for a private network)"
        )
        if policy == "error":
            raise ConfigError(ConfigProblem("DATABASE_URL", message))
        logger.warning(message)

    def _connect_kwargs(self) -> dict[str, Any]:
        s = self.settings
        kwargs: dict[str, Any] = {
            "connect_timeout": max(1, round(s.connect_timeout)),
            "application_name": s.application_name,
        }
        if s.pooled:
            kwargs["prepare_threshold"] = None
        elif s.statement_timeout is not None:
            # A keyword argument replaces the URL's own "options" (Neon's endpoint=...,
            # -c search_path=...): keep those and add ours after them.
            timeout = f"-c statement_timeout={round(s.statement_timeout * 1000)}"
            given = self._url_options()
            kwargs["options"] = f"{given} {timeout}" if given else timeout
        kwargs.update(self._extra_kwargs)
        return kwargs

    def _url_options(self) -> str:
        """The ``options`` startup parameter written in the URL itself, or ""."""
        psycopg = require("psycopg", extra="postgres", feature="renderkit.db")
        try:
            return str(psycopg.conninfo.conninfo_to_dict(self.url).get("options") or "").strip()
        except psycopg.ProgrammingError:
            return ""  # an unparsable URL fails at connect, with psycopg's own message

    def _pool_kwargs(self) -> dict[str, Any]:
        s = self.settings
        return {
            "conninfo": self.url,
            "kwargs": self._connect_kwargs(),
            "min_size": s.min_size,
            "max_size": s.max_size,
            "timeout": s.pool_timeout,
            "max_idle": s.max_idle,
            "max_lifetime": s.max_lifetime,
            "name": self.name,
            "open": False,
        }

    # -- retry decisions ------------------------------------------------------------------
    def _should_retry(self, exc: BaseException, idempotent: bool, attempt: _Attempt) -> bool:
        if not is_transient(exc):
            return False
        # A lost connection after the statement went out may have committed: only idempotent
        # work is repeated then. Serialization failures and deadlocks were rolled back.
        return idempotent or not attempt.sent or _rolled_back(exc)

    def _backoff(self, retry_number: int) -> float:
        """Exponential backoff with full jitter (AWS style) for the ``retry_number``-th retry."""
        cap = min(self._retry_backoff_max, self._retry_backoff * (2 ** (retry_number - 1)))
        return random.uniform(0, cap)

    def _retrying_kwargs(self, idempotent: bool, attempt_box: list[_Attempt]) -> dict[str, Any]:
        tenacity = require("tenacity", extra="postgres", feature="renderkit.db")

        def retryable(exc: BaseException) -> bool:
            return self._should_retry(exc, idempotent, attempt_box[0])

        def before_sleep(state: Any) -> None:
            self._count("retries")
            exc = state.outcome.exception() if state.outcome else None
            logger.info(
                "retrying %s after %s (attempt %d of %d)",
                self.name,
                type(exc).__name__,
                state.attempt_number + 1,
                self.settings.retry_attempts,
            )

        return {
            # The first attempt already ran on the fast path; these are the remaining ones.
            "stop": tenacity.stop_after_attempt(self.settings.retry_attempts - 1)
            | tenacity.stop_after_delay(self.settings.pool_timeout * 2),
            "wait": tenacity.wait_random_exponential(
                multiplier=self._retry_backoff * 2, max=self._retry_backoff_max
            ),
            "retry": tenacity.retry_if_exception(retryable),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def _open_retrying_kwargs(self) -> dict[str, Any]:
        tenacity = require("tenacity", extra="postgres", feature="renderkit.db")

        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning(
                "%s not reachable yet (%s: %s); retrying connect (attempt %d)",
                self.name,
                type(exc).__name__,
                _first_line(exc),
                state.attempt_number + 1,
            )

        return {
            "stop": tenacity.stop_after_delay(self.settings.startup_budget),
            "wait": tenacity.wait_random_exponential(multiplier=0.5, max=5.0),
            "retry": tenacity.retry_if_exception(is_transient),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    # -- observation ----------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._counter_lock:
            self._counters[key] += n

    def _observe(self, started: float, what: str) -> None:
        elapsed = time.perf_counter() - started
        limit = self.settings.slow_query
        if limit is not None and elapsed >= limit:
            self._count("slow_queries")
            logger.warning(
                "slow query on %s: %.3fs (threshold %.3fs): %s",
                self.name,
                elapsed,
                limit,
                what[:500],
                extra={"correlation_id": correlation_id_var.get(), "duration_s": elapsed},
            )

    def _stats(self, pool_stats: Mapping[str, int] | None) -> dict[str, Any]:
        with self._counter_lock:
            counters = dict(self._counters)
        pool = dict(pool_stats or {})
        return {
            "name": self.name,
            "open": pool_stats is not None,
            "pool_min": self.settings.min_size,
            "pool_max": self.settings.max_size,
            "pool_size": pool.get("pool_size", 0),
            "pool_available": pool.get("pool_available", 0),
            "requests_waiting": pool.get("requests_waiting", 0),
            "connections_lost": pool.get("connections_lost", 0),
            "pooled_endpoint": self.settings.pooled,
            **counters,
            "pool": pool,
        }

    def _health(self, latency_ms: float | None, exc: BaseException | None) -> CheckResult:
        if exc is not None:
            return CheckResult(
                "unhealthy",
                f"{self.name} unreachable: {type(exc).__name__}: {_first_line(exc)}",
                {"url": _mask(self.url)},
            )
        return CheckResult("healthy", "", {"url": _mask(self.url)}, latency_ms)

    def _not_open(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"{self.name} is not open: call open() (or use it as a context manager) first"
        )

    @staticmethod
    def _env_kwargs(environ: Mapping[str, str] | None) -> tuple[str, dict[str, Any]]:
        return _read_env(os.environ if environ is None else environ)


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def _environment() -> str:
    from renderkit.config import environment

    return str(environment())


def _read_env(environ: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """Read DATABASE_URL and DB_* variables; every bad value is reported at once."""
    problems: list[ConfigProblem] = []
    kwargs: dict[str, Any] = {}
    url = environ.get("DATABASE_URL", "")
    if not url.strip():
        problems.append(ConfigProblem("DATABASE_URL", "is not set; set it to postgresql://..."))
    else:
        try:
            url = normalize_url(url)
        except ConfigError as exc:
            problems.extend(exc.errors)

    from renderkit.config import parse_int

    def number(var: str, key: str, *, seconds: bool = False) -> None:
        raw = environ.get(var)
        if raw is None or raw.strip() == "":
            return
        try:
            kwargs[key] = _parse_seconds(raw) if seconds else parse_int(raw)
        except ValueError:
            unit = "a duration such as 5, 5s, 500ms or 1m" if seconds else "a whole number"
            problems.append(ConfigProblem(var, f"must be {unit}, got {raw[:80]!r}"))

    number("DB_POOL_MIN", "min_size")
    number("DB_POOL_MAX", "max_size")
    number("DB_CONNECT_TIMEOUT", "connect_timeout", seconds=True)
    number("DB_POOL_TIMEOUT", "pool_timeout", seconds=True)
    number("DB_MAX_IDLE", "max_idle", seconds=True)
    number("DB_MAX_LIFETIME", "max_lifetime", seconds=True)
    number("DB_STATEMENT_TIMEOUT", "statement_timeout", seconds=True)
    number("DB_SLOW_QUERY", "slow_query", seconds=True)
    number("DB_STARTUP_BUDGET", "startup_budget", seconds=True)
    number("DB_RETRY_ATTEMPTS", "retry_attempts")
    for key in ("statement_timeout", "slow_query"):
        if kwargs.get(key) == 0:
            kwargs[key] = None  # 0 disables
    pooled = environ.get("DB_POOLED", "").strip().lower()
    if pooled in ("1", "true", "yes", "on"):
        kwargs["pooled"] = True
    elif pooled in ("0", "false", "no", "off"):
        kwargs["pooled"] = False
    elif pooled not in ("", "auto"):
        problems.append(ConfigProblem("DB_POOLED", f"must be true, false or auto, got {pooled!r}"))
    ssl = environ.get("DB_SSL", "").strip().lower()
    if ssl in ("error", "warn", "off"):
        kwargs["ssl"] = ssl
    elif ssl:
        problems.append(ConfigProblem("DB_SSL", f"must be error, warn or off, got {ssl!r}"))
    app_name = environ.get("DB_APPLICATION_NAME") or environ.get("RENDER_SERVICE_NAME")
    if app_name:
        kwargs["application_name"] = app_name[:63]
    if problems:
        raise ConfigError(problems)
    return url, kwargs


_ENV_NAMES = {
    "min_size": "DB_POOL_MIN",
    "max_size": "DB_POOL_MAX",
    "pool_timeout": "DB_POOL_TIMEOUT",
    "max_idle": "DB_MAX_IDLE",
    "retry_attempts": "DB_RETRY_ATTEMPTS",
}


@contextmanager
def _env_names(kwargs: Mapping[str, Any], overrides: Mapping[str, Any]) -> Iterator[None]:
    """Re-label constructor problems with the variable a value came from."""
    try:
        yield
    except ConfigError as exc:
        problems = [
            ConfigProblem(_ENV_NAMES[p.variable], p.message)
            if p.source == "code" and p.variable in kwargs and p.variable not in overrides
            else p
            for p in exc.errors
        ]
        raise ConfigError(problems) from None


def _parse_seconds(raw: str) -> float:
    from renderkit.config import parse_duration

    return parse_duration(raw).total_seconds()


class Database(_DatabaseBase):
    """A synchronous Postgres pool with retries, timeouts, health and stats."""

    _pool: psycopg_pool.ConnectionPool[Any] | None = None

    def open(self) -> None:
        """Open the pool; retry the first connect with backoff within ``startup_budget``."""
        if self._pool is not None:
            return
        psycopg = require("psycopg", extra="postgres", feature="renderkit.db")
        pool_mod = require("psycopg_pool", extra="postgres", feature="renderkit.db")
        tenacity = require("tenacity", extra="postgres", feature="renderkit.db")
        kwargs = self._connect_kwargs()

        # Probe with one direct connection first: it surfaces the real error (refused,
        # starting up, bad password) instead of a pool timeout, and is retried if transient.
        for attempt in tenacity.Retrying(**self._open_retrying_kwargs()):
            with attempt:
                self._count("open_attempts")
                psycopg.connect(self.url, **kwargs).close()
        pool = pool_mod.ConnectionPool(
            check=pool_mod.ConnectionPool.check_connection, **self._pool_kwargs()
        )
        try:
            pool.open(wait=True, timeout=max(self.settings.connect_timeout * 2, 5.0))
        except BaseException:
            pool.close()
            raise
        self._pool = pool
        self._closed = False
        logger.info("%s pool open (%s)", self.name, _mask(self.url))

    def close(self, timeout: float = 5.0) -> None:
        """Close the pool, waiting up to ``timeout`` for connections in use; idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=timeout)
            logger.info("%s pool closed", self.name)

    def __enter__(self) -> Database:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        if self._pool is None:
            raise self._not_open()
        return self._pool

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """Borrow a checked connection; commits on success, rolls back on error."""
        with self._require_pool().connection(timeout=timeout) as conn:
            yield conn

    @contextmanager
    def transaction(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """Borrow a connection inside one explicit transaction."""
        with self.connection(timeout) as conn, conn.transaction():
            yield conn

    def run(self, fn: Callable[[psycopg.Connection[Any]], T], *, idempotent: bool = True) -> T:
        """Run ``fn(conn)`` in a transaction; retry transient failures (see ``is_transient``).

        Work that failed after it was sent is repeated only when ``idempotent`` is true (or
        the server rolled it back: serialization failure, deadlock). The original error is
        raised when retries are exhausted.
        """
        attempt = _Attempt()
        try:
            return self._once(fn, attempt, getattr(fn, "__qualname__", "run"))
        except Exception as exc:
            self._count("errors")
            if self.settings.retry_attempts < 2 or not self._should_retry(exc, idempotent, attempt):
                raise
        return self._retry(fn, idempotent, getattr(fn, "__qualname__", "run"))

    def _retry(self, fn: Callable[[psycopg.Connection[Any]], T], idempotent: bool, what: str) -> T:
        """Attempts 2..retry_attempts after a retryable first failure, with backoff."""
        self._count("retries")
        time.sleep(self._backoff(1))
        tenacity = require("tenacity", extra="postgres", feature="renderkit.db")
        box = [_Attempt()]
        for retry in tenacity.Retrying(**self._retrying_kwargs(idempotent, box)):
            with retry:
                box[0] = _Attempt()
                try:
                    return self._once(fn, box[0], what)
                except Exception:
                    self._count("errors")
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, fn: Callable[[psycopg.Connection[Any]], T], attempt: _Attempt, what: str) -> T:
        pool = self._require_pool()
        started = time.perf_counter()
        with pool.connection() as conn:
            attempt.sent = True
            result = fn(conn)
        self._observe(started, what)
        return result

    def _statement(
        self, sql: Any, params: Params, idempotent: bool, fetch: Callable[[Any], T]
    ) -> T:
        pool = self._pool
        if pool is None:
            raise self._not_open()
        attempt = _Attempt()
        started = time.perf_counter()
        try:
            with pool.connection() as conn:
                attempt.sent = True
                result = fetch(conn.execute(sql, params))
        except Exception as exc:
            self._count("errors")
            if self.settings.retry_attempts < 2 or not self._should_retry(exc, idempotent, attempt):
                raise
            return self._retry(lambda conn: fetch(conn.execute(sql, params)), idempotent, str(sql))
        self._count("queries")
        if self.settings.slow_query is not None:
            self._observe(started, str(sql))
        return result

    def execute(self, sql: Any, params: Params = None, *, idempotent: bool = False) -> int:
        """Run one statement; return the affected row count."""
        return self._statement(sql, params, idempotent, _rowcount)

    def fetch_one(self, sql: Any, params: Params = None, *, idempotent: bool = True) -> Any:
        """Run a query and return its first row, or ``None``."""
        return self._statement(sql, params, idempotent, _fetchone)

    def fetch_all(self, sql: Any, params: Params = None, *, idempotent: bool = True) -> list[Any]:
        """Run a query and return all rows."""
        return self._statement(sql, params, idempotent, _fetchall)

    def check(self, timeout: float = 3.0) -> float:
        """Run ``SELECT 1`` within ``timeout`` seconds; return the latency in milliseconds."""
        pool = self._require_pool()
        started = time.perf_counter()
        with pool.connection(timeout=timeout) as conn:
            conn.execute(f"SET LOCAL statement_timeout = {max(1, round(timeout * 1000))}")
            conn.execute("SELECT 1")
        return (time.perf_counter() - started) * 1000

    def health_check(self) -> CheckResult:
        """Healthy with latency when ``SELECT 1`` answers; unhealthy when Postgres is down."""
        if self._pool is None:
            return self._health(None, self._not_open())
        try:
            return self._health(self.check(), None)
        except Exception as exc:
            return self._health(None, exc)

    def stats(self) -> dict[str, Any]:
        """Pool figures (size, idle, waiting, lost) and renderkit counters as a plain dict."""
        pool = self._pool
        return self._stats(pool.get_stats() if pool is not None else None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Database:
        """Build from DATABASE_URL and DB_* variables (see the docs for the full list)."""
        url, kwargs = cls._env_kwargs(environ)
        with _env_names(kwargs, overrides):
            return cls(url, **{**kwargs, **overrides})


class AsyncDatabase(_DatabaseBase):
    """An asyncio Postgres pool with the same methods as :class:`Database`, awaited."""

    _pool: psycopg_pool.AsyncConnectionPool[Any] | None = None

    async def open(self) -> None:
        """Open the pool; retry the first connect with backoff within ``startup_budget``."""
        if self._pool is not None:
            return
        psycopg = require("psycopg", extra="postgres", feature="renderkit.db")
        pool_mod = require("psycopg_pool", extra="postgres", feature="renderkit.db")
        tenacity = require("tenacity", extra="postgres", feature="renderkit.db")
        kwargs = self._connect_kwargs()
        async for attempt in tenacity.AsyncRetrying(**self._open_retrying_kwargs()):
            with attempt:
                self._count("open_attempts")
                conn = await psycopg.AsyncConnection.connect(self.url, **kwargs)
                await conn.close()
        pool = pool_mod.AsyncConnectionPool(
            check=pool_mod.AsyncConnectionPool.check_connection, **self._pool_kwargs()
        )
        try:
            await pool.open(wait=True, timeout=max(self.settings.connect_timeout * 2, 5.0))
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        logger.info("%s pool open (%s)", self.name, _mask(self.url))

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pool, waiting up to ``timeout`` for connections in use; idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close(timeout=timeout)
            logger.info("%s pool closed", self.name)

    async def __aenter__(self) -> AsyncDatabase:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _require_pool(self) -> psycopg_pool.AsyncConnectionPool[Any]:
        if self._pool is None:
            raise self._not_open()
        return self._pool

    @asynccontextmanager
    async def connection(
        self, timeout: float | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Borrow a checked connection; commits on success, rolls back on error."""
        async with self._require_pool().connection(timeout=timeout) as conn:
            yield conn

    @asynccontextmanager
    async def transaction(
        self, timeout: float | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Borrow a connection inside one explicit transaction."""
        async with self.connection(timeout) as conn, conn.transaction():
            yield conn

    async def run(
        self,
        fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
        *,
        idempotent: bool = True,
    ) -> T:
        """Await ``fn(conn)`` in a transaction; retry transient failures like ``Database.run``."""
        attempt = _Attempt()
        try:
            return await self._once(fn, attempt, getattr(fn, "__qualname__", "run"))
        except Exception as exc:
            self._count("errors")
            if self.settings.retry_attempts < 2 or not self._should_retry(exc, idempotent, attempt):
                raise
        return await self._retry(fn, idempotent, getattr(fn, "__qualname__", "run"))

    async def _retry(
        self,
        fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
        idempotent: bool,
        what: str,
    ) -> T:
        """Attempts 2..retry_attempts after a retryable first failure, with backoff."""
        self._count("retries")
        await asyncio.sleep(self._backoff(1))
        tenacity = require("tenacity", extra="postgres", feature="renderkit.db")
        box = [_Attempt()]
        async for retry in tenacity.AsyncRetrying(**self._retrying_kwargs(idempotent, box)):
            with retry:
                box[0] = _Attempt()
                try:
                    return await self._once(fn, box[0], what)
                except Exception:
                    self._count("errors")
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
        attempt: _Attempt,
        what: str,
    ) -> T:
        pool = self._require_pool()
        started = time.perf_counter()
        async with pool.connection() as conn:
            attempt.sent = True
            result = await fn(conn)
        self._observe(started, what)
        return result

    async def _statement(
        self, sql: Any, params: Params, idempotent: bool, fetch: Callable[[Any], Awaitable[T]]
    ) -> T:
        pool = self._pool
        if pool is None:
            raise self._not_open()
        attempt = _Attempt()
        started = time.perf_counter()
        try:
            async with pool.connection() as conn:
                attempt.sent = True
                result = await fetch(await conn.execute(sql, params))
        except Exception as exc:
            self._count("errors")
            if self.settings.retry_attempts < 2 or not self._should_retry(exc, idempotent, attempt):
                raise

            async def again(conn: psycopg.AsyncConnection[Any]) -> T:
                return await fetch(await conn.execute(sql, params))

            return await self._retry(again, idempotent, str(sql))
        self._count("queries")
        if self.settings.slow_query is not None:
            self._observe(started, str(sql))
        return result

    async def execute(self, sql: Any, params: Params = None, *, idempotent: bool = False) -> int:
        """Run one statement; return the affected row count."""
        return await self._statement(sql, params, idempotent, _arowcount)

    async def fetch_one(self, sql: Any, params: Params = None, *, idempotent: bool = True) -> Any:
        """Run a query and return its first row, or ``None``."""
        return await self._statement(sql, params, idempotent, _afetchone)

    async def fetch_all(
        self, sql: Any, params: Params = None, *, idempotent: bool = True
    ) -> list[Any]:
        """Run a query and return all rows."""
        return await self._statement(sql, params, idempotent, _afetchall)

    async def check(self, timeout: float = 3.0) -> float:
        """Run ``SELECT 1`` within ``timeout`` seconds; return the latency in milliseconds."""
        pool = self._require_pool()
        started = time.perf_counter()

        async def probe() -> None:
            async with pool.connection(timeout=timeout) as conn:
                await conn.execute("SELECT 1")

        await asyncio.wait_for(probe(), timeout + 0.5)
        return (time.perf_counter() - started) * 1000

    async def health_check(self) -> CheckResult:
        """Healthy with latency when ``SELECT 1`` answers; unhealthy when Postgres is down."""
        if self._pool is None:
            return self._health(None, self._not_open())
        try:
            return self._health(await self.check(), None)
        except Exception as exc:
            return self._health(None, exc)

    def stats(self) -> dict[str, Any]:
        """Pool figures (size, idle, waiting, lost) and renderkit counters as a plain dict."""
        pool = self._pool
        return self._stats(pool.get_stats() if pool is not None else None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> AsyncDatabase:
        """Build from DATABASE_URL and DB_* variables (see the docs for the full list)."""
        url, kwargs = cls._env_kwargs(environ)
        with _env_names(kwargs, overrides):
            return cls(url, **{**kwargs, **overrides})


def _rowcount(cur: Any) -> int:
    return int(cur.rowcount)


def _fetchone(cur: Any) -> Any:
    return cur.fetchone()


def _fetchall(cur: Any) -> list[Any]:
    return list(cur.fetchall())


async def _arowcount(cur: Any) -> int:
    return int(cur.rowcount)


async def _afetchone(cur: Any) -> Any:
    return await cur.fetchone()


async def _afetchall(cur: Any) -> list[Any]:
    return list(await cur.fetchall())
