"""Tests for renderkit.health.EventLoopMonitor: event-loop lag as a restart-worthy check."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from renderkit.health import INSTANCE_HEALTH_PATH, EventLoopMonitor, Health
from renderkit.platform import Platform

# Timing rules for this file: waits are bounded, lag is asserted against generous lower bounds
# only (a loaded CI box makes lag larger, never smaller), and "stays healthy" uses a warn
# threshold far above any scheduling noise.
BLOCK = 0.6


def scheduled_timers(loop: asyncio.AbstractEventLoop) -> int:
    """Timer handles pending on a CPython asyncio loop (its private heap)."""
    return sum(1 for handle in getattr(loop, "_scheduled", []) if not handle.cancelled())


def is_running(monitor: EventLoopMonitor) -> bool:
    # A call, not the property: mypy would narrow the property and call later asserts dead.
    return monitor.running


async def wait_for_ticks(monitor: EventLoopMonitor, ticks: int, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while monitor.stats()["ticks"] < ticks:
        assert time.monotonic() < deadline, f"no {ticks} ticks within {limit} s"
        await asyncio.sleep(0.01)


def blocking_app(health: Health, **options: Any) -> Starlette:
    async def block(request: Request) -> PlainTextResponse:
        time.sleep(BLOCK)  # the bug being detected: sync I/O inside an async handler
        return PlainTextResponse("done")

    return Starlette(routes=[Route("/block", block), *health.routes()], **options)


def client_for(app: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_nothing_runs_before_start() -> None:
    """Constructing a monitor (or registering its check) starts no thread, task or timer."""
    loop = asyncio.get_running_loop()
    threads, tasks, timers = threading.active_count(), asyncio.all_tasks(), scheduled_timers(loop)
    monitor = EventLoopMonitor(interval=0.05)
    health = Health(cache_ttl=0)
    health.add_system_checks(memory=False, cpu=False, disk=False, event_loop=monitor)
    assert not is_running(monitor)
    assert threading.active_count() == threads
    assert asyncio.all_tasks() == tasks
    assert scheduled_timers(loop) == timers
    assert monitor.stats()["ticks"] == 0 and monitor.lag() == {"last": 0, "max": 0, "p95": 0}
    monitor.start()
    assert is_running(monitor) and scheduled_timers(loop) == timers + 1
    assert threading.active_count() == threads and asyncio.all_tasks() == tasks
    monitor.stop()


async def test_free_loop_reports_healthy() -> None:
    """A loop nobody blocks ticks on time: the check is healthy and reports its samples."""
    monitor = EventLoopMonitor(interval=0.02, warn=1.0, fail=5.0)
    monitor.start()
    try:
        await wait_for_ticks(monitor, 5)
        result = await monitor.health_check()
    finally:
        monitor.stop()
    assert result.status == "healthy", result
    assert result.details["samples"] >= 5
    assert 0 <= result.details["lag_max_ms"] < 1000.0  # under warn, by the status above


async def test_blocked_loop_reports_degraded_with_measured_lag() -> None:
    """A handler that blocks the loop with time.sleep(0.6) turns the check degraded."""
    monitor = EventLoopMonitor(interval=0.05, warn=0.1, fail=30.0)
    health = Health(cache_ttl=0)
    health.add_system_checks(memory=False, cpu=False, disk=False, event_loop=monitor)
    monitor.start()
    try:
        async with client_for(blocking_app(health)) as client:
            await wait_for_ticks(monitor, 1)
            assert (await client.get("/block")).text == "done"
            await wait_for_ticks(monitor, monitor.stats()["ticks"] + 1)
            response = await client.get("/health")  # loopback: detailed report
    finally:
        monitor.stop()
    assert response.status_code == 200
    check = response.json()["checks"]["event_loop"]
    assert check["status"] == "degraded"
    assert "event loop sluggish" in check["message"]
    # The tick due during the block ran at least BLOCK - interval late; be generous.
    assert check["lag_max_ms"] >= 300.0
    assert monitor.stats()["lag_worst_ever_ms"] >= 300.0


async def test_blocked_past_fail_is_restart_worthy_on_instance_path() -> None:
    """Lag at the fail threshold fails /health/instance (503) after start-up, like memory."""
    monitor = EventLoopMonitor(interval=0.05, warn=0.05, fail=0.3)
    health = Health(cache_ttl=0)
    health.add("database", lambda: True, critical=True)
    health.add_system_checks(memory=False, cpu=False, disk=False, event_loop=monitor)
    assert health.loop_monitor is monitor
    monitor.start()
    try:
        async with client_for(blocking_app(health)) as client:
            assert (await client.get(INSTANCE_HEALTH_PATH)).status_code == 200
            assert health.started
            await client.get("/block")
            await wait_for_ticks(monitor, monitor.stats()["ticks"] + 1)
            response = await client.get(INSTANCE_HEALTH_PATH)
            report = await health.run()
    finally:
        monitor.stop()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["event_loop"]["status"] == "unhealthy"
    assert "event loop blocked" in body["checks"]["event_loop"]["message"]
    assert "event_loop" in report.restart and "event_loop" in report.critical


async def test_dependency_outage_stays_200_on_instance_path_while_loop_is_free() -> None:
    """Contrast: a shared dependency failing after start-up reads degraded with 200."""
    monitor = EventLoopMonitor(interval=0.02, warn=1.0, fail=5.0)
    health = Health(cache_ttl=0)
    state = {"db": True}
    health.add("database", lambda: state["db"], critical=True)
    health.add_system_checks(memory=False, cpu=False, disk=False, event_loop=monitor)
    try:
        async with client_for(blocking_app(health)) as client:
            assert (await client.get(INSTANCE_HEALTH_PATH)).status_code == 200
            state["db"] = False
            response = await client.get(INSTANCE_HEALTH_PATH)
            assert (await client.get("/health")).status_code == 503
    finally:
        monitor.stop()
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"


async def test_first_health_run_starts_the_monitor_lazily() -> None:
    """add_system_checks(event_loop=True) starts watching on the first run, on that loop."""
    health = Health(cache_ttl=0)
    health.add_system_checks(
        memory=False, cpu=False, disk=False, event_loop=True, platform=Platform()
    )
    monitor = health.loop_monitor
    assert monitor is not None and not is_running(monitor)
    report = await health.run()
    try:
        assert is_running(monitor)
        assert report.checks["event_loop"].status == "healthy"
        assert report.checks["event_loop"].message == "measuring: no sample yet"
        await wait_for_ticks(monitor, 1)
    finally:
        monitor.stop()
    assert not is_running(monitor)


async def test_lifespan_starts_and_stops_cleanly() -> None:
    """monitor.lifespan starts the tick at start-up and leaves nothing pending at shutdown."""
    loop = asyncio.get_running_loop()
    timers, tasks = scheduled_timers(loop), asyncio.all_tasks()
    monitor = EventLoopMonitor(interval=0.02)
    async with monitor.lifespan(None):
        assert is_running(monitor)
        await wait_for_ticks(monitor, 2)
    assert not is_running(monitor)
    assert scheduled_timers(loop) == timers
    assert asyncio.all_tasks() == tasks
    ticks = monitor.stats()["ticks"]
    await asyncio.sleep(0.1)
    assert monitor.stats()["ticks"] == ticks  # no tick after stop
    monitor.stop()  # twice is fine
    assert monitor.stats()["samples"] >= 2  # samples outlive stop, for stats()


async def test_app_lifespan_wiring(renderkit_client: Any) -> None:
    """Starlette(lifespan=monitor.lifespan) runs the monitor for the app's lifetime."""
    monitor = EventLoopMonitor(interval=0.02, warn=1.0, fail=5.0)
    health = Health(cache_ttl=0)
    health.add_system_checks(memory=False, cpu=False, disk=False, event_loop=monitor)
    client = await renderkit_client(blocking_app(health, lifespan=monitor.lifespan))
    assert is_running(monitor)
    await wait_for_ticks(monitor, 2)
    body = (await client.get("/health")).json()
    assert body["checks"]["event_loop"]["status"] == "healthy"
    assert body["checks"]["event_loop"]["samples"] >= 2
    await renderkit_client.aclose()
    assert not is_running(monitor)


