"""The environment variables sessions read, declared once (``store_from_env``, the cookie)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from renderkit._variables import DATABASE_URL, FORCE_HTTPS, REDIS_URL
from renderkit.config import ByteSize, PostgresUrl, RedisUrl, Settings, env
from renderkit.errors import ConfigError, ConfigProblem
from renderkit.sessions._store import SessionStore

__all__ = ["CookieSettings", "SessionStoreSettings", "store_from_env"]


def _encryption_key(value: str) -> str:
    from renderkit.sessions._crypto import parse_encryption_key

    try:
        parse_encryption_key(value, variable="SESSION_ENCRYPTION_KEY")
    except ConfigError as exc:
        raise ValueError(exc.errors[0].message) from None
    return value


class CookieSettings(Settings):
    """What ``SessionMiddleware`` and the Flask session read when not given in code."""

    secret: str | None = env("SESSION_SECRET", default=None, secret=True)
    """Signs the session cookie: a random string of at least 32 bytes (`renderkit secret` makes
    one); a list of keys in code rotates them. Required unless given as secret_key=."""
    force_https: bool | None = FORCE_HTTPS


class SessionStoreSettings(Settings):
    """The variables :func:`store_from_env` reads."""

    store: Literal["auto", "memory", "redis", "postgres"] = env("SESSION_STORE", default="auto")
    """Where sessions live: auto (Redis when REDIS_URL is set, else Postgres when DATABASE_URL is
    set, else memory), memory, redis or postgres."""
    fallback: Literal["auto", "memory", "postgres", "none"] = env(
        "SESSION_FALLBACK", default="auto"
    )
    """With Redis, where sessions go while Redis is down: auto (Postgres when DATABASE_URL is set,
    else memory), memory, postgres or none."""
    redis_url: RedisUrl | None = REDIS_URL
    database_url: PostgresUrl | None = DATABASE_URL
    encryption_key: str | None = env(
        "SESSION_ENCRYPTION_KEY", default=None, secret=True, validate=_encryption_key
    )
    """Encrypts stored session data (AES-GCM): 64 hex characters; unset: plain JSON."""
    max_size: ByteSize = env("SESSION_MAX_SIZE", default="64KiB")
    """Largest encoded session (e.g. 64KiB)."""
    key_prefix: str = env("SESSION_KEY_PREFIX", default="session:")
    """Prefix of the Redis keys of sessions."""
    prune_interval: timedelta = env("SESSION_PRUNE_INTERVAL", default="15m")
    """How often expired Postgres sessions are deleted (0s: never automatically)."""


def store_from_env(environ: Mapping[str, str] | None = None) -> SessionStore:
    """Build the session store the environment describes; nothing connects yet.

    Reads the variables of :class:`SessionStoreSettings` (SESSION_STORE, SESSION_FALLBACK,
    REDIS_URL, DATABASE_URL, SESSION_ENCRYPTION_KEY, SESSION_MAX_SIZE, SESSION_KEY_PREFIX,
    SESSION_PRUNE_INTERVAL) and raises :class:`ConfigError` listing every bad variable at once
    (secrets never echoed).
    """
    s = SessionStoreSettings.load(environ)
    kind = s.store
    if kind == "auto":
        kind = "redis" if s.redis_url else "postgres" if s.database_url else "memory"
    problems = []
    if kind == "redis" and not s.redis_url:
        problems.append(ConfigProblem("REDIS_URL", "SESSION_STORE=redis needs REDIS_URL"))
    needs_pg = kind == "postgres" or (kind == "redis" and s.fallback == "postgres")
    if needs_pg and not s.database_url:
        problems.append(
            ConfigProblem("DATABASE_URL", "a Postgres session store needs DATABASE_URL")
        )
    if problems:
        raise ConfigError(problems)
    common: dict[str, Any] = {"encryption_key": s.encryption_key, "max_size": int(s.max_size)}

    from renderkit.sessions._memory import MemoryStore

    def postgres() -> SessionStore:
        from renderkit.sessions._postgres import PostgresStore

        interval = s.prune_interval.total_seconds() or None
        return PostgresStore.from_url(str(s.database_url), prune_interval=interval, **common)

    if kind == "memory":
        return MemoryStore(**common)
    if kind == "postgres":
        return postgres()
    from renderkit.sessions._redis import RedisStore

    redis_store = RedisStore.from_url(str(s.redis_url), prefix=s.key_prefix, **common)
    if s.fallback == "none":
        return redis_store
    if s.fallback == "postgres" or (s.fallback == "auto" and s.database_url):
        fallback = postgres()
    else:
        fallback = MemoryStore(**common)
    from renderkit.sessions._fallback import FallbackStore

    return FallbackStore(redis_store, fallback)
