"""FallbackStore's decisions: which store answers, what is newest, what to replay (private).

Reconciliation, in short: every record FallbackStore writes carries its write time
(``_STAMP``, hidden from the app); a delete or an id rotation while the primary is away leaves
a tombstone (a record holding ``_TOMB``) in the fallback; each id written in the fallback while
the primary was away goes into a bounded journal. When the primary answers again, the journal
is replayed onto it (newest wins: a tombstone deletes the primary's copy), and every load
compares both stores until the journal is empty and ``reconcile_window`` has passed, so a
write made by another worker that still falls back is seen too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from renderkit.health import CheckResult
from renderkit.resilience import CircuitBreaker
from renderkit.resilience._pair import FallbackPair
from renderkit.sessions._base import DEFAULT_TTL, SessionConflict, SessionData, SessionRecord
from renderkit.sessions._store import SessionStore

__all__ = ["FallbackBase"]

logger = logging.getLogger("renderkit.sessions")
_STAMP = "\x00t"
_TOMB = "\x00x"
_PROBE_ID = "renderkit-fallback-probe"
_REPLAY_BATCH = 20


def stamp_of(record: SessionRecord | None) -> float:
    """When ``record`` was written (0 for none, or one written without FallbackStore)."""
    if record is None:
        return 0.0
    value = record.data.get(_STAMP, 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def is_tombstone(record: SessionRecord | None) -> bool:
    return record is not None and _TOMB in record.data


def visible(record: SessionRecord | None) -> SessionRecord | None:
    """What the app sees of ``record``: None for a tombstone, the data without the stamp."""
    if record is None or _TOMB in record.data:
        return None
    record.data.pop(_STAMP, None)
    return record


class FallbackBase(FallbackPair[SessionStore], SessionStore):
    """The shared part of :class:`FallbackStore` (see there)."""

    def __init__(
        self,
        primary: SessionStore,
        fallback: SessionStore,
        *,
        breaker: CircuitBreaker | None = None,
        failure_threshold: int = 2,
        recovery_timeout: float = 10.0,
        mirror: bool | None = None,
        reconcile_window: float | None = None,
        max_journal: int = 100_000,
        tombstone_ttl: float = DEFAULT_TTL,
        name: str = "sessions",
    ) -> None:
        super().__init__(name=name)
        from renderkit.sessions._memory import MemoryStore

        if max_journal < 1:
            raise ValueError(f"FallbackStore(max_journal={max_journal}): must be >= 1")
        self._pair(
            name,
            primary,
            fallback,
            names=(type(primary).__name__, type(fallback).__name__),
            logger=logger,
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            breaker=breaker,
        )
        self.mirror = not isinstance(fallback, MemoryStore) if mirror is None else mirror
        self.blocking = primary.blocking or fallback.blocking
        self.errors = fallback.errors
        if reconcile_window is None:
            reconcile_window = 2 * self.breaker.recovery_timeout + 5
        self.reconcile_window = float(reconcile_window)
        self.max_journal = max_journal
        self.tombstone_ttl = tombstone_ttl
        self._mirror_errors: tuple[type[BaseException], ...] = (SessionConflict, *fallback.errors)
        self._journal: OrderedDict[str, None] = OrderedDict()
        # Ids whose mirror write failed, with the stamp of that write: a fallback copy older
        # than it is stale (another worker may have mirrored a newer state since).
        self._mirror_debt: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._away = False
        self._recovered_at = float("-inf")
        self._fallback_used = False
        self._replaying = False
        self._drains: set[asyncio.Task[None]] = set()
        self._counts = dict.fromkeys(
            ("mirror_errors", "journal_dropped", "replayed", "repaired", "tombstones"), 0
        )

    # -- the background probe ----------------------------------------------------------------
    def _probe(self) -> None:
        """Raises while the primary is away; once it answers, the journal is replayed soon
        after (when the degrader has closed the circuit), whether or not requests come."""
        self.primary.load(_PROBE_ID)
        if self._journal:
            timer = threading.Timer(0.05, self._drain)
            timer.daemon = True
            timer.start()

    async def _aprobe(self) -> None:
        await self.primary.aload(_PROBE_ID)
        if self._journal:
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, self._start_drain, loop)

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        task = loop.create_task(self._adrain())
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    if TYPE_CHECKING:  # implemented by the class this is mixed into

        def _drain(self) -> None: ...  # FallbackOps

        async def _adrain(self) -> None: ...  # AsyncFallbackOps

    # -- decisions ---------------------------------------------------------------------------
    def _went_away(self) -> None:
        self._away = True
        self._fallback_used = True

    def _came_back(self) -> bool:
        """Note a primary success; True when journalled writes wait to be replayed."""
        if self._away:
            self._away = False
            self._recovered_at = time.monotonic()
        return bool(self._journal) and not self._replaying

    def _journal_add(self, session_id: str) -> None:
        with self._lock:
            journal = self._journal
            journal[session_id] = None
            journal.move_to_end(session_id)
            while len(journal) > self.max_journal:
                journal.popitem(last=False)
                self._counts["journal_dropped"] += 1

    def _owe_mirror(self, session_id: str, data: SessionData) -> None:
        stamp = data.get(_STAMP, 0.0)
        with self._lock:
            self._mirror_debt[session_id] = float(stamp) if isinstance(stamp, int | float) else 0.0
            self._mirror_debt.move_to_end(session_id)
            while len(self._mirror_debt) > self.max_journal:
                self._mirror_debt.popitem(last=False)

    def _mirror_paid(self, session_id: str) -> None:
        if self._mirror_debt:
            with self._lock:
                self._mirror_debt.pop(session_id, None)

    def _older_than_owed(self, session_id: str, held: SessionRecord | None) -> bool:
        """True when ``held`` (the fallback's copy) predates a write this worker failed to
        mirror; a copy as new as that write, from any worker, settles the debt."""
        owed = self._mirror_debt.get(session_id) if self._mirror_debt else None
        if owed is None or held is None:
            return False
        if stamp_of(held) >= owed:
            self._mirror_paid(session_id)
            return False
        return True

    def _journal_done(self, session_id: str) -> None:
        with self._lock:
            self._journal.pop(session_id, None)

    def _replay_batch(self) -> list[str]:
        with self._lock:
            return list(self._journal)[:_REPLAY_BATCH]

    def _consult(self, session_id: str, primary: SessionRecord | None) -> bool:
        """True when the fallback may hold a newer state than ``primary`` for this id."""
        if primary is None:
            return self.mirror or self._fallback_used
        if session_id in self._journal:
            return True
        return time.monotonic() - self._recovered_at < self.reconcile_window

    @staticmethod
    def _stamped(data: SessionData) -> dict[str, Any]:
        out = dict(data)
        out.pop(_TOMB, None)
        out[_STAMP] = time.time()
        return out

    @staticmethod
    def _tomb() -> dict[str, Any]:
        now = time.time()
        return {_TOMB: now, _STAMP: now}

    @staticmethod
    def _stamp_change() -> dict[str, Any]:
        return {_STAMP: time.time()}

    def _count_event(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    # -- observability -------------------------------------------------------------------------
    @property
    def falling_back(self) -> bool:
        """True while the primary is considered unavailable."""
        return self.degrader.active

    @property
    def journal_size(self) -> int:
        """Ids written in the fallback while the primary was away and not yet replayed."""
        return len(self._journal)

    def stats(self) -> dict[str, Any]:
        """``fallback_active``, the journal, the breaker, and both stores' stats."""
        with self._lock:
            counts = dict(self._counts)
        return {
            "store": "FallbackStore",
            "fallback_active": self.falling_back,
            "mirror": self.mirror,
            "journal": len(self._journal),
            **counts,
            "fallback_calls": self.degrader.stats().get("fallback_served", 0),
            "breaker": self.breaker.stats(),
            "primary": self.primary.stats(),
            "fallback": self.fallback.stats(),
        }

    def _verdict(self, primary: CheckResult) -> CheckResult:
        result = self.degrader.health_check(primary)
        result.details["store"] = type(self.primary).__name__
        return result
