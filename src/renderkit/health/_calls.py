"""Calling user code safely: sync or async, in a daemon thread.

Shared by the health runner (checks) and :mod:`renderkit.shutdown` (cleanup hooks), which both
take any callable from the app and must survive one that blocks, hangs or raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from renderkit._options import seconds_option

__all__ = ["DaemonPool", "is_async_callable", "start_in_thread"]


def is_async_callable(fn: object) -> bool:
    """True for a coroutine function or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


class DaemonPool:
    """A bounded pool of reusable daemon threads, started on first use.

    Not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at interpreter exit,
    so one check hung forever would keep the process from exiting. Here a hung job holds one
    worker; at most ``max_workers`` run at once and later jobs wait in the queue. A worker idle
    for ``idle`` seconds exits. After a fork (gunicorn ``--preload``) the child starts afresh.
    """

    def __init__(self, max_workers: int = 32, *, name: str = "renderkit", idle: float = 60.0):
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"DaemonPool(max_workers={max_workers!r}): use an int >= 1")
        self.max_workers = max_workers
        self.name = name
        self.idle = seconds_option(idle, "DaemonPool(idle)")
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._workers = 0
        self._waiting = 0  # workers blocked on the queue right now
        self._pending = 0  # jobs queued and not taken yet
        self._started = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; start a worker when none is idle and the bound allows one."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's workers do not exist here
                self._reset()
            self._queue.put(job)
            self._pending += 1
            # Jobs nobody waits for yet need a new worker, within the bound. Both counts move
            # together (under the lock) when a worker takes a job, so the difference is exact.
            if self._pending <= self._waiting or self._workers >= self.max_workers:
                return
            self._workers += 1
            self._started += 1
        thread = threading.Thread(
            target=self._work, name=f"{self.name}-{self._started}", daemon=True
        )
        thread.start()

    def stats(self) -> dict[str, int]:
        """Workers alive, idle ones, jobs waiting, and threads started since creation."""
        return {
            "workers": self._workers,
            "idle": self._waiting,
            "queued": self._pending,
            "started": self._started,
        }

    def _work(self) -> None:
        jobs = self._queue
        while True:
            with self._lock:
                if jobs is not self._queue:  # forked since: this thread is the parent's
                    return
                self._waiting += 1
            try:
                job = jobs.get(timeout=self.idle)
            except queue.Empty:
                with self._lock:
                    self._waiting -= 1
                    if jobs.empty():  # puts happen under the lock: nothing can be missed
                        self._workers -= 1
                        return
                continue
            with self._lock:
                self._waiting -= 1
                self._pending -= 1
            with contextlib.suppress(BaseException):  # a job reports its own outcome
                job()


def start_in_thread(
    fn: Callable[[], Any],
    *,
    name: str,
    pool: DaemonPool | None = None,
    on_done: Callable[[], None] | None = None,
) -> asyncio.Future[Any]:
    """Call ``fn`` in a worker thread (``pool``, else a new daemon thread) and return a future
    of the running loop that gets its value or exception. ``on_done`` runs in the thread right
    after ``fn`` returns or raises. A loop closed meanwhile is ignored: nobody waits any more."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def work() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = fn()
        except BaseException as exc:  # handed to the awaiting side, never re-raised here
            error = exc
        finally:
            if on_done is not None:
                on_done()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, value, error)

    if pool is not None:
        pool.submit(work)
    else:
        threading.Thread(target=work, name=name, daemon=True).start()
    return future
