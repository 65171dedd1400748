"""Two-level cache: a small in-process L1 in front of a shared L2 (usually Redis)."""

from __future__ import annotations

from typing import Any

from renderkit.cache._base import Backend
from renderkit.cache._memory import ABSENT
from renderkit.cache._tiered_async import AsyncTieredMethods
from renderkit.cache._tiered_sync import TieredMethods

__all__ = ["TieredBackend"]


class TieredBackend(TieredMethods, AsyncTieredMethods):
    """Read L1 first, then L2 (filling L1 for at most ``l1_ttl`` seconds).

    Writes and deletes go to L2 and then L1, so this process never reads its own stale
    value; other processes' writes show up in L1 after ``l1_ttl`` at the latest.

    With a :class:`~renderkit.cache.MemoryBackend` as L1, a ``Cache`` keeps decoded values
    next to their bytes in L1: an immutable value (str, int, float, bool, None, bytes) is
    decoded once and then returned as is; a dict or list is decoded again on every read, so
    each caller gets its own copy to change. ``share_values=True`` keeps decoded dicts and
    lists too: every caller then gets **the same object**, which nobody may mutate, and a hot
    key costs a dictionary lookup instead of a JSON decode.
    """

    def __init__(
        self,
        l1: Backend,
        l2: Backend,
        *,
        l1_ttl: float = 5.0,
        share_values: bool = False,
        name: str = "tiered",
    ):
        if l1_ttl <= 0:
            raise ValueError(f"TieredBackend(l1_ttl={l1_ttl}): must be > 0 seconds")
        self._get_decoded: Any = getattr(l1, "get_decoded", None)
        if share_values and self._get_decoded is None:
            raise ValueError(
                f"TieredBackend(share_values=True) needs an L1 that keeps decoded values, "
                f"such as MemoryBackend; got {type(l1).__name__}"
            )
        self.l1 = l1
        self.l2 = l2
        self.l1_ttl = l1_ttl
        self.share_values = share_values
        self.name = name
        self._l1_hits = 0

    @property
    def decodes_in_l1(self) -> bool:
        """True when :meth:`l1_value` can serve decoded values (the L1 supports it)."""
        return self._get_decoded is not None

    def l1_value(self, key: str, decode: Any) -> Any:
        """The decoded L1 value of ``key``, or the ``ABSENT`` sentinel (then read :meth:`get`).

        Used by ``Cache``/``AsyncCache``; ``decode`` turns stored bytes into a value.
        """
        value = self._get_decoded(key, decode, share=self.share_values)
        if value is not ABSENT:
            self._l1_hits += 1
        return value

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "l1_hits": self._l1_hits,
            "share_values": self.share_values,
            "l1": self.l1.stats(),
            "l2": self.l2.stats(),
        }
