# twins: source
# twins: rename aget=get aset=set adelete=delete aclear=clear aacquire_lock=acquire_lock
# twins: rename arelease_lock=release_lock ahealth_check=health_check acall=call
# twins: rename anone=_none afalse=_false azero=_zero
"""FallbackBackend's I/O methods (async source; ``_fallback_sync`` is generated)."""

from __future__ import annotations

from renderkit.cache._base import Backend, afalse, anone, azero
from renderkit.health import CheckResult
from renderkit.resilience import Degrader

__all__ = ["AsyncFallbackMethods"]


class AsyncFallbackMethods:
    """Each backend operation on the primary through the degrader, else on the fallback."""

    primary: Backend
    fallback: Backend
    mirror_writes: bool
    degrader: Degrader

    async def aget(self, key: str) -> bytes | None:
        return await self.degrader.acall(self.primary.aget, self.fallback.aget, key)

    async def aset(self, key: str, value: bytes, ttl: float | None) -> None:
        if self.mirror_writes:
            await self.fallback.aset(key, value, ttl)
            await self.degrader.acall(self.primary.aset, anone, key, value, ttl)
        else:
            await self.degrader.acall(self.primary.aset, self.fallback.aset, key, value, ttl)

    async def adelete(self, key: str) -> bool:
        found = await self.fallback.adelete(key)
        return await self.degrader.acall(self.primary.adelete, afalse, key) or found

    async def aclear(self, prefix: str = "") -> int:
        count = await self.fallback.aclear(prefix)
        return await self.degrader.acall(self.primary.aclear, azero, prefix) or count

    async def aacquire_lock(self, key: str, lease: float) -> str | None:
        return await self.degrader.acall(
            self.primary.aacquire_lock, self.fallback.aacquire_lock, key, lease
        )

    async def arelease_lock(self, key: str, token: str) -> None:
        for backend in (self.primary, self.fallback):
            try:
                await backend.arelease_lock(key, token)
            except Exception:
                pass  # an unreleased lease expires by itself

    async def ahealth_check(self) -> CheckResult:
        if self.degrader.active:
            return self.degrader.health_check()
        return self.degrader.health_check(await self.primary.ahealth_check())
