"""What ``Database`` and ``AsyncDatabase`` decide without touching the network.

URL handling, presets, retry decisions, backoff, slow-query logging, counters and health
verdicts live here, once; ``_database_async.py`` holds the I/O and ``_database_sync.py`` is
generated from it by ``tools/twins.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlsplit

from renderkit._context import correlation_id_var
from renderkit._optional import require
from renderkit._redact import first_line
from renderkit.db._replicas import Replica, ReplicaSet
from renderkit.errors import BackendUnavailable, ConfigError, ConfigProblem
from renderkit.health import CheckResult

SslPolicy = Literal["error", "warn", "off"]
StartupPolicy = Literal["reconnect", "raise"]
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
    "unsupported startup parameter",
)
# A server that refuses a connection for these reasons is up but full: not an outage.
_BUSY = ("too many clients", "remaining connection slots", "too many connections")
# What PgBouncer answers when a client sends the "options" startup parameter.
_POOLER_REFUSAL = "unsupported startup parameter"
_COUNTERS = (
    "queries",
    "errors",
    "retries",
    "slow_queries",
    "open_attempts",
    "replica_queries",
    "replica_fallbacks",
)
_LISTEN = re.compile(r"\s*(?:--[^\n]*\n\s*)*listen\b", re.IGNORECASE)


def mask(url: str) -> str:
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
        shown = mask(url.strip()) if "://" in url else "a value that is not a URL (hidden)"
        raise ConfigError(ConfigProblem(variable, f"{exc}; got {shown}")) from None


def is_transient(exc: BaseException) -> bool:
    """True for failures a retry can fix: lost connections, shutdowns, serialization conflicts."""
    psycopg = require("psycopg", extra="postgres", feature="renderkit.db")
    pool_mod = require("psycopg_pool", extra="postgres", feature="renderkit.db")
    if isinstance(exc, pool_mod.PoolTimeout | TimeoutError):
        return True  # TimeoutError: a probe's own deadline (a server that does not answer)
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    if state is None:
        # A failed connect carries no SQLSTATE: tell refused/reset/timed out/starting up
        # (worth retrying) from a wrong password, database or host (never going to work).
        message = str(exc).lower()
        return not any(marker in message for marker in _PERMANENT_CONNECT_ERRORS)
    return (
        state.startswith(_RETRY_CLASSES) or state in _RETRY_STATES or state in _ROLLED_BACK_STATES
    )


def connection_failure(exc: BaseException) -> bool:
    """A failure to reach the server (no connection from the pool, a connection lost without
    a server message), as opposed to the server answering with an error."""
    psycopg = require("psycopg", extra="postgres", feature="renderkit.db")
    pool_mod = require("psycopg_pool", extra="postgres", feature="renderkit.db")
    if isinstance(exc, pool_mod.PoolTimeout | TimeoutError):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(exc, psycopg.OperationalError) and (state is None or state.startswith("08"))


def server_down(exc: BaseException) -> bool:
    """A failed direct connect that means "Postgres is not there" (refused, unreachable,
    starting or shutting down), not "Postgres is busy" (too many clients)."""
    message = str(exc).lower()
    return is_transient(exc) and not any(marker in message for marker in _BUSY)


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
    reconnect_initial: float = 1.0
    reconnect_max: float = 16.0
    on_startup_timeout: StartupPolicy = "reconnect"
    replica_timeout: float = 1.0


class Attempt:
    """Tracks whether one attempt reached the point where the statement may have been sent."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


def _argument_url(url: str) -> str:
    """``normalize_url`` for a URL passed in code: its problem says so, not "environment"."""
    try:
        return normalize_url(url)
    except ConfigError as exc:
        raise ConfigError([dataclasses.replace(p, source="code") for p in exc.errors]) from None


