"""A timeout for asyncio Redis calls that measures the server's answer, not the event loop.

``asyncio.wait_for`` and redis-py's ``socket_timeout`` start their clock when the call is
made. Under a burst the event loop itself is the bottleneck: a reply that Redis sent in 0.2 ms
may sit unread for 150 ms while the loop serves other requests, the timeout fires, and the
circuit breaker opens on a healthy Redis (then the memory fallback, starting from zero, lets
a burst through). :func:`answered` only gives up when the loop was responsive for the whole
timeout and still no reply came: each time the deadline timer fires late (the loop was busy),
it is re-armed, up to ``cap`` seconds in all, which bounds a call to a Redis that is really
hung.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["LATE", "answered"]

T = TypeVar("T")

LATE = 0.005
"""A deadline timer firing this many seconds late means the loop was busy, not Redis slow."""


async def answered(awaitable: Awaitable[T], timeout: float, cap: float = 1.0) -> T:
    """Await ``awaitable``; raise ``TimeoutError`` when the server has not answered in time."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    start = loop.time()
    expired = False
    handles: list[asyncio.TimerHandle] = []

    def fire(due: float) -> None:
        nonlocal expired
        now = loop.time()
        if now - due > LATE and now - start < cap:
            handles[0] = loop.call_at(now + timeout, fire, now + timeout)  # busy: wait again
            return
        expired = True
        task.cancel()

    handles.append(loop.call_at(start + timeout, fire, start + timeout))
    try:
        return await awaitable
    except asyncio.CancelledError:
        if expired and task.uncancel() == 0:
            raise TimeoutError(f"Redis did not answer within {timeout:g}s") from None
        raise
    finally:
        handles[0].cancel()
