"""In-flight requests: which are running, waiting for them, cancelling the stragglers."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RequestTracker"]

logger = logging.getLogger("renderkit.shutdown")

_POLL = 0.02  # seconds between in-flight checks while draining


class RequestTracker:
    """ASGI requests by task (one event loop) and WSGI requests by count (any thread)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.tasks: set[asyncio.Task[Any]] = set()
        self.sync_active = 0
        self.last_started = 0.0
        """Clock reading when the last request was admitted during shutdown."""
        self.cancelled = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """Requests admitted and not released yet."""
        return len(self.tasks) + self.sync_active

    def add_sync(self) -> None:
        """Count one WSGI request (any thread); ASGI requests go straight into ``tasks``."""
        with self._lock:
            self.sync_active += 1

    def discard_sync(self) -> None:
        """A WSGI request counted by :meth:`add_sync` finished."""
        with self._lock:
            self.sync_active -= 1

    def cancel_stragglers(self) -> int:
        """Cancel every ASGI request still running; returns how many."""
        stragglers = [t for t in self.tasks if not t.done()]
        for task in stragglers:
            task.cancel("renderkit: drain deadline reached during shutdown")
        if stragglers:
            self.cancelled += len(stragglers)
            logger.warning(
                "drain deadline reached: cancelled %d request(s) still running", len(stragglers)
            )
        return len(stragglers)

    async def drain(self, deadline: float) -> tuple[bool, int]:
        """Wait until no request runs or ``deadline``; then cancel the rest. Returns
        (drained, requests cancelled or abandoned)."""
        while self.count and self._clock() < deadline:
            await asyncio.sleep(_POLL)
        if not self.count:
            return True, 0
        cancelled = self.cancel_stragglers() + self.sync_active
        # Give cancelled requests a moment to unwind (their finally blocks, 500s).
        end = min(self._clock() + 0.5, deadline + 0.5)
        while self.tasks and self._clock() < end:
            await asyncio.sleep(_POLL)
        return False, cancelled
