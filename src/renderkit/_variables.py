"""The environment variables several modules read, each declared once.

A reader puts the shared field in its own :class:`renderkit.config.Settings` class under its
own type (``redis_url: RedisUrl | None = REDIS_URL`` in the cache, ``redis_url: str | None =
REDIS_URL`` where ``renderkit doctor`` judges the raw text), so the variable's name, secrecy
and help text exist once and docs/environment.md explains it the same way wherever it is read.
"""

from __future__ import annotations

from typing import Any

from renderkit.config import env

__all__ = ["DATABASE_URL", "FORCE_HTTPS", "REDIS_URL"]

REDIS_URL: Any = env(
    "REDIS_URL",
    default=None,
    secret=True,
    help="The app's Redis, shared by the cache, sessions and rate limits (and by every worker "
    "process); renderkit doctor checks it answers PING. Unset: the cache and rate limits keep "
    "their data in process memory, sessions go to DATABASE_URL, else memory.",
)
DATABASE_URL: Any = env(
    "DATABASE_URL",
    default=None,
    secret=True,
    help="The app's Postgres, postgresql://user:password@host:5432/db (postgres:// is "
    "accepted): Database.from_env() needs it; sessions live there without REDIS_URL (or with "
    "SESSION_STORE=postgres) and fall back to it while Redis is down; renderkit doctor checks "
    "it answers SELECT 1.",
)
FORCE_HTTPS: Any = env(
    "FORCE_HTTPS",
    default=None,
    help="true: the app is served over https only, so the wiring helpers (Flask RenderKit, "
    "from_env) redirect plain HTTP to https and the session cookie is marked Secure; false: "
    "neither; unset: both in production only.",
)