def _checked(options: Mapping[str, Any]) -> list[str]:
    """Raise one ConfigError naming every invalid option; return the normalised replica URLs."""
    problems: list[ConfigProblem] = []

    def bad(name: str, message: str) -> None:
        problems.append(ConfigProblem(name, f"{message}, got {options[name]!r}", "code"))

    if options["min_size"] < 0:
        bad("min_size", "must be >= 0")
    if options["max_size"] < max(1, options["min_size"]):
        bad("max_size", "must be >= max(1, min_size)")
    if options["retry_attempts"] < 1:
        bad("retry_attempts", "must be >= 1")
    for name in ("pool_timeout", "max_idle", "reconnect_initial", "replica_timeout"):
        if options[name] <= 0:
            bad(name, "must be > 0 seconds")
    if options["reconnect_max"] < options["reconnect_initial"]:
        bad("reconnect_max", "must be >= reconnect_initial")
    if options["ssl"] not in ("error", "warn", "off"):
        bad("ssl", "must be error|warn|off")
    if options["on_startup_timeout"] not in ("reconnect", "raise"):
        bad("on_startup_timeout", "must be reconnect|raise")
    replicas = []
    for index, replica in enumerate(options["replicas"]):
        try:
            url = normalize_url(replica, variable=f"replicas[{index}]")
            replicas.append(_strip_pgbouncer_flag(url)[0])
        except ConfigError as exc:
            problems.extend(dataclasses.replace(p, source="code") for p in exc.errors)
    if problems:
        raise ConfigError(problems)
    return replicas


def _preset(host: str, flagged: bool, given: Mapping[str, Any]) -> PoolSettings:
    """The resolved settings: the arguments, with presets where they were left to us."""
    values = {f.name: given[f.name] for f in dataclasses.fields(PoolSettings)}
    # Serverless Postgres (Neon) wakes in seconds: longer connect timeout and budget, and
    # connections recycled before the provider's idle cut-off.
    neon = host.endswith(".neon.tech")
    values["connect_timeout"] = given["connect_timeout"] or (10.0 if neon else 5.0)
    values["max_lifetime"] = given["max_lifetime"] or (240.0 if neon else 1800.0)
    if given["startup_budget"] is None:
        values["startup_budget"] = 60.0 if neon else 30.0
    values["statement_timeout"] = given["statement_timeout"] or None  # 0 disables
    values["slow_query"] = given["slow_query"] or None
    if given["pooled"] is None:
        values["pooled"] = flagged or "-pooler" in host
    return PoolSettings(**values)


