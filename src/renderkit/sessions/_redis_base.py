"""What RedisStore is besides its I/O hooks: Lua scripts, clients, replies (private module)."""

from __future__ import annotations

import inspect
import time
from typing import TYPE_CHECKING, Any, Self

from renderkit._optional import require
from renderkit._redis import PerLoop, close_client, redis_client, require_bytes
from renderkit.sessions._base import DELETED, Changes, RawRecord
from renderkit.sessions._store import SessionStore

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["RedisBase"]

# One hash per session: d = encoded data, v = version, u = user id ("" for none), and one
# field "k:<key>" per key a merge changed since the last full write (see RawRecord.parts). The
# user index is a set of session ids per user, kept as long as the longest session in it.
_LOAD = """
local r = redis.call('HGETALL', KEYS[1])
if #r == 0 then return false end
return {r, redis.call('PTTL', KEYS[1])}
"""
# ARGV: 1 ttl ms, 2 user ('' none), 3 user-index prefix, 4 session id; the save also takes
# 5 blob and 6 expected version, the merge 5 set_user ('1'/'0') then field/value pairs.
_OWNER = """
local function owner(user)
  local old = redis.call('HGET', KEYS[1], 'u')
  if old and old ~= '' and old ~= user then redis.call('SREM', ARGV[3] .. old, ARGV[4]) end
  redis.call('HSET', KEYS[1], 'u', user)
  if user ~= '' then
    local uk = ARGV[3] .. user
    redis.call('SADD', uk, ARGV[4])
    if redis.call('PTTL', uk) < tonumber(ARGV[1]) then redis.call('PEXPIRE', uk, ARGV[1]) end
  end
end
"""
_SAVE = (
    _OWNER
    + """
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0') or 0
if v ~= tonumber(ARGV[6]) then return -1 end
owner(ARGV[2])
redis.call('DEL', KEYS[1])
v = v + 1
redis.call('HSET', KEYS[1], 'd', ARGV[5], 'v', v, 'u', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return v
"""
)
_MERGE = (
    _OWNER
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[5] == '1' then owner(ARGV[2]) end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return v
"""
)
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
    "merge": _MERGE,
    "remove": _REMOVE,
    "expire": _EXPIRE,
    "user": _REMOVE_USER,
}


def _same(client: Any) -> Any:
    return client


def _is_async(client: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(client, "execute_command", None))


class RedisBase(SessionStore):
    """The shared part of :class:`RedisStore` (see there): clients, keys, Lua scripts."""

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
            require_bytes(client, "RedisStore", "session blobs are bytes")
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
    ) -> Self:
        """Build a store for ``url``; nothing connects yet.

        ``url`` is any renderkit Redis URL: ``redis://``, ``rediss://``, ``unix://``,
        ``valkey(s)://``, ``redis+cluster://h1:p1,h2:p2`` (the user index then lives under a
        hash tag per user, see ``_redis_cluster_async``) or
        ``redis+sentinel://h1:p1,h2:p2/service`` (a failover is followed without a restart).

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
    def _client_sync(self) -> redis.Redis:
        client = self._sync_client
        if client is not None:
            return client
        if self._url is None:
            raise TypeError(
                "RedisStore was given an asyncio redis client, so its synchronous methods "
                "(used by WSGI/Flask) cannot run; pass a redis.Redis client, or build the "
                "store with RedisStore.from_url(url) to serve both"
            )
        created: redis.Redis = redis_client(
            self._url, asyncio=False, extra="redis", feature="RedisStore", **self._options
        )
        self._sync_client = created
        return created

    def _threaded(self) -> bool:
        """True when only a sync client was given: the async methods run it in a thread."""
        return self._given_async is None and self._async_clients is None

    def _client_async(self) -> redis.asyncio.Redis:
        if self._given_async is not None:
            return self._given_async
        assert self._async_clients is not None  # else _threaded() sent the call to a thread
        return self._async_clients.get()

    def _new_async_client(self) -> redis.asyncio.Redis:
        assert self._url is not None
        client: redis.asyncio.Redis = redis_client(
            self._url, asyncio=True, extra="redis", feature="RedisStore", **self._options
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
        flat, pttl = reply
        pttl = int(pttl)
        if pttl == -2:
            return None
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        expires = time.time() + (pttl / 1000 if pttl > 0 else 365 * 24 * 3600)
        user = fields.get(b"u")
        user_id = user.decode("utf-8", "replace") if user else None
        try:
            number = int(fields.get(b"v", b"0"))
        except ValueError:
            number = 0
        parts = tuple(bytes(v) for k, v in fields.items() if k[:2] == b"k:")
        return RawRecord(bytes(fields.get(b"d", b"{}")), number, user_id, expires, parts)

    def _args(self, session_id: str, user_id: str | None, ttl: float) -> list[Any]:
        return [max(1, int(ttl * 1000)), user_id or "", self._user_prefix, session_id]

    def _merge_args(
        self, session_id: str, changes: Changes, user_id: str | None, set_user: bool, ttl: float
    ) -> list[Any]:
        args = self._args(session_id, user_id, ttl)
        args.append("1" if set_user else "0")
        encode = self.codec.encode
        for key, value in changes.items():
            change = {"k": key} if value is DELETED else {"k": key, "v": value}
            args += ["k:" + key, encode(session_id, change)]
        return args

    def _wrongtype(self, exc: BaseException) -> bool:
        return isinstance(exc, self._response_error) and "WRONGTYPE" in str(exc)

    # -- observability --------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters plus the key ``prefix``."""
        stats = self._base_stats()
        stats["prefix"] = self.prefix
        return stats

    def close(self) -> None:
        """Close the sync client this store created (asyncio clients: :meth:`aclose`)."""
        if self._url is not None and self._sync_client is not None:
            close_client(self._sync_client)
            self._sync_client = None