def test_start_without_a_loop_says_what_to_do() -> None:
    """start() outside a running loop raises a message naming the lifespan."""
    monitor = EventLoopMonitor()
    with pytest.raises(RuntimeError, match="lifespan"):
        monitor.start()
    assert not is_running(monitor)


def test_stop_from_another_thread_cancels_on_the_loop() -> None:
    """stop() from a thread other than the loop's hands the cancel to the loop (thread-safe)."""
    monitor = EventLoopMonitor(interval=0.02)
    started = threading.Event()
    ticks_after: list[int] = []

    async def main() -> None:
        monitor.start()
        started.set()
        await wait_for_ticks(monitor, 2)
        stopper = threading.Thread(target=monitor.stop)
        stopper.start()
        await asyncio.to_thread(stopper.join, 5.0)
        ticks = monitor.stats()["ticks"]
        await asyncio.sleep(0.1)
        ticks_after.append(monitor.stats()["ticks"] - ticks)

    asyncio.run(main())
    assert started.is_set() and not is_running(monitor)
    assert ticks_after == [0]


def test_blocking_wsgi_run_reports_not_applicable() -> None:
    """Under run_sync (WSGI) there is no serving loop: healthy, no monitor left running."""
    health = Health(cache_ttl=0)
    health.add_system_checks(memory=False, cpu=False, disk=False, event_loop=True)
    report = health.run_sync()
    result = report.checks["event_loop"]
    assert result.status == "healthy" and "WSGI" in result.message
    assert health.loop_monitor is not None and not is_running(health.loop_monitor)


