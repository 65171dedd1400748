# twins: source
# twins: rename _aeval=_eval _aget=_get _aput=_put _amerge=_merge _aremove=_remove _aexpire=_expire
# twins: rename _aremove_user=_remove_user ahealth_check=health_check
"""RedisStore's I/O hooks (async source; ``_redis_sync`` is generated; private module).

With an asyncio client the async hooks await it; a store given only a sync client runs the
sync hooks in a worker thread.
"""

from __future__ import annotations

import time
from typing import Any

from renderkit._redis import is_cluster
from renderkit.health import CheckResult
from renderkit.sessions._base import Changes, RawRecord, thread_if_sync_only
from renderkit.sessions._redis_base import RedisBase
from renderkit.sessions._redis_cluster_async import cluster_eval_async

__all__ = ["AsyncRedisHooks"]


class AsyncRedisHooks(RedisBase):
    """The raw hooks of :class:`RedisStore`, each one Lua script call."""

    async def _aeval(self, which: str, keys: list[str], args: list[Any]) -> Any:
        client = self._client_async()
        if is_cluster(client):  # one slot per script: see _redis_cluster_async
            return await cluster_eval_async(client, which, keys, args, self._user_prefix)
        return await self._script(client, which)(keys=keys, args=args)

    @thread_if_sync_only  # twins: async-only
    async def _aget(self, session_id: str) -> RawRecord | None:
        try:
            reply = await self._aeval("load", [self._key(session_id)], [])
        except Exception as exc:
            if self._wrongtype(exc):
                return RawRecord(b"", 0, None, time.time() + 60)  # not ours: decodes as corrupt
            raise
        return self._raw(reply)

    @thread_if_sync_only  # twins: async-only
    async def _aput(
        self, session_id: str, blob: bytes, expected: int, user_id: str | None, ttl: float
    ) -> int | None:
        args = [*self._args(session_id, user_id, ttl), blob, expected]
        version = int(await self._aeval("save", [self._key(session_id)], args))
        return None if version < 0 else version

    @thread_if_sync_only  # twins: async-only
    async def _amerge(
        self, session_id: str, changes: Changes, user_id: str | None, set_user: bool, ttl: float
    ) -> int | None:
        args = self._merge_args(session_id, changes, user_id, set_user, ttl)
        version = int(await self._aeval("merge", [self._key(session_id)], args))
        return None if version < 0 else version

    @thread_if_sync_only  # twins: async-only
    async def _aremove(self, session_id: str) -> bool:
        args = [self._user_prefix, session_id]
        return bool(await self._aeval("remove", [self._key(session_id)], args))

    @thread_if_sync_only  # twins: async-only
    async def _aexpire(self, session_id: str, ttl: float) -> bool:
        args = [max(1, int(ttl * 1000)), self._user_prefix]
        return bool(await self._aeval("expire", [self._key(session_id)], args))

    @thread_if_sync_only  # twins: async-only
    async def _aremove_user(self, user_id: str) -> int:
        keys = [self._user_prefix + user_id]
        return int(await self._aeval("user", keys, [self.prefix]))

    @thread_if_sync_only  # twins: async-only
    async def ahealth_check(self) -> CheckResult:
        """PING Redis; unhealthy with the error when it does not answer."""
        started = time.perf_counter()
        try:
            await self._client_async().ping()
        except TypeError:
            return CheckResult.healthy("asyncio client only: the async health check probes it")
        except Exception as exc:
            return CheckResult.unhealthy(f"redis unreachable: {type(exc).__name__}: {exc}")
        return CheckResult("healthy", "", {}, (time.perf_counter() - started) * 1000)
