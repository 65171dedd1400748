"""A timeout for asyncio Redis calls that measures the server's answer, not the event loop.

``asyncio.wait_for`` and redis-py's ``socket_timeout`` start their clock when the call is
made. Under a burst the event loop itself is the bottleneck: a reply that Redis sent in 0.2 ms
may sit unread for 150 ms while the loop serves other requests, the timeout fires, and the
circuit breaker opens on a healthy Redis (then the memory fallback, starting from zero, lets
a burst through).

:class:`Deadlines` gives up on a call only when the loop has been responsive for a whole
``timeout`` since the call started and still no reply came. One ticker per event loop checks
every call in flight (a dict entry per call instead of a timer per call); a tick that runs
late means the loop was busy, and every call then gets a full ``timeout`` more, up to ``cap``
seconds in all, which bounds a call to a Redis that is really hung. A call past its deadline
is given up only after a second look queued behind every callback already waiting, so a
reply that was read but whose task has not resumed yet is not taken for a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["LATE", "Deadlines", "answered"]

T = TypeVar("T")

LATE = 0.005
"""A tick running this many seconds late means the loop was busy, not Redis slow."""


class Deadlines:
    """Bound the calls of one event loop: ``await deadlines.run(call)``."""

    def __init__(self, timeout: float, cap: float = 3.0) -> None:
        self.timeout = timeout
        self.cap = max(cap, timeout)
        self.step = max(timeout / 4, 0.001)
        self._calls: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._ticking = False
        self._busy = 0.0  # loop time of the last late tick

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``; raise ``TimeoutError`` when the server has not answered."""
        task: asyncio.Task[object] = asyncio.current_task()  # type: ignore[assignment]
        calls = self._calls
        if not self._ticking:
            loop = asyncio.get_running_loop()
            self._ticking = True
            due = loop.time() + self.step
            loop.call_at(due, self._tick, loop, due)
            calls[task] = loop.time()
        else:
            calls[task] = asyncio.get_running_loop().time()
        try:
            return await awaitable
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                if task.uncancel() == 0:
                    raise TimeoutError(f"Redis did not answer within {self.timeout:g}s") from None
            raise
        finally:
            calls.pop(task, None)

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = loop.time()
        if now - due > LATE:
            self._busy = now  # replies may be waiting unread: no call expires on this tick
        calls = self._calls
        if not calls:
            self._ticking = False
            return
        quiet_since = self._busy
        suspects = [
            task
            for task, started in calls.items()
            if now - started >= self.cap
            or (now - started >= self.timeout and now - quiet_since >= self.timeout)
        ]
        if suspects:
            # Confirm behind everything already queued: a reply read this turn has queued its
            # task's wake-up before this, so that call finishes first and is no suspect then.
            loop.call_soon(self._confirm, loop, now, suspects)
        due = now + self.step
        loop.call_at(due, self._tick, loop, due)

    def _confirm(
        self, loop: asyncio.AbstractEventLoop, queued: float, suspects: list[asyncio.Task[object]]
    ) -> None:
        now = loop.time()
        busy = now - queued > LATE  # a long ready queue: the loop is the bottleneck
        if busy:
            self._busy = now
        calls = self._calls
        for task in suspects:
            started = calls.get(task)
            if started is None or (busy and now - started < self.cap):
                continue
            del calls[task]
            self._expired.add(task)
            task.cancel()


async def answered(awaitable: Awaitable[T], timeout: float, cap: float = 3.0) -> T:
    """One call under its own :class:`Deadlines` (the store keeps one per loop instead)."""
    return await Deadlines(timeout, cap).run(awaitable)
