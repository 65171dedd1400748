"""A set-once event shared by threads and event loops: the "shutdown began" signal."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

__all__ = ["ShutdownEvent"]


class ShutdownEvent:
    """A set-once event that any thread may set and any event loop (or thread) may await.

    ``await event`` / ``await event.wait()`` in async code, ``event.wait_sync(timeout)`` in a
    thread, ``event.is_set()`` anywhere.
    """

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._lock = threading.RLock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def is_set(self) -> bool:
        """True once shutdown began."""
        return self._flag.is_set()

    def set(self) -> None:
        """Set the event and wake every waiter, on whichever loop it waits."""
        with self._lock:
            if self._flag.is_set():
                return
            self._flag.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody to wake
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> bool:
        """Wait until the event is set; returns True."""
        if self._flag.is_set():
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiters.append((loop, future))
        # set() may have run between the check and the append (a signal handler): look again.
        if self._flag.is_set():
            _resolve(future)
        try:
            await future
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, future))
        return True

    def wait_sync(self, timeout: float | None = None) -> bool:
        """Block this thread until the event is set or ``timeout`` passes; True if set."""
        return self._flag.wait(timeout)

    def __await__(self) -> Any:
        return self.wait().__await__()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
