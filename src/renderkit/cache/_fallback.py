"""Serve from a fallback (memory) while the primary (Redis) fails, behind a circuit breaker."""

from __future__ import annotations

import logging
from typing import Any

from renderkit.cache._base import Backend
from renderkit.cache._fallback_async import AsyncFallbackMethods
from renderkit.cache._fallback_sync import FallbackMethods
from renderkit.resilience import CircuitBreaker
from renderkit.resilience._pair import FallbackPair

__all__ = ["FallbackBackend"]

logger = logging.getLogger("renderkit.cache")
# Read by the background probe: any answer, a miss included, means the primary is back.
_PROBE_KEY = "renderkit:cache:probe"


class FallbackBackend(FallbackPair[Backend], FallbackMethods, AsyncFallbackMethods):
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
        self.mirror_writes = mirror_writes
        self.name = name
        self._pair(
            "cache",
            primary,
            fallback,
            names=(primary.name, fallback.name),
            logger=logger,
            failure_threshold=failure_threshold,
            recovery_timeout=probe_interval,
            breaker=breaker,
        )

    def _probe(self) -> None:
        self.primary.get(_PROBE_KEY)

    async def _aprobe(self) -> None:
        await self.primary.aget(_PROBE_KEY)

    @property
    def fallback_active(self) -> bool:
        """True while calls go to the fallback instead of the primary."""
        return self.degrader.active

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
