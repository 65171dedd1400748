"""RedisStore: sessions shared by every instance through Redis (private module)."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import TYPE_CHECKING, Any

from renderkit._optional import require
from renderkit._redis import PerLoop, reconnect_once
from renderkit.health import CheckResult
from renderkit.sessions._base import RawRecord, SessionStore

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["RedisStore"]

# One hash per session: d = encoded data, v = version, u = user id ("" for none). The
# user index is a set of session ids per user, kept as long as the longest session in it.
_LOAD = """
local r = redis.call('HMGET', KEYS[1], 'd', 'v', 'u')
if not r[1] then return false end
return {r[1], r[2] or '0', r[3] or '', redis.call('PTTL', KEYS[1])}
"""
_SAVE = """
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0') or 0
if v ~= tonumber(ARGV[2]) then return -1 end
local old = redis.call('HGET', KEYS[1], 'u')
v = v + 1
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'v', v, 'u', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if old and old ~= '' and old ~= ARGV[3] then redis.call('SREM', ARGV[5] .. old, ARGV[6]) end
if ARGV[3] ~= '' then
  local uk = ARGV[5] .. ARGV[3]
  redis.call('SADD', uk, ARGV[6])
  if redis.call('PTTL', uk) < tonumber(ARGV[4]) then redis.call('PEXPIRE', uk, ARGV[4]) end
end
return v
"""
_REMOVE = """
local u = redis.call('HGET', KEYS[1], 'u')
local n = redis.call('DEL', KEYS[1])
if u and u ~= '' then redis.call('SREM', ARGV[1] .. u, ARGV[2]) end
return n
"""
_EXPIRE = """
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
local u = redis.call('HGET', KEYS[1], 'u')
if u and u ~= '' then
  local uk = ARGV[2] .. u
  if redis.call('PTTL', uk) < tonumber(ARGV[1]) then redis.call('PEXPIRE', uk, ARGV[1]) end
