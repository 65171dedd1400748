"""The thread primitives generated sync twins use, under the names of ``_compat_async``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from renderkit import _compat_async

__all__ = _compat_async.__all__  # the same names: a generated twin imports each of them

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


def run_with_deadline(fn: Callable[[], T], timeout: float) -> T:
    """Call ``fn()`` in a daemon thread and wait at most ``timeout`` seconds for it.

    Past the deadline ``TimeoutError`` is raised and the thread is left to finish on its own
    (a blocking socket call cannot be cancelled): use it where a stuck call must not hold the
    caller, such as a health probe.
    """
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller below
            outcome.append((False, exc))

    worker = threading.Thread(target=call, name="renderkit-deadline", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise TimeoutError(f"no answer within {timeout:g}s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]
