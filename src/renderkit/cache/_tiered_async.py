# twins: source
# twins: rename aget=get aset=set adelete=delete aclear=clear aacquire_lock=acquire_lock
# twins: rename arelease_lock=release_lock ahealth_check=health_check aclose=close
"""TieredBackend's I/O methods (async source; ``_tiered_sync`` is generated)."""

from __future__ import annotations

from renderkit.cache._base import Backend
from renderkit.health import CheckResult

__all__ = ["AsyncTieredMethods"]


class AsyncTieredMethods:
    """Reads from L1 then L2 (filling L1); writes and deletes to L2, then L1."""

    l1: Backend
    l2: Backend
    l1_ttl: float
    _l1_hits: int

    async def aget(self, key: str) -> bytes | None:
        value = await self.l1.aget(key)
        if value is not None:
            self._l1_hits += 1
            return value
        value = await self.l2.aget(key)
        if value is not None:
            await self.l1.aset(key, value, self.l1_ttl)
        return value

    async def aset(self, key: str, value: bytes, ttl: float | None) -> None:
        await self.l2.aset(key, value, ttl)
        await self.l1.aset(key, value, self.l1_ttl if ttl is None else min(ttl, self.l1_ttl))

    async def adelete(self, key: str) -> bool:
        found = await self.l2.adelete(key)
        return await self.l1.adelete(key) or found

    async def aclear(self, prefix: str = "") -> int:
        await self.l1.aclear(prefix)
        return await self.l2.aclear(prefix)

    async def aacquire_lock(self, key: str, lease: float) -> str | None:
        return await self.l2.aacquire_lock(key, lease)

    async def arelease_lock(self, key: str, token: str) -> None:
        await self.l2.arelease_lock(key, token)

    async def ahealth_check(self) -> CheckResult:
        return await self.l2.ahealth_check()

    async def aclose(self) -> None:
        await self.l1.aclose()
        await self.l2.aclose()
