"""The asyncio primitives twin sources use; ``_compat_sync`` has the same names for threads.

An async source (see ``tools/twins.py``) imports ``from renderkit import _compat_async as
compat`` and the generated sync twin gets ``_compat_sync`` instead, so the few places where
asyncio and threads really differ are written once here, not in every twin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["Event", "Lock", "sleep", "wait_for"]

T = TypeVar("T")

Lock = asyncio.Lock
Event = asyncio.Event
sleep = asyncio.sleep


async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:
    """Await with a deadline; the sync twin simply calls (its callee bounds its own time)."""
    return await asyncio.wait_for(awaitable, timeout)
