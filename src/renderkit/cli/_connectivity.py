"""Doctor checks that reach out: DATABASE_URL and REDIS_URL answer, and how fast.

Each check connects once with a short timeout, runs the cheapest round trip (``SELECT 1`` /
``PING``), and reports the latency. Passwords never appear in a finding.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from renderkit._redact import first_line
from renderkit._redis import EVICTION_POLICY, EVICTION_REASON
from renderkit.cli._findings import DoctorContext, Finding
from renderkit.config import parse_postgres_url, parse_redis_url, redact

__all__ = ["check_database", "check_redis"]

CONNECT_TIMEOUT = 5.0
SLOW_MS = 50.0  # a same-region private network answers in a few ms


def _latency(name: str, what: str, ms: float, extra: str, details: dict[str, Any]) -> Finding:
    text = f"{what} answered in {ms:.1f} ms{extra}"
    details = {"latency_ms": round(ms, 2), **details}
    if ms > SLOW_MS:
        return Finding(
            name,
            "warn",
            f"{text}: slow for a round trip",
            "put the service in the same region as the app and use its internal URL",
            details,
        )
    return Finding(name, "ok", text, "", details)


@dataclass(frozen=True, slots=True)
class _Target:
    """What a connectivity check needs to know about its variable and client."""

    check: str
    variable: str
    parse: Callable[[str], str]
    unset: str
    example: str
    module: str
    extra: str


def _prepare(ctx: DoctorContext, target: _Target) -> tuple[str, Any] | Finding:
    """(validated URL, imported client module), or the finding that ends the check."""
    raw = ctx.value(target.variable)
    if not raw:
        return Finding(target.check, "ok", f"{target.variable} not set; {target.unset}")
    try:
        url = str(target.parse(raw))
    except ValueError as exc:
        return Finding(
            target.check,
            "fail",
            f"{target.variable} is invalid: {exc}",
            f"set {target.variable} to {target.example}",
        )
    try:
        module = importlib.import_module(target.module)
    except ImportError:
        return Finding(
            target.check,
            "warn",
            f"{target.variable} is set but {target.module} is not installed, so it was not tested",
            f"pip install 'renderkit[{target.extra}]'",
        )
    return url, module


_POSTGRES = _Target(
    "database",
    "DATABASE_URL",
    parse_postgres_url,
    "Postgres check skipped",
    "postgresql://user:password@host:5432/dbname",
    "psycopg",
    "postgres",
)
_REDIS = _Target(
    "redis",
    "REDIS_URL",
    parse_redis_url,
    "caches and limits stay in memory",
    "redis://host:6379/0 (rediss:// for TLS)",
    "redis",
    "redis",
)


def _probe(
    ctx: DoctorContext,
    target: _Target,
    probe: Callable[[DoctorContext, str, Any], Iterable[Finding]],
) -> Iterator[Finding]:
    """``probe(ctx, url, client module)``, unless preparing the target already ended the check."""
    prepared = _prepare(ctx, target)
    if isinstance(prepared, Finding):
        yield prepared
    else:
        yield from probe(ctx, *prepared)


def check_database(ctx: DoctorContext) -> Iterable[Finding]:
    """DATABASE_URL is valid, Postgres accepts a connection, and ``SELECT 1`` is quick."""
    return _probe(ctx, _POSTGRES, _postgres)


def check_redis(ctx: DoctorContext) -> Iterable[Finding]:
    """REDIS_URL is valid, Redis answers ``PING`` quickly, and evicts keys when full."""
    return _probe(ctx, _REDIS, _redis)


def _postgres(ctx: DoctorContext, url: str, psycopg: Any) -> Iterator[Finding]:
    started = time.perf_counter()
    try:
        with psycopg.connect(
            url,
            connect_timeout=int(CONNECT_TIMEOUT),
            application_name="renderkit-doctor",
            autocommit=True,
        ) as conn:
            connected = time.perf_counter()
            conn.execute("SELECT 1")
            ms = (time.perf_counter() - connected) * 1000
            version = conn.info.server_version
            ssl = conn.pgconn.ssl_in_use
    except Exception as exc:
        first = first_line(exc, type(exc).__name__)
        yield Finding(
            "database",
            "fail",
            f"cannot reach Postgres at {redact(url)}: {redact(first)}",
            "check the host, credentials and that the database is running (on Render, use "
            "the internal URL from the same region)",
            {"connect_ms": round((time.perf_counter() - started) * 1000, 1)},
        )
        return
    details = {
        "server_version": version,
        "ssl": bool(ssl),
        "connect_ms": round((connected - started) * 1000, 1),
    }
    yield _latency("database", "Postgres SELECT 1", ms, f" (server {version // 10000})", details)
    if ctx.environment == "production" and not ssl and "localhost" not in url:
        yield Finding(
            "database",
            "warn",
            "the Postgres connection is not encrypted in production",
            "add ?sslmode=require to DATABASE_URL unless it is a private-network URL",
        )


def _redis(ctx: DoctorContext, url: str, redis: Any) -> Iterator[Finding]:
    del ctx  # the Redis checks need nothing else of the context
    client = redis.Redis.from_url(
        url, socket_timeout=CONNECT_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
    )
    try:
        client.ping()  # connects
        started = time.perf_counter()
        client.ping()
        ms = (time.perf_counter() - started) * 1000
        try:
            info: dict[str, Any] = client.info("memory")
        except Exception:  # some managed Redis deny INFO; the latency still counts
            info = {}
    except Exception as exc:
        yield Finding(
            "redis",
            "fail",
            f"cannot reach Redis at {redact(url)}: {type(exc).__name__}: {redact(str(exc))}",
            "check the host and password; renderkit keeps serving from memory meanwhile",
        )
        return
    finally:
        client.close()
    policy = info.get("maxmemory_policy")
    yield _latency("redis", "Redis PING", ms, "", {"maxmemory_policy": policy})
    if policy and policy != EVICTION_POLICY:
        yield Finding(
            "redis",
            "warn",
            f"Redis maxmemory-policy is {policy}; renderkit advises {EVICTION_POLICY}: "
            f"{EVICTION_REASON}",
            f"set the policy to {EVICTION_POLICY} (Render: the Key Value's maxmemoryPolicy "
            f"in render.yaml, or its Info page; elsewhere: CONFIG SET maxmemory-policy "
            f"{EVICTION_POLICY})",
            {"maxmemory_policy": policy, "advised": EVICTION_POLICY},
        )