end
return 1
"""
_REMOVE_USER = """
local ids = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, id in ipairs(ids) do n = n + redis.call('DEL', ARGV[1] .. id) end
redis.call('DEL', KEYS[1])
return n
"""
_SCRIPTS = {
    "load": _LOAD,
    "save": _SAVE,
    "remove": _REMOVE,
    "expire": _EXPIRE,
    "user": _REMOVE_USER,
}


def _same(client: Any) -> Any:
    return client


def _is_async(client: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(client, "execute_command", None))


class RedisStore(SessionStore):
    """Sessions in Redis, under ``prefix`` (default ``"session:"``); expiry is Redis's TTL.

    ``RedisStore(client)`` takes a ``redis.Redis`` or a ``redis.asyncio.Redis``: with a sync
    client the async methods run it in a worker thread; with an asyncio client the sync
    methods raise. ``RedisStore.from_url(url)`` serves both sides: it creates a sync client
    and (per event loop) an asyncio client on first use, with short socket timeouts.
    The client must return bytes (``decode_responses=False``, redis-py's default).
    """

    def __init__(
        self,
        client: Any = None,
        *,
        prefix: str = "session:",
        encryption_key: str | bytes | None = None,
        max_size: int = 64 * 1024,
        name: str = "sessions",
        _url: str | None = None,
        _client_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(encryption_key=encryption_key, max_size=max_size, name=name)
        exceptions = require("redis.exceptions", extra="redis", feature="RedisStore")
        self.errors = (exceptions.RedisError, OSError)
        self._response_error: type[BaseException] = exceptions.ResponseError
        if client is None and _url is None:
            raise TypeError(
                "RedisStore needs a redis client (RedisStore(redis.Redis(...))) or a URL "
                "(RedisStore.from_url(REDIS_URL))"
            )
        if client is not None:
            pool_kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
            if pool_kwargs.get("decode_responses"):
                raise ValueError(
                    "RedisStore needs a client built with decode_responses=False (redis-py's "
                    "default): session blobs are bytes"
                )
        self.prefix = prefix
        self._user_prefix = prefix + "user:"
        self._url = _url
        self._options = dict(_client_options or {})
        self._sync_client: redis.Redis | None = None
        self._given_async: redis.asyncio.Redis | None = None
        # One asyncio client per event loop (see renderkit._redis.PerLoop): a loop closed
        # without aclose() (TestClient without `with`) must not leave its sockets open.
        self._async_clients: PerLoop[redis.asyncio.Redis] | None = None
        if _url is not None:
            self._async_clients = PerLoop(self._new_async_client, client=_same)
        if client is not None:
            if _is_async(client):
                self._given_async = client
            else:
                self._sync_client = client
        self._scripts: dict[tuple[int, str], Any] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "session:",
        encryption_key: str | bytes | None = None,
        max_size: int = 64 * 1024,
        socket_timeout: float = 0.5,
        socket_connect_timeout: float = 0.5,
        max_connections: int = 50,
        name: str = "sessions",
        **client_kwargs: Any,
    ) -> RedisStore:
        """Build a store for ``url`` (``redis://`` or ``rediss://``); nothing connects yet.

        Both a sync and an asyncio client are created lazily, on first use, so one store
        object serves ASGI and WSGI. Timeouts are short and client-side retries off: a down
        Redis costs one ``socket_timeout``, and :class:`FallbackStore` takes over from there.
        """
        require("redis", extra="redis", feature="RedisStore")
        options = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "max_connections": max_connections,
            **client_kwargs,
        }
        return cls(
            prefix=prefix,
            encryption_key=encryption_key,
            max_size=max_size,
            name=name,
            _url=url,
            _client_options=options,
        )

    # -- clients --------------------------------------------------------------------------
    def _sync(self) -> redis.Redis:
        client = self._sync_client
        if client is not None:
            return client
        if self._url is None:
            raise TypeError(
                "RedisStore was given an asyncio redis client, so its synchronous methods "
                "(used by WSGI/Flask) cannot run; pass a redis.Redis client, or build the "
                "store with RedisStore.from_url(url) to serve both"
            )
        sredis = require("redis", extra="redis", feature="RedisStore")
        pool = sredis.BlockingConnectionPool.from_url(self._url, timeout=1.0, **self._options)
        created: redis.Redis = sredis.Redis(
            connection_pool=pool,
            retry=reconnect_once(asyncio=False, extra="redis", feature="RedisStore"),
        )
        self._sync_client = created
        return created

    def _async(self) -> redis.asyncio.Redis | None:
        if self._given_async is not None:
            return self._given_async
        # None: a sync client only, whose async methods run it in a thread.
        clients = self._async_clients
        return None if clients is None else clients.get()

    def _new_async_client(self) -> redis.asyncio.Redis:
        assert self._url is not None
        aredis = require("redis.asyncio", extra="redis", feature="RedisStore")
        pool = aredis.BlockingConnectionPool.from_url(self._url, timeout=1.0, **self._options)
        client: redis.asyncio.Redis = aredis.Redis(
            connection_pool=pool,
            retry=reconnect_once(asyncio=True, extra="redis", feature="RedisStore"),
        )
        return client

    def _script(self, client: Any, which: str) -> Any:
        key = (id(client), which)
        script = self._scripts.get(key)
        # A replaced client's id may be reused: a script stays bound to its own client.
        if script is None or script.registered_client is not client:
            if len(self._scripts) > 4 * len(_SCRIPTS):
                self._scripts.clear()  # entries of clients replaced on other loops
            script = client.register_script(_SCRIPTS[which])
            self._scripts[key] = script
        return script

    def _key(self, session_id: str) -> str:
        return self.prefix + session_id

    @staticmethod
    def _raw(reply: Any) -> RawRecord | None:
        if not reply:
            return None
        blob, version, user, pttl = reply
        pttl = int(pttl)
        if pttl == -2:
            return None
        expires = time.time() + (pttl / 1000 if pttl > 0 else 365 * 24 * 3600)
        user_id = user.decode("utf-8", "replace") if user else None
        try:
            number = int(version)
        except ValueError:
            number = 0
        return RawRecord(bytes(blob), number, user_id, expires)

    def _wrongtype(self, exc: BaseException) -> bool:
        return isinstance(exc, self._response_error) and "WRONGTYPE" in str(exc)

    # -- sync hooks -----------------------------------------------------------------------
    def _get(self, session_id: str) -> RawRecord | None:
        client = self._sync()
        try:
            reply = self._script(client, "load")(keys=[self._key(session_id)])
        except Exception as exc:
            if self._wrongtype(exc):
                return RawRecord(b"", 0, None, time.time() + 60)  # not ours: decodes as corrupt
            raise
        return self._raw(reply)

    def _put_args(
        self, session_id: str, blob: bytes, expected: int, user_id: str | None, ttl: float
    ) -> list[Any]:
        return [
            blob,
            expected,
            user_id or "",
            max(1, int(ttl * 1000)),
            self._user_prefix,
            session_id,
        ]

    def _put(
        self, session_id: str, blob: bytes, expected: int, user_id: str | None, ttl: float
    ) -> int | None:
        client = self._sync()
        args = self._put_args(session_id, blob, expected, user_id, ttl)
        version = int(self._script(client, "save")(keys=[self._key(session_id)], args=args))
        return None if version < 0 else version

    def _remove(self, session_id: str) -> bool:
        client = self._sync()
        script = self._script(client, "remove")
        return bool(script(keys=[self._key(session_id)], args=[self._user_prefix, session_id]))

    def _expire(self, session_id: str, ttl: float) -> bool:
        client = self._sync()
        args = [max(1, int(ttl * 1000)), self._user_prefix]
        return bool(self._script(client, "expire")(keys=[self._key(session_id)], args=args))

    def _remove_user(self, user_id: str) -> int:
        client = self._sync()
        keys = [self._user_prefix + user_id]
        return int(self._script(client, "user")(keys=keys, args=[self.prefix]))

    # -- async hooks ----------------------------------------------------------------------
    async def _aget(self, session_id: str) -> RawRecord | None:
        client = self._async()
        if client is None:
            return await super()._aget(session_id)
        try:
            reply = await self._script(client, "load")(keys=[self._key(session_id)])
        except Exception as exc:
            if self._wrongtype(exc):
                return RawRecord(b"", 0, None, time.time() + 60)
            raise
        return self._raw(reply)

    async def _aput(
        self, session_id: str, blob: bytes, expected: int, user_id: str | None, ttl: float
    ) -> int | None:
        client = self._async()
        if client is None:
            return await super()._aput(session_id, blob, expected, user_id, ttl)
        args = self._put_args(session_id, blob, expected, user_id, ttl)
        version = int(await self._script(client, "save")(keys=[self._key(session_id)], args=args))
        return None if version < 0 else version

    async def _aremove(self, session_id: str) -> bool:
        client = self._async()
        if client is None:
            return await super()._aremove(session_id)
        script = self._script(client, "remove")
        return bool(
            await script(keys=[self._key(session_id)], args=[self._user_prefix, session_id])
        )

    async def _aexpire(self, session_id: str, ttl: float) -> bool:
        client = self._async()
        if client is None:
            return await super()._aexpire(session_id, ttl)
        args = [max(1, int(ttl * 1000)), self._user_prefix]
        return bool(await self._script(client, "expire")(keys=[self._key(session_id)], args=args))

    async def _aremove_user(self, user_id: str) -> int:
        client = self._async()
        if client is None:
            return await super()._aremove_user(user_id)
        keys = [self._user_prefix + user_id]
        return int(await self._script(client, "user")(keys=keys, args=[self.prefix]))

    # -- observability --------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters plus the key ``prefix``."""
        stats = self._base_stats()
        stats["prefix"] = self.prefix
        return stats

    def health_check(self) -> CheckResult:
        """PING Redis with the sync client; unhealthy with the error when it does not answer."""
        started = time.perf_counter()
        try:
            self._sync().ping()
        except TypeError:
            return CheckResult.healthy("asyncio client only: use ahealth_check() for a probe")
        except Exception as exc:
            return CheckResult.unhealthy(f"redis unreachable: {type(exc).__name__}: {exc}")
        return CheckResult("healthy", "", {}, (time.perf_counter() - started) * 1000)

    async def ahealth_check(self) -> CheckResult:
        """PING Redis with the asyncio client (or the sync one in a thread)."""
        client = self._async()
        if client is None:
            return await asyncio.to_thread(self.health_check)
        started = time.perf_counter()
        try:
            await client.ping()
        except Exception as exc:
            return CheckResult.unhealthy(f"redis unreachable: {type(exc).__name__}: {exc}")
        return CheckResult("healthy", "", {}, (time.perf_counter() - started) * 1000)

    def close(self) -> None:
        """Close the sync client this store created (asyncio clients: :meth:`aclose`)."""
        if self._url is not None and self._sync_client is not None:
            self._sync_client.close()
            self._sync_client.connection_pool.disconnect()
            self._sync_client = None

    async def aclose(self) -> None:
        """Close the clients this store created (the asyncio ones of other event loops close
        with their loop)."""
        self.close()
        if self._async_clients is not None:
            await self._async_clients.aclose()