class DatabaseBase:
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
        reconnect_initial: float = 1.0,
        reconnect_max: float = 16.0,
        on_startup_timeout: StartupPolicy = "reconnect",
        replicas: Sequence[str] = (),
        replica_timeout: float = 1.0,
        application_name: str = "renderkit",
        ssl: SslPolicy = "warn",
        environment: str | None = None,
        name: str = "database",
        connect_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        given = dict(locals())
        self.name = name
        self.url, host, sslmode, flagged = _strip_pgbouncer_flag(_argument_url(url))
        replica_urls = _checked(given)
        # PgBouncer in transaction mode (Neon "-pooler" hosts too) cannot keep prepared
        # statements, nor accept the "options" startup parameter. None: decide at open()
        # (a PgBouncer refusing "options" is detected and the connect repeated without it).
        self._pooled_given = pooled
        self.settings = _preset(host, flagged, given)
        self.replicas = ReplicaSet(
            [Replica(u, f"{name}-replica-{i + 1}") for i, u in enumerate(replica_urls)]
        )
        self._derive()
        self._retry_backoff = retry_backoff
        self._retry_backoff_max = retry_backoff_max
        self._extra_kwargs = dict(connect_kwargs or {})
        self._counter_lock = threading.Lock()
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._outage: BaseException | None = None  # set while reconnecting in the background
        self._reconnecting = False
        self._stop: Any = None  # the twin's Event, set by close() to end the reconnect loop
        self._check_ssl(host, sslmode, ssl, environment)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Build from ``DATABASE_URL`` and the ``DB_*`` variables (``DatabaseSettings``).

        Every bad variable is reported at once in one ``ConfigError`` (passwords masked);
        ``overrides`` are constructor arguments that win over the environment.
        """
        from renderkit.db._settings import build

        return build(cls, environ, overrides)

    # -- configuration -------------------------------------------------------------------
    def _check_ssl(self, host: str, sslmode: str, policy: SslPolicy, env: str | None) -> None:
        if policy == "off" or host in _LOCAL_HOSTS or host.startswith("/"):
            return
        if env is None:
            from renderkit.config import environment

            env = str(environment())
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
            # No server-side prepared statements and no startup options: the timeout is
            # set per transaction instead (see _derive).
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

    def _pool_kwargs(self, url: str | None = None, name: str | None = None) -> dict[str, Any]:
        s = self.settings
        return {
            "conninfo": url or self.url,
            "kwargs": self._connect_kwargs(),
            "min_size": s.min_size,
            "max_size": s.max_size,
            "timeout": s.pool_timeout,
            "max_idle": s.max_idle,
            "max_lifetime": s.max_lifetime,
            "name": name or self.name,
            "open": False,
        }

    def _derive(self) -> None:
        """Precompute what every statement consults (kept in step with ``settings``)."""
        s = self.settings
        self._pooled = s.pooled
        # Through a transaction pooler the timeout cannot be a startup option: it is set at
        # the start of each transaction instead (SET LOCAL lasts exactly that transaction).
        self._timeout_sql: str | None = None
        if s.pooled and s.statement_timeout is not None:
            self._timeout_sql = f"SET LOCAL statement_timeout = {round(s.statement_timeout * 1000)}"

    def _detect_pooler(self, exc: BaseException) -> bool:
        """After PgBouncer refused the ``options`` startup parameter: switch to pooled mode."""
        if self._pooled_given is not None or self.settings.pooled:
            return False
        if _POOLER_REFUSAL not in str(exc).lower():
            return False
        self.settings = dataclasses.replace(self.settings, pooled=True)
        self._derive()
        logger.info(
            "%s: the server refused startup options, so it is a transaction pooler "
            "(PgBouncer): prepared statements off, statement_timeout set per transaction",
            self.name,
        )
        return True

    def _refuse_session_features(self, sql: Any) -> None:
        """LISTEN cannot work through a transaction pooler: say so instead of never notifying."""
        if self.settings.pooled and isinstance(sql, str) and _LISTEN.match(sql):
            psycopg = require("psycopg", extra="postgres", feature="renderkit.db")
            raise psycopg.NotSupportedError(
                f"{self.name}: LISTEN needs a session of its own, but this database goes "
                "through a transaction pooler (PgBouncer / a -pooler host), which hands every "
                "transaction a different server connection, so notifications would never "
                "arrive. Open a second Database on the direct (non-pooler) URL with "
                "pooled=False for LISTEN."
            )

    # -- retry decisions ------------------------------------------------------------------
    def _should_retry(self, exc: BaseException, idempotent: bool, attempt: Attempt) -> bool:
        if not is_transient(exc):
            return False
        # A lost connection after the statement went out may have committed: only idempotent
        # work is repeated then. Serialization failures and deadlocks were rolled back.
        return idempotent or not attempt.sent or _rolled_back(exc)

    def _backoff(self, retry_number: int) -> float:
        """Exponential backoff with full jitter (AWS style) for the ``retry_number``-th retry."""
        from renderkit.resilience import full_jitter

        return full_jitter(
            retry_number, initial=self._retry_backoff, max_delay=self._retry_backoff_max
        )

    def _retrying_kwargs(self, idempotent: bool, attempt_box: list[Attempt]) -> dict[str, Any]:
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

    def _connect_retrying_kwargs(self, *, background: bool) -> dict[str, Any]:
        """Retries of the first connect: within ``startup_budget``, or (background) until up.

        Both wait ``reconnect_initial * 2**n`` capped at ``reconnect_max`` with full jitter
        (1, 2, 4, 8, 16, 16 ... s by default), so a fleet booting at once spreads out.
        """
        tenacity = require("tenacity", extra="postgres", feature="renderkit.db")
        s = self.settings
        attempts = [0]

        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception() if state.outcome else None
            attempts[0] += 1
            if background:
                self._outage = exc
                logger.debug("%s still unreachable (%s)", self.name, first_line(exc))
                return
            logger.warning(
                "%s not reachable yet (%s: %s); retrying connect (attempt %d)",
                self.name,
                type(exc).__name__,
                first_line(exc),
                state.attempt_number + 1,
            )

        if background:
            stop: Any = tenacity.stop_when_event_set(self._stop)
        else:
            stop = tenacity.stop_after_delay(s.startup_budget)
        return {
            "stop": stop,
            "wait": tenacity.wait_random_exponential(
                multiplier=s.reconnect_initial, max=s.reconnect_max
            ),
            "retry": tenacity.retry_if_exception(is_transient),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    # -- observation ----------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._counter_lock:
            self._counters[key] += n

    def _observe(self, started: float, what: Any) -> None:
        elapsed = time.perf_counter() - started
        limit = self.settings.slow_query
        if limit is not None and elapsed >= limit:
            self._count("slow_queries")
            logger.warning(
                "slow query on %s: %.3fs (threshold %.3fs): %s",
                self.name,
                elapsed,
                limit,
                str(what)[:500],
                extra={"correlation_id": correlation_id_var.get(), "duration_s": elapsed},
            )

    def _stats(self, pool_stats: Mapping[str, int] | None) -> dict[str, Any]:
        with self._counter_lock:
            counters = dict(self._counters)
        pool = dict(pool_stats or {})
        return {
            "name": self.name,
            "open": pool_stats is not None,
            "reconnecting": self._outage is not None,
            "pool_min": self.settings.min_size,
            "pool_max": self.settings.max_size,
            "pool_size": pool.get("pool_size", 0),
            "pool_available": pool.get("pool_available", 0),
            "requests_waiting": pool.get("requests_waiting", 0),
            "connections_lost": pool.get("connections_lost", 0),
            "pooled_endpoint": self.settings.pooled,
            **counters,
            "pool": pool,
            "replicas": self.replicas.stats(),
        }

    def _health(
        self, latency_ms: float | None, exc: BaseException | None, replicas: dict[str, Any]
    ) -> CheckResult:
        details: dict[str, Any] = {"url": mask(self.url)}
        if replicas:
            details["replicas"] = replicas
        if exc is not None:
            return CheckResult(
                "unhealthy",
                f"{self.name} unreachable: {type(exc).__name__}: {first_line(exc)}",
                details,
            )
        down = [name for name, r in replicas.items() if r["status"] != "healthy"]
        if down:
            message = f"replica(s) down, reads go to the primary: {', '.join(down)}"
            return CheckResult("degraded", message, details, latency_ms)
        return CheckResult("healthy", "", details, latency_ms)

    def _not_open(self) -> BackendUnavailable:
        outage = self._outage
        if outage is not None:
            return BackendUnavailable(
                f"{self.name} is unreachable ({type(outage).__name__}: {first_line(outage)}); "
                "renderkit keeps reconnecting in the background and the first query after "
                "Postgres answers will work. Check that Postgres is up and DATABASE_URL is right."
            )
        return BackendUnavailable(
            f"{self.name} is not open: call open() (or use it as a context manager) first"
        )

    def _gave_up(self, exc: BaseException) -> None:
        from renderkit.config import format_duration

        s = self.settings
        logger.error(
            "%s unreachable after the %s start-up budget (%s: %s); serving without it and "
            "reconnecting in the background (backoff from %s doubling up to %s, jittered); "
            "queries raise BackendUnavailable meanwhile",
            self.name,
            format_duration(s.startup_budget),
            type(exc).__name__,
            first_line(exc),
            format_duration(s.reconnect_initial),
            format_duration(s.reconnect_max),
        )
        self._outage = exc

    def _outage_began(self, exc: BaseException) -> bool:
        """Enter fail-fast mode once per outage (logged once); False when already in it."""
        with self._counter_lock:
            if self._outage is not None:
                return False
            self._outage = exc
        from renderkit.config import format_duration

        logger.error(
            "%s unreachable (%s: %s); queries raise BackendUnavailable at once while "
            "renderkit reconnects in the background (backoff from %s doubling up to %s)",
            self.name,
            type(exc).__name__,
            first_line(exc),
            format_duration(self.settings.reconnect_initial),
            format_duration(self.settings.reconnect_max),
        )
        return True

    def _claim_reconnect(self) -> bool:
        """Mark the background reconnect as running; False when one already is."""
        with self._counter_lock:
            if self._reconnecting:
                return False
            self._reconnecting = True
            return True

    def _recovered(self) -> None:
        """Leave fail-fast mode (logged once, whoever noticed first: health or the loop)."""
        with self._counter_lock:
            was, self._outage = self._outage, None
        if was is not None:
            logger.warning("%s reachable again (%s)", self.name, mask(self.url))


def _strip_pgbouncer_flag(url: str) -> tuple[str, str, str, bool]:
    """Remove ``?pgbouncer=true`` (libpq rejects it); return (url, host, sslmode, flagged)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    host = (parts.hostname or query.get("host", "")).lower()
    flagged = _flag(query.pop("pgbouncer", ""))
    if flagged:
        url = parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()
    return url, host, query.get("sslmode", ""), flagged


def _flag(value: str) -> bool:
    from renderkit.config import parse_bool

    try:
        return bool(value) and parse_bool(value)
    except ValueError:
        return False
