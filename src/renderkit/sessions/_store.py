"""``SessionStore``: the base class of every store, serving WSGI (sync) and ASGI (async)."""

from __future__ import annotations

from renderkit.sessions._store_async import AsyncStoreAPI
from renderkit.sessions._store_sync import StoreAPI

__all__ = ["SessionStore"]


class SessionStore(StoreAPI, AsyncStoreAPI):
    """Base of every store: sync methods for WSGI/Flask, ``a``-prefixed twins for ASGI.

    Subclasses implement ``_get/_put/_remove/_expire/_remove_user`` (and ``_merge`` for an
    atomic per-key merge; the default is a read and a version-checked write) and, when they
    have an asyncio client, the ``_a`` twins. ``_put(id, blob, expected_version, user_id,
    ttl)`` writes only when the stored version equals ``expected_version`` (0 meaning "must
    not exist"), and returns the new version or None on a mismatch.
    """