async def test_restarts_on_a_new_loop_after_the_old_one_closed() -> None:
    """A monitor whose loop closed starts over on the loop running the next check."""
    monitor = EventLoopMonitor(interval=0.02)

    async def tick_once() -> None:
        monitor.start()
        await wait_for_ticks(monitor, 1)

    await asyncio.to_thread(asyncio.run, tick_once())
    assert not is_running(monitor)  # that loop is closed
    result = await monitor.health_check()
    try:
        assert is_running(monitor)
        assert result.details["samples"] == 0  # the closed loop's samples were dropped
    finally:
        monitor.stop()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"interval": 0}, r"interval\)=0"),
        ({"interval": -1.0}, "seconds > 0"),
        ({"warn": True}, "seconds > 0"),
        ({"fail": "2"}, "seconds > 0"),
        ({"warn": 3.0, "fail": 2.0}, "warn must not exceed fail"),
        ({"interval": 5.0, "window": 1.0}, "at least one interval"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, Any], match: str) -> None:
    """Nonsense intervals and thresholds fail at construction with the option named."""
    with pytest.raises(ValueError, match=match):
        EventLoopMonitor(**options)


def test_add_system_checks_rejects_garbage_event_loop() -> None:
    """event_loop= takes True, False or a monitor; anything else names what to pass."""
    health = Health()
    with pytest.raises(TypeError, match="EventLoopMonitor"):
        health.add_system_checks(memory=False, cpu=False, disk=False, event_loop="yes")  # type: ignore[arg-type]
    assert health.names == [] and health.loop_monitor is None


def test_window_is_bounded() -> None:
    """The sample window holds window / interval samples, never more."""
    monitor = EventLoopMonitor(interval=0.5, window=10.0)
    assert monitor._samples.maxlen == 20


def test_p95_and_max_of_the_window() -> None:
    """lag() reports last, max and nearest-rank p95 over the kept samples."""
    monitor = EventLoopMonitor(interval=0.1, window=2.0)
    monitor._samples.extend([0.01] * 18 + [0.5, 0.2])
    lag = monitor.lag()
    assert lag == {"last": 0.2, "max": 0.5, "p95": 0.2}


def test_start_on_a_loop_not_running_yet_counts_no_wait_as_lag() -> None:
    """start(loop) before the loop runs: the wait until it runs is not a lag sample."""
    monitor = EventLoopMonitor(interval=0.02)
    loop = asyncio.new_event_loop()
    try:
        monitor.start(loop)
        assert is_running(monitor) and monitor.lag()["max"] == 0.0
        time.sleep(BLOCK)  # the loop is not running: nothing is late yet
        loop.run_until_complete(wait_for_ticks(monitor, 1))
        first = monitor.stats()["ticks"]
        monitor.stop()
    finally:
        loop.close()
    assert first >= 1
    # Counting the wait would make this at least BLOCK - interval (580 ms); a tick that merely
    # ran late on a loaded machine stays far below half of it.
    assert monitor.lag()["max"] < BLOCK / 2
    assert not is_running(monitor)


def test_stop_before_a_foreign_loop_runs_schedules_nothing() -> None:
    """start(loop) then stop() before the loop runs: no tick ever fires."""
    monitor = EventLoopMonitor(interval=0.01)
    loop = asyncio.new_event_loop()
    try:
        monitor.start(loop)
        monitor.stop()
        loop.run_until_complete(asyncio.sleep(0.1))
    finally:
        loop.close()
    assert monitor.stats()["ticks"] == 0 and not is_running(monitor)


def test_start_and_stop_from_another_thread_leave_no_tick() -> None:
    """start(loop) and stop() from a thread while the loop is busy: the loop ticks never."""
    monitor = EventLoopMonitor(interval=0.01)
    loop = asyncio.new_event_loop()
    busy, release = threading.Event(), threading.Event()

    def hold() -> None:
        busy.set()
        release.wait(5.0)  # keeps the loop from running the monitor's first callback

    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        loop.call_soon_threadsafe(hold)
        assert busy.wait(5.0)
        monitor.start(loop)
        monitor.stop()
        release.set()
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.1), loop).result(5.0)
    finally:
        release.set()
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5.0)
        loop.close()
    assert monitor.stats()["ticks"] == 0 and not is_running(monitor)
