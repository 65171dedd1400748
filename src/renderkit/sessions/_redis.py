"""RedisStore: sessions shared by every instance through Redis (private module)."""

from __future__ import annotations

from renderkit.sessions._redis_async import AsyncRedisHooks
from renderkit.sessions._redis_sync import RedisHooks

__all__ = ["RedisStore"]


class RedisStore(RedisHooks, AsyncRedisHooks):
    """Sessions in Redis, under ``prefix`` (default ``"session:"``); expiry is Redis's TTL.

    ``RedisStore(client)`` takes a ``redis.Redis`` or a ``redis.asyncio.Redis``: with a sync
    client the async methods run it in a worker thread; with an asyncio client the sync
    methods raise. ``RedisStore.from_url(url)`` serves both sides: it creates a sync client
    and (per event loop) an asyncio client on first use, with short socket timeouts.
    The client must return bytes (``decode_responses=False``, redis-py's default).

    Each session is one hash; :meth:`merge` (used when concurrent requests change one
    session) is one Lua script that sets only the keys it names, so no write is lost.
    """

    async def aclose(self) -> None:
        """Close the clients this store created (the asyncio ones of other event loops close
        with their loop)."""
        self.close()
        if self._async_clients is not None:
            await self._async_clients.aclose()
