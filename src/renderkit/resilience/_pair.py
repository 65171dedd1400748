"""FallbackPair: what the cache's and the sessions' primary-with-fallback share (private)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Generic, TypeVar

from renderkit.resilience._breaker import CircuitBreaker
from renderkit.resilience._degrade import Degrader
from renderkit.resilience._pair_async import AsyncPairClose
from renderkit.resilience._pair_sync import PairClose

__all__ = ["FallbackPair"]

SideT = TypeVar("SideT")


class FallbackPair(PairClose, AsyncPairClose, Generic[SideT]):
    """A component that serves from ``primary`` while it answers and from ``fallback`` while
    it fails: the cache's ``FallbackBackend`` and the sessions' ``FallbackStore``.

    :meth:`_pair` gives it its :class:`~renderkit.resilience.Degrader`: an outage is one of
    the primary's own ``errors`` (what every backend and store declares; any exception for a
    backend that declares none), the background probe is the component's ``_probe`` /
    ``_aprobe`` (one cheap read on the primary), and ``breaker`` is the degrader's.
    ``close`` / ``aclose`` stop that probe, then close both sides.
    """

    primary: SideT
    fallback: SideT
    degrader: Degrader
    breaker: CircuitBreaker

    def _pair(
        self,
        component: str,
        primary: SideT,
        fallback: SideT,
        *,
        names: tuple[str, str],
        logger: logging.Logger,
        failure_threshold: int,
        recovery_timeout: float,
        breaker: CircuitBreaker | None,
    ) -> None:
        """Serve from ``primary``, else ``fallback``; ``names`` name them in logs and health."""
        self.primary = primary
        self.fallback = fallback
        self.degrader = Degrader(
            component,
            primary=names[0],
            fallback=names[1],
            logger=logger,
            outage_errors=getattr(primary, "errors", (Exception,)),
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            probe=self._probe,
            aprobe=self._aprobe,
            breaker=breaker,
        )
        self.breaker = self.degrader.breaker

    if TYPE_CHECKING:  # implemented by the class this is mixed into

        def _probe(self) -> None: ...

        async def _aprobe(self) -> None: ...
