# DO NOT EDIT: generated from src/renderkit/sessions/_redis_async.py by tools/twins.py.
# Edit the async source and run `nox -s twins` (or `python tools/twins.py`).
"""RedisStore's I/O hooks (async source; ``_redis_sync`` is generated; private module).

With an asyncio client the async hooks await it; a store given only a sync client runs the
sync hooks in a worker thread.
"""

from __future__ import annotations

import time
from typing import Any

from renderkit._redis import is_cluster
from renderkit.health import CheckResult
from renderkit.sessions._base import Changes, RawRecord
from renderkit.sessions._redis_base import RedisBase
from renderkit.sessions._redis_cluster_sync import cluster_eval_sync

__all__ = ["RedisHooks"]


class RedisHooks(RedisBase):
    """The raw hooks of :class:`RedisStore`, each one Lua script call."""

    def _eval(self, which: str, keys: list[str], args: list[Any]) -> Any:
        client = self._client_sync()
        if is_cluster(client):  # one slot per script: see _redis_cluster_sync
            return cluster_eval_sync(client, which, keys, args, self._user_prefix)
        return self._script(client, which)(keys=keys, args=args)

    def _get(self, session_id: str) -> RawRecord | None:
        try:
            reply = self._eval("load", [self._key(session_id)], [])
        except Exception as exc:
            if self._wrongtype(exc):
                return RawRecord(b"", 0, None, time.time() + 60)  # not ours: decodes as corrupt
            raise
        return self._raw(reply)

    def _put(
        self, session_id: str, blob: bytes, expected: int, user_id: str | None, ttl: float
    ) -> int | None:
        args = [*self._args(session_id, user_id, ttl), blob, expected]
        version = int(self._eval("save", [self._key(session_id)], args))
        return None if version < 0 else version

    def _merge(
        self, session_id: str, changes: Changes, user_id: str | None, set_user: bool, ttl: float
    ) -> int | None:
        args = self._merge_args(session_id, changes, user_id, set_user, ttl)
        version = int(self._eval("merge", [self._key(session_id)], args))
        return None if version < 0 else version

    def _remove(self, session_id: str) -> bool:
        args = [self._user_prefix, session_id]
        return bool(self._eval("remove", [self._key(session_id)], args))

    def _expire(self, session_id: str, ttl: float) -> bool:
        args = [max(1, int(ttl * 1000)), self._user_prefix]
        return bool(self._eval("expire", [self._key(session_id)], args))

    def _remove_user(self, user_id: str) -> int:
        keys = [self._user_prefix + user_id]
        return int(self._eval("user", keys, [self.prefix]))

    def health_check(self) -> CheckResult:
        """PING Redis; unhealthy with the error when it does not answer."""
        started = time.perf_counter()
        try:
            self._client_sync().ping()
        except TypeError:
            return CheckResult.healthy("asyncio client only: the async health check probes it")
        except Exception as exc:
            return CheckResult.unhealthy(f"redis unreachable: {type(exc).__name__}: {exc}")
        return CheckResult("healthy", "", {}, (time.perf_counter() - started) * 1000)
