"""``store_from_env()``: pick and build a session store from environment variables."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from renderkit.errors import ConfigError, ConfigProblem
from renderkit.sessions._base import SessionStore

__all__ = ["store_from_env"]

T = TypeVar("T")
_KINDS = ("auto", "memory", "redis", "postgres")
_FALLBACKS = ("auto", "memory", "postgres", "none")


def store_from_env(environ: Mapping[str, str] | None = None) -> SessionStore:
    """Build the session store the environment describes; nothing connects yet.

    - ``SESSION_STORE``: ``auto`` (default: Redis when REDIS_URL is set, else Postgres when
      DATABASE_URL is set, else memory), ``memory``, ``redis`` or ``postgres``.
    - ``SESSION_FALLBACK`` (with Redis): ``auto`` (default: Postgres when DATABASE_URL is set,
      else memory), ``memory``, ``postgres`` or ``none`` (Redis alone).
    - ``REDIS_URL``, ``DATABASE_URL``; ``SESSION_ENCRYPTION_KEY`` (64 hex characters,
      optional); ``SESSION_MAX_SIZE`` (bytes, default 64KiB); ``SESSION_KEY_PREFIX`` (Redis,
      default ``session:``); ``SESSION_PRUNE_INTERVAL`` (Postgres, default 15m).

    Raises :class:`ConfigError` listing every bad variable at once (secrets never echoed).
    """
    from renderkit.config import (
        parse_bytes,
        parse_duration,
        parse_postgres_url,
        parse_redis_url,
    )
    from renderkit.sessions._crypto import parse_encryption_key

    env = os.environ if environ is None else environ
    problems: list[ConfigProblem] = []

    def read(name: str, parse: Callable[[str], T], *, secret: bool = False) -> T | None:
        raw = env.get(name, "").strip()
        if not raw:
            return None
        try:
            return parse(raw)
        except (ValueError, ConfigError) as exc:
            message = str(exc) if not isinstance(exc, ConfigError) else exc.errors[0].message
            problems.append(ConfigProblem(name, message, found="****" if secret else raw[:40]))
            return None

    def choice(name: str, options: tuple[str, ...]) -> str:
        value = env.get(name, "").strip().lower() or "auto"
        if value not in options:
            problems.append(
                ConfigProblem(name, f"must be one of {', '.join(options)}, got {value!r}")
            )
            return "auto"
        return value

    kind = choice("SESSION_STORE", _KINDS)
    fallback_kind = choice("SESSION_FALLBACK", _FALLBACKS)
    redis_url = read("REDIS_URL", parse_redis_url, secret=True)
    database_url = read("DATABASE_URL", parse_postgres_url, secret=True)
    key = read(
        "SESSION_ENCRYPTION_KEY",
        lambda raw: parse_encryption_key(raw, variable="SESSION_ENCRYPTION_KEY"),
        secret=True,
    )
    max_size = read("SESSION_MAX_SIZE", parse_bytes)
    prefix = env.get("SESSION_KEY_PREFIX", "").strip() or "session:"
    prune = read("SESSION_PRUNE_INTERVAL", parse_duration)
    if kind == "auto":
        kind = "redis" if redis_url else "postgres" if database_url else "memory"
    if kind == "redis" and not redis_url and "REDIS_URL" not in {p.variable for p in problems}:
        problems.append(ConfigProblem("REDIS_URL", "SESSION_STORE=redis needs REDIS_URL"))
    needs_pg = kind == "postgres" or (kind == "redis" and fallback_kind == "postgres")
    if needs_pg and not database_url and "DATABASE_URL" not in {p.variable for p in problems}:
        problems.append(
            ConfigProblem("DATABASE_URL", "a Postgres session store needs DATABASE_URL")
        )
    if problems:
        raise ConfigError(problems)

    common: dict[str, Any] = {"encryption_key": key}
    if max_size is not None:
        common["max_size"] = int(max_size)

    from renderkit.sessions._memory import MemoryStore

    def postgres() -> SessionStore:
        from renderkit.sessions._postgres import PostgresStore

        assert database_url is not None
        interval = 15 * 60.0 if prune is None else prune.total_seconds() or None
        return PostgresStore.from_url(str(database_url), prune_interval=interval, **common)

    if kind == "memory":
        return MemoryStore(**common)
    if kind == "postgres":
        return postgres()
    from renderkit.sessions._redis import RedisStore

    redis_store = RedisStore.from_url(str(redis_url), prefix=prefix, **common)
    if fallback_kind == "none":
        return redis_store
    if fallback_kind == "postgres" or (fallback_kind == "auto" and database_url):
        fallback = postgres()
    else:
        fallback = MemoryStore(**common)
    from renderkit.sessions._fallback import FallbackStore

    return FallbackStore(redis_store, fallback)
