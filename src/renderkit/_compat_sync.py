"""The thread primitives generated sync twins use, under the names of ``_compat_async``."""

from __future__ import annotations

import threading
import time
from typing import TypeVar

__all__ = ["Event", "Lock", "sleep", "wait_for"]

T = TypeVar("T")

Lock = threading.Lock
Event = threading.Event
sleep = time.sleep


def wait_for(value: T, timeout: float | None) -> T:
    """The sync side of ``_compat_async.wait_for``: the call already ran, bounded by itself."""
    del timeout
    return value
