"""Built-in checks measured against the container's limits: memory, CPU, disk, shutdown."""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from renderkit._options import fraction_option, ordered_options
from renderkit.health._result import CheckResult, ShutdownState

if TYPE_CHECKING:
    from renderkit.platform import Platform

__all__ = ["cpu_check", "disk_check", "memory_check", "redis_check", "shutdown_check"]


def _percent(part: float, whole: float) -> float:
    return round(part / whole * 100.0, 1) if whole > 0 else 0.0


def _thresholds(warn: float, fail: float, what: str) -> tuple[float, float]:
    """``warn`` and ``fail`` as fractions in (0, 1], ``warn`` not above ``fail``."""
    warn = fraction_option(warn, f"{what}(warn)")
    fail = fraction_option(fail, f"{what}(fail)")
    ordered_options(what, "warn", warn, "fail", fail)
    return warn, fail


def _graded(
    ratio: float, warn: float, fail: float, message: str, details: dict[str, Any]
) -> CheckResult:
    """Unhealthy from ``fail``, degraded from ``warn`` (both saying ``message``), else healthy."""
    if ratio >= fail:
        return CheckResult.unhealthy(message, **details)
    if ratio >= warn:
        return CheckResult.degraded(message, **details)
    return CheckResult.healthy(**details)


def memory_check(
    *,
    warn: float = 0.80,
    fail: float = 0.95,
    limit: int | None = None,
    platform: Platform | None = None,
) -> Callable[[], CheckResult]:
    """A check comparing this process's RSS with the container's memory limit.

    ``limit`` in bytes defaults to ``platform.memory_limit`` (cgroup-aware, from
    ``renderkit.platform.detect()``). Degraded at ``warn``, unhealthy at ``fail``.
    """
    warn, fail = _thresholds(warn, fail, "memory_check")
    state: dict[str, Any] = {}

    def check() -> CheckResult:
        import psutil

        if "limit" not in state:
            found = limit
            if found is None:
                from renderkit.platform import detect

                found = (platform or detect()).memory_limit
            state["limit"] = found
            state["process"] = psutil.Process()
        rss = int(state["process"].memory_info().rss)
        cap = state["limit"]
        if not cap:
            return CheckResult.healthy("memory limit unknown", rss=rss)
        ratio = rss / cap
        details = {"usage": _percent(rss, cap), "rss": rss, "limit": cap}
        return _graded(ratio, warn, fail, f"RSS at {ratio:.0%} of the memory limit", details)

    return check


def cpu_check(*, warn: float = 0.90, platform: Platform | None = None) -> Callable[[], CheckResult]:
    """A check reporting this process's CPU use as a share of the container's CPU limit.

    Degraded above ``warn`` (busy, not broken: CPU never makes the report unhealthy). The
    first call measures from the moment the check was created. Calls closer together than
    one second reuse the last figure: CPU time advances in scheduler ticks, so a window of a
    few milliseconds would report thousands of percent.
    """
    warn = fraction_option(warn, "cpu_check(warn)")
    state: dict[str, Any] = {}

    def sample() -> tuple[float, float]:
        import psutil

        process = state.get("process")
        if process is None:
            process = state["process"] = psutil.Process()
        times = process.cpu_times()
        return float(times.user + times.system), time.monotonic()

    state["last"] = sample()

    def check() -> CheckResult:
        if "cpus" not in state:
            from renderkit.platform import detect

            state["cpus"] = (platform or detect()).cpu_limit or float(os.cpu_count() or 1)
        cpu, now = sample()
        last_cpu, last_now = state["last"]
        window = now - last_now
        if window >= _CPU_MIN_WINDOW or "share" not in state:
            # Never divide by less than the minimum window: a short first window then
            # under-reports instead of inflating the figure.
            state["share"] = (cpu - last_cpu) / max(window, _CPU_MIN_WINDOW) / state["cpus"]
            if window >= _CPU_MIN_WINDOW:
                state["last"] = (cpu, now)
        share = float(state["share"])
        details = {"usage": round(share * 100.0, 1), "cpus": state["cpus"]}
        if share >= warn:
            return CheckResult.degraded(f"CPU at {share:.0%} of the limit", **details)
        return CheckResult.healthy(**details)

    return check


_CPU_MIN_WINDOW = 1.0


def disk_check(
    path: str = "/", *, warn: float = 0.90, fail: float = 0.98
) -> Callable[[], CheckResult]:
    """A check on free space of the filesystem holding ``path`` (degraded at ``warn`` used,
    unhealthy at ``fail``)."""
    warn, fail = _thresholds(warn, fail, "disk_check")

    def check() -> CheckResult:
        import psutil

        usage = psutil.disk_usage(path)
        ratio = usage.used / usage.total if usage.total else 0.0
        details: dict[str, Any] = {
            "usage": _percent(usage.used, usage.total),
            "free": int(usage.free),
        }
        return _graded(ratio, warn, fail, f"disk {ratio:.0%} full", details)

    return check


def shutdown_check(state: ShutdownState) -> Callable[[], Awaitable[CheckResult]]:
    """A check that turns unhealthy once ``state.is_shutting_down`` (a ShutdownCoordinator)."""

    async def check() -> CheckResult:
        if state.is_shutting_down:
            return CheckResult.unhealthy("shutting down")
        return CheckResult.healthy()

    return check


def _redis_memory(info: Any, warn: float) -> CheckResult:
    """``used`` / ``peak`` / ``maxmemory`` from ``INFO memory``; degraded near maxmemory."""
    info = info if isinstance(info, dict) else {}
    details: dict[str, Any] = {}
    for key, name in (
        ("used_memory", "memory_used"),
        ("used_memory_peak", "memory_peak"),
        ("maxmemory", "memory_max"),
    ):
        value = info.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            details[name] = value
    policy = info.get("maxmemory_policy")
    if isinstance(policy, str | bytes):
        details["eviction_policy"] = policy.decode() if isinstance(policy, bytes) else policy
    used, cap = details.get("memory_used"), details.get("memory_max")
    if isinstance(used, int) and cap:
        details["usage"] = _percent(used, cap)
        if used / cap >= warn:
            return CheckResult.degraded(f"Redis memory at {used / cap:.0%} of maxmemory", **details)
    return CheckResult.healthy(**details)


def redis_check(client: Any, *, warn: float = 0.90) -> Callable[[], Any]:
    """A check that PINGs a redis-py client (sync or asyncio) and reports its memory.

    Details: ``memory_used`` and ``memory_peak`` (bytes, from ``INFO memory``), ``memory_max``
    and ``usage`` (percent) when ``maxmemory`` is set, and the eviction policy; degraded at
    ``warn`` of ``maxmemory``. A failing PING raises, so the check fails with the error (its
    URL password masked). ``health.add("redis", redis_check(client), critical=False)``.
    """
    warn = fraction_option(warn, "redis_check(warn)")
    if not callable(getattr(client, "ping", None)) or not callable(getattr(client, "info", None)):
        raise TypeError(
            f"redis_check(client=...): needs a redis-py client with ping() and info(), got "
            f"{type(client).__name__}"
        )
    execute = getattr(client, "execute_command", None)
    if inspect.iscoroutinefunction(client.ping) or inspect.iscoroutinefunction(execute):

        async def check_async() -> CheckResult:
            await client.ping()
            return _redis_memory(await client.info("memory"), warn)

        return check_async

    def check() -> CheckResult:
        client.ping()
        return _redis_memory(client.info("memory"), warn)

    return check
