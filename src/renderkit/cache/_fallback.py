"""Serve from a fallback (memory) while the primary (Redis) fails, behind a circuit breaker."""

from __future__ import annotations

import logging
from typing import Any

from renderkit.cache._base import Backend
from renderkit.health import CheckResult
from renderkit.resilience import CircuitBreaker, Degrader

__all__ = ["FallbackBackend"]

logger = logging.getLogger("renderkit.cache")
# Read by the background probe: any answer, a miss included, means the primary is back.
_PROBE_KEY = "renderkit:cache:probe"


class FallbackBackend:
    """Use ``primary`` while it answers; on errors switch to ``fallback`` and probe the
    primary again every ``probe_interval`` seconds in the background (one call at a time),
    switching back as soon as it answers.

    Writes go to both while the primary is up (``mirror_writes``), so the fallback already
    holds this process's recent values when the primary goes away. The switching, logging
    and health are a :class:`~renderkit.resilience.Degrader` (``self.degrader``): one warning
    when the outage starts, one info line when it ends, ``degraded`` health meanwhile.
    """

    def __init__(
        self,
        primary: Backend,
        fallback: Backend,
        *,
        probe_interval: float = 5.0,
        failure_threshold: int = 2,
        mirror_writes: bool = True,
        breaker: CircuitBreaker | None = None,
        name: str = "fallback",
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.mirror_writes = mirror_writes
        self.name = name
        self.degrader = Degrader(
            "cache",
            primary=primary.name,
            fallback=fallback.name,
            logger=logger,
            # Failures that mean "the primary is down"; others propagate to the caller.
            outage_errors=getattr(primary, "errors", (Exception,)),
            failure_threshold=failure_threshold,
            recovery_timeout=probe_interval,
            probe=self._probe,
            aprobe=self._aprobe,
            breaker=breaker,
        )
        self.breaker = self.degrader.breaker

    def _probe(self) -> None:
        self.primary.get(_PROBE_KEY)

    async def _aprobe(self) -> None:
        await self.primary.aget(_PROBE_KEY)

    @property
    def fallback_active(self) -> bool:
        """True while calls go to the fallback instead of the primary."""
        return self.degrader.active

    # -- sync ------------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        return self.degrader.call(self.primary.get, self.fallback.get, key)

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        if self.mirror_writes:
            self.fallback.set(key, value, ttl)
            self.degrader.call(self.primary.set, _none, key, value, ttl)
        else:
            self.degrader.call(self.primary.set, self.fallback.set, key, value, ttl)

    def delete(self, key: str) -> bool:
        found = self.fallback.delete(key)
        return self.degrader.call(self.primary.delete, _false, key) or found

    def clear(self, prefix: str = "") -> int:
        count = self.fallback.clear(prefix)
        return self.degrader.call(self.primary.clear, lambda _: count, prefix)

    def acquire_lock(self, key: str, lease: float) -> str | None:
        return self.degrader.call(self.primary.acquire_lock, self.fallback.acquire_lock, key, lease)

    def release_lock(self, key: str, token: str) -> None:
        for backend in (self.primary, self.fallback):
            try:
                backend.release_lock(key, token)
            except Exception:
                pass  # an unreleased lease expires by itself

    def health_check(self) -> CheckResult:
        if self.fallback_active:
            return self.degrader.health_check()
        return self.degrader.health_check(self.primary.health_check())

    def close(self) -> None:
        self.degrader.close()
        self.primary.close()
        self.fallback.close()

    # -- asyncio ---------------------------------------------------------------------------
    async def aget(self, key: str) -> bytes | None:
        return await self.degrader.acall(self.primary.aget, self.fallback.aget, key)

    async def aset(self, key: str, value: bytes, ttl: float | None) -> None:
        if self.mirror_writes:
            await self.fallback.aset(key, value, ttl)
            await self.degrader.acall(self.primary.aset, _none, key, value, ttl)
        else:
            await self.degrader.acall(self.primary.aset, self.fallback.aset, key, value, ttl)

    async def adelete(self, key: str) -> bool:
        found = await self.fallback.adelete(key)
        return await self.degrader.acall(self.primary.adelete, _false, key) or found

    async def aclear(self, prefix: str = "") -> int:
        count = await self.fallback.aclear(prefix)
        return await self.degrader.acall(self.primary.aclear, lambda _: count, prefix)

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
        if self.fallback_active:
            return self.degrader.health_check()
        return self.degrader.health_check(await self.primary.ahealth_check())

    async def aclose(self) -> None:
        self.degrader.close()
        await self.primary.aclose()
        await self.fallback.aclose()

    # -- reporting -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        degrader = self.degrader.stats()
        return {
            "backend": self.name,
            "fallback_active": degrader["fallback_active"],
            "primary_errors": degrader["primary_errors"],
            "fallback_served": degrader["fallback_served"],
            "outages": degrader["outages"],
            "breaker": degrader["breaker"],
            "primary": self.primary.stats(),
            "fallback": self.fallback.stats(),
        }


def _none(*_: Any) -> None:
    return None


def _false(*_: Any) -> bool:
    return False
