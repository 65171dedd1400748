"""The asyncio primitives twin sources use; ``_compat_sync`` has the same names for threads.

An async source (see ``tools/twins.py``) imports ``from renderkit import _compat_async as
compat`` and the generated sync twin gets ``_compat_sync`` instead, so the few places where
asyncio and threads really differ are written once here, not in every twin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = [
    "Event",
    "Lock",
    "join_task",
    "run_with_deadline",
    "sleep",
    "start_task",
    "wait_event",
    "wait_for",
]

T = TypeVar("T")

Lock = asyncio.Lock
Event = asyncio.Event
sleep = asyncio.sleep


async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:
    """Await with a deadline; the sync twin simply calls (its callee bounds its own time)."""
    return await asyncio.wait_for(awaitable, timeout)


def start_task(fn: Callable[[], Awaitable[None]], name: str) -> asyncio.Task[None]:
    """Run ``fn()`` in the background: a task on the running loop (a daemon thread in sync)."""
    return asyncio.get_running_loop().create_task(fn(), name=name)  # type: ignore[arg-type]


async def join_task(task: asyncio.Task[None], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for a background task to end; cancel it if it does not."""
    _, pending = await asyncio.wait({task}, timeout=timeout)
    for still in pending:
        still.cancel()


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True when it was set."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


_abandoned: set[asyncio.Task[Any]] = set()  # cancelled at a deadline, still winding down


async def run_with_deadline(fn: Callable[[], Awaitable[T]], timeout: float) -> T:
    """Await ``fn()`` for at most ``timeout`` seconds, else raise ``TimeoutError``.

    Unlike ``asyncio.wait_for`` this does not wait for the cancelled call to finish: a client
    cancelling a query on a frozen server can itself wait for that server (psycopg gives it
    10 s), and the deadline is the caller's. The sync twin calls ``fn`` in a worker thread and
    stops waiting at the deadline the same way.
    """
    task = asyncio.ensure_future(fn())
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except BaseException:  # the caller was cancelled: so is the call
        task.cancel()
        raise
    if not done:
        task.cancel()
        _abandoned.add(task)
        task.add_done_callback(_forget)
        raise TimeoutError(f"no answer within {timeout:g}s")
    return task.result()


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned call's error is not news
