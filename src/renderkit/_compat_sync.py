"""The thread primitives generated sync twins use, under the names of ``_compat_async``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Event", "Lock", "join_task", "sleep", "start_task", "wait_event", "wait_for"]

T = TypeVar("T")

Lock = threading.Lock
Event = threading.Event
sleep = time.sleep


def wait_for(value: T, timeout: float | None) -> T:
    """The sync side of ``_compat_async.wait_for``: the call already ran, bounded by itself."""
    del timeout
    return value


def start_task(fn: Callable[[], None], name: str) -> threading.Thread:
    """The sync side of ``_compat_async.start_task``: a daemon thread running ``fn()``."""
    thread = threading.Thread(target=fn, name=name, daemon=True)
    thread.start()
    return thread


def join_task(task: threading.Thread, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for a background thread to end (it cannot be cancelled)."""
    task.join(timeout)


def wait_event(event: threading.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True when it was set."""
    return event.wait(timeout)
