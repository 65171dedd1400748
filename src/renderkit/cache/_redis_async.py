# twins: source
# twins: rename aget=get aset=set adelete=delete aclear=clear aacquire_lock=acquire_lock
# twins: rename arelease_lock=release_lock ahealth_check=health_check _aslot=_slot
# twins: rename _aclear_cluster=_clear_cluster
"""RedisBackend's commands (async source; ``_redis_sync`` is generated).

Each command takes a client from :meth:`RedisBackend._aslot` (this event loop's client and a
slot of its concurrency gate; the sync side: the sync client, no gate) and gives the slot
back in ``finally``. No context manager object per call: reads are the hot path.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any

from renderkit.health import CheckResult

__all__ = ["AsyncRedisMethods"]

# Compare-and-delete: release a lock only while we still hold it (the lease may have run out
# and another process taken it).
RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_SCAN_BATCH = 500
_MAX_SCAN_ROUNDS = 100_000


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class AsyncRedisMethods:
    """The backend operations as Redis commands."""

    prefix: str
    cluster: bool

    if TYPE_CHECKING:  # RedisBackend's: the client (and gate) of the running loop

        async def _aslot(self) -> tuple[Any, asyncio.Semaphore | None]: ...

    async def aget(self, key: str) -> bytes | None:
        client, gate = await self._aslot()
        try:
            value: bytes | None = await client.get(self.prefix + key)
        finally:
            if gate is not None:
                gate.release()
        return value

    async def aset(self, key: str, value: bytes, ttl: float | None) -> None:
        px = None if ttl is None else max(1, int(ttl * 1000))
        client, gate = await self._aslot()
        try:
            await client.set(self.prefix + key, value, px=px)
        finally:
            if gate is not None:
                gate.release()

    async def adelete(self, key: str) -> bool:
        client, gate = await self._aslot()
        try:
            return bool(await client.delete(self.prefix + key))
        finally:
            if gate is not None:
                gate.release()

    async def aclear(self, prefix: str = "") -> int:
        pattern = _escape_glob(self.prefix + prefix) + "*"
        if self.cluster:
            return await self._aclear_cluster(pattern)
        removed, cursor = 0, 0
        for _ in range(_MAX_SCAN_ROUNDS):
            client, gate = await self._aslot()
            try:
                cursor, keys = await client.scan(cursor, match=pattern, count=_SCAN_BATCH)
                if keys:
                    removed += int(await client.unlink(*keys))
            finally:
                if gate is not None:
                    gate.release()
            if cursor == 0:
                break
        return removed

    async def _aclear_cluster(self, pattern: str) -> int:
        """A cluster is scanned node by node (redis-py's scan_iter); UNLINK is sent per slot."""
        removed, batch = 0, []
        client, gate = await self._aslot()
        try:
            async for key in client.scan_iter(match=pattern, count=_SCAN_BATCH):
                batch.append(key)
                if len(batch) >= _SCAN_BATCH:
                    removed += int(await client.unlink(*batch))
                    batch = []
            if batch:
                removed += int(await client.unlink(*batch))
        finally:
            if gate is not None:
                gate.release()
        return removed

    async def aacquire_lock(self, key: str, lease: float) -> str | None:
        token = secrets.token_hex(8)
        client, gate = await self._aslot()
        try:
            ok = await client.set(self.prefix + key, token, nx=True, px=max(1, int(lease * 1000)))
        finally:
            if gate is not None:
                gate.release()
        return token if ok else None

    async def arelease_lock(self, key: str, token: str) -> None:
        client, gate = await self._aslot()
        try:
            await client.eval(RELEASE, 1, self.prefix + key, token)
        finally:
            if gate is not None:
                gate.release()

    async def ahealth_check(self) -> CheckResult:
        started = time.perf_counter()
        try:
            client, gate = await self._aslot()
            try:
                await client.ping()
            finally:
                if gate is not None:
                    gate.release()
        except Exception as exc:
            return CheckResult.unhealthy(f"redis unreachable: {type(exc).__name__}: {exc}")
        return CheckResult("healthy", "", {}, (time.perf_counter() - started) * 1000)
