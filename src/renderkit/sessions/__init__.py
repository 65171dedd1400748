"""Server-side sessions: signed random ids in the cookie, data in Memory, Redis or Postgres.

``SessionMiddleware`` is a drop-in for Starlette's (same keyword arguments, and
``request.session`` is a ``dict``); the stores serve ASGI (async methods) and WSGI/Flask
(sync methods) from one object. See docs/sessions.md.
"""

from __future__ import annotations

from renderkit.errors import SessionError
from renderkit.sessions._base import DEFAULT_TTL, DELETED, SessionConflict, SessionRecord
from renderkit.sessions._env import CookieSettings, SessionStoreSettings, store_from_env
from renderkit.sessions._fallback import FallbackStore
from renderkit.sessions._memory import MemoryStore
from renderkit.sessions._middleware import SessionMiddleware, get_session
from renderkit.sessions._postgres import PostgresStore
from renderkit.sessions._redis import RedisStore
from renderkit.sessions._session import Session
from renderkit.sessions._signing import Signer, new_session_id
from renderkit.sessions._store import SessionStore

__all__ = [
    "DEFAULT_TTL",
    "DELETED",
    "CookieSettings",
    "FallbackStore",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "Session",
    "SessionConflict",
    "SessionError",
    "SessionMiddleware",
    "SessionRecord",
    "SessionStore",
    "SessionStoreSettings",
    "Signer",
    "get_session",
    "new_session_id",
    "store_from_env",
]
