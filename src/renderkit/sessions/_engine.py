"""``SessionEngine``: what the ASGI, WSGI and Flask session adapters share (private module)."""

from __future__ import annotations

from renderkit.sessions._engine_async import AsyncEngineIO
from renderkit.sessions._engine_sync import EngineIO

__all__ = ["SessionEngine"]


class SessionEngine(EngineIO, AsyncEngineIO):
    """Signer, cookie options, TTL policy; ``open``/``aopen`` and ``commit``/``acommit``."""
