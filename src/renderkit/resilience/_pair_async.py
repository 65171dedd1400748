# twins: source
# twins: rename aclose=close
"""Closing a primary/fallback pair (async source; ``_pair_sync`` is generated; private module)."""

from __future__ import annotations

from typing import Any

from renderkit.resilience._degrade import Degrader

__all__ = ["AsyncPairClose"]


class AsyncPairClose:
    """``aclose`` of :class:`~renderkit.resilience._pair.FallbackPair`."""

    primary: Any
    fallback: Any
    degrader: Degrader

    async def aclose(self) -> None:
        """Stop the background probe, then close both sides."""
        self.degrader.close()
        await self.primary.aclose()
        await self.fallback.aclose()
