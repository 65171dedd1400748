"""Running one check: timeout, sync checks on a reusable daemon pool, coercion, hysteresis.

Everything a check says passes through :func:`scrub` before anyone sees it: a driver's
exception text often holds the connection URL, password included.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any

from renderkit._redact import first_line
from renderkit.config import redact
from renderkit.health._calls import DaemonPool, start_in_thread
from renderkit.health._result import Check, CheckResult, Status, coerce

__all__ = ["CheckSpec", "describe", "run_check", "scrub", "scrub_value", "settle"]

MAX_MESSAGE = 300

logger = logging.getLogger("renderkit.health")


@dataclass
class CheckSpec:
    """One registered check and its policy (see :meth:`Health.add`)."""

    name: str
    check: Check
    critical: bool
    timeout: float
    restart: bool
    failure_threshold: int
    component_type: str
    is_async: bool
    # Hysteresis and logging state: the status last reported and the raw streak behind it.
    reported: Status | None = None
    failures_in_a_row: int = 0
    # A sync check still running in its thread (hung): not started again until it returns.
    running: threading.Event | None = None


class _StillRunning(Exception):
    """A sync check's previous invocation has not returned yet."""


def describe(exc: BaseException) -> str:
    """``Type: first line of the message``, masked and cut to a readable length."""
    text = first_line(exc)
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return redact(message)[:MAX_MESSAGE]


def scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: scrub_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(item) for item in value]
    return value


def scrub(result: CheckResult) -> CheckResult:
    """Mask URL passwords in a result's message and string details (nested too)."""
    message = redact(result.message) if result.message else result.message
    details = scrub_value(result.details) if result.details else result.details
    if message == result.message and details == result.details:
        return result
    return replace(result, message=message, details=details)


async def run_check(spec: CheckSpec, pool: DaemonPool) -> CheckResult:
    """Run ``spec`` once under its timeout; never raises because of the check."""
    start = time.perf_counter()
    try:
        if spec.is_async:
            value = await asyncio.wait_for(spec.check(), spec.timeout)
        else:
            value = await _run_in_pool(spec, pool, start)
    except TimeoutError:
        result = CheckResult.unhealthy(f"timeout after {spec.timeout:g} s")
    except _StillRunning:
        result = CheckResult.unhealthy(
            f"previous run still in progress (hung for more than {spec.timeout:g} s)"
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        result = CheckResult.unhealthy(describe(exc))
    else:
        result = scrub(coerce(value))
    return replace(result, latency_ms=(time.perf_counter() - start) * 1000.0)


async def _run_in_pool(spec: CheckSpec, pool: DaemonPool, start: float) -> Any:
    if spec.running is not None and not spec.running.is_set():
        raise _StillRunning
    done = threading.Event()
    spec.running = done
    future = start_in_thread(
        spec.check, name=f"renderkit-health-{spec.name}", pool=pool, on_done=done.set
    )
    value = await asyncio.wait_for(future, spec.timeout)
    if inspect.isawaitable(value):
        remaining = max(spec.timeout - (time.perf_counter() - start), 0.001)
        value = await asyncio.wait_for(_await(value), remaining)
    return value


async def _await(value: Awaitable[Any]) -> Any:
    return await value


def settle(spec: CheckSpec, raw: CheckResult) -> CheckResult:
    """Apply hysteresis and log a status change once."""
    result = raw
    if raw.status == "healthy":
        spec.failures_in_a_row = 0
    else:
        spec.failures_in_a_row += 1
        if spec.failures_in_a_row < spec.failure_threshold and spec.reported in (None, "healthy"):
            result = CheckResult(
                "healthy",
                f"{spec.failures_in_a_row} failure(s) in a row, reported after "
                f"{spec.failure_threshold}: {raw.message}".rstrip(": "),
                {**raw.details, "observed_status": raw.status},
                raw.latency_ms,
            )
    previous, spec.reported = spec.reported, result.status
    if previous is not None and previous != result.status:
        log = logger.info if result.status == "healthy" else logger.warning
        log(
            "health check %r is now %s (was %s)%s",
            spec.name,
            result.status,
            previous,
            f": {result.message}" if result.message else "",
        )
    elif previous is None and result.status != "healthy":
        logger.warning("health check %r is %s: %s", spec.name, result.status, result.message or "-")
    return result
