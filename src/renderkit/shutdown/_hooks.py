"""Cleanup hooks: what one is, how it ran, and the summary of a whole shutdown."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from renderkit.config import redact
from renderkit.health._calls import start_in_thread

__all__ = ["CleanupHook", "Hook", "HookOutcome", "ShutdownSummary", "run_hook"]

Hook = Callable[[], Any]

logger = logging.getLogger("renderkit.shutdown")


@dataclass(frozen=True, slots=True)
class HookOutcome:
    """How one cleanup hook went: ``ok``, ``error``, ``timeout`` or ``skipped`` (no time left)."""

    name: str
    status: Literal["ok", "error", "timeout", "skipped"]
    seconds: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ShutdownSummary:
    """What a shutdown did: why, how long, what it drained, and each hook's outcome."""

    reason: str
    seconds: float
    drained: bool
    cancelled_requests: int
    hooks: tuple[HookOutcome, ...] = ()

    def describe(self) -> str:
        """One log line: reason, duration, drain result and hook outcomes."""
        hooks = ", ".join(
            f"{h.name} {h.status} {h.seconds:.2f}s" + (f" ({h.error})" if h.error else "")
            for h in self.hooks
        )
        drain = (
            "all requests finished"
            if self.drained
            else f"{self.cancelled_requests} request(s) cancelled at the drain deadline"
        )
        return (
            f"shutdown ({self.reason}) finished in {self.seconds:.2f}s: {drain}; "
            f"hooks: {hooks or 'none'}"
        )


@dataclass
class CleanupHook:
    """One registered cleanup hook (see :meth:`ShutdownCoordinator.on_shutdown`)."""

    fn: Hook
    name: str
    timeout: float
    is_async: bool = field(default=False)


async def _call_async(fn: Hook) -> None:
    await fn()


async def _call_in_thread(fn: Hook, name: str) -> None:
    # A new daemon thread, not a pool: a hook runs once, and one hung must not block exit.
    value = await start_in_thread(fn, name=f"renderkit-shutdown-{name}")
    if inspect.isawaitable(value):
        await value


async def run_hook(
    hook: CleanupHook, deadline: float, clock: Callable[[], float] = time.monotonic
) -> HookOutcome:
    """Run one hook within ``min(hook.timeout, deadline - now)``; never raises for the hook."""
    remaining = deadline - clock()
    if remaining <= 0:
        logger.error("shutdown hook %r skipped: the grace period is spent", hook.name)
        return HookOutcome(hook.name, "skipped", 0.0, "grace period spent")
    limit = min(hook.timeout, remaining)
    start = clock()
    try:
        if hook.is_async:
            await asyncio.wait_for(_call_async(hook.fn), limit)
        else:
            await asyncio.wait_for(_call_in_thread(hook.fn, hook.name), limit)
    except TimeoutError:
        logger.error("shutdown hook %r timed out after %.1fs; skipped", hook.name, limit)
        return HookOutcome(hook.name, "timeout", clock() - start, f"after {limit:g}s")
    except Exception as exc:
        text = redact(f"{type(exc).__name__}: {exc}")
        logger.error("shutdown hook %r failed: %s", hook.name, text, exc_info=exc)
        return HookOutcome(hook.name, "error", clock() - start, text[:200])
    return HookOutcome(hook.name, "ok", clock() - start)
