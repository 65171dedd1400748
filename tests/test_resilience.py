"""Tests for renderkit.resilience: retry presets, Supervisor and MemoryWatchdog."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from renderkit.platform import Platform
from renderkit.resilience import (
    MemoryWatchdog,
    Supervisor,
    async_retrying,
    full_jitter,
    http_retry,
    retry,
    retry_after_seconds,
    retrying,
)

# --- retry ----------------------------------------------------------------------------------------


def test_full_jitter_caps_double_to_sixteen() -> None:
    """Attempt n waits at most 1, 2, 4, 8, 16, 16 s; never negative; spread out."""
    random.seed(1)
    for attempt, cap in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (9, 16)]:
        samples = [full_jitter(attempt) for _ in range(300)]
        assert all(0 <= s <= cap for s in samples)
        assert max(samples) > cap * 0.8 and min(samples) < cap * 0.2


def test_retry_sync_retries_transient_and_reraises_original() -> None:
    """Transient errors are retried up to `attempts`; the last original error is re-raised."""
    sleeps: list[float] = []
    calls = 0

    @retry(attempts=3, sleep=sleeps.append)
    def flaky() -> str:
        nonlocal calls
        calls += 1
        raise ConnectionResetError(f"reset {calls}")

    with pytest.raises(ConnectionResetError, match="reset 3"):
        flaky()
    assert calls == 3 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1 and 0 <= sleeps[1] <= 2


def test_retry_does_not_retry_other_errors() -> None:
    """A non-transient error (ValueError) fails at once."""
    calls = 0

    @retry(sleep=lambda s: None)
    def bad() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        bad()
    assert calls == 1


async def test_retry_async_succeeds_after_failures() -> None:
    """The same decorator drives async functions."""
    calls = 0
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    @retry(attempts=5, sleep=fake_sleep)
    async def connect() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TimeoutError("slow")
        return "ok"

    assert await connect() == "ok"
    assert calls == 3 and len(slept) == 2


def test_retrying_and_async_retrying_objects() -> None:
    """retrying() is a bounded tenacity.Retrying with reraise; async_retrying its twin."""
    attempts = 0
    with pytest.raises(ConnectionError):
        for attempt in retrying(attempts=2, sleep=lambda s: None):
            with attempt:
                attempts += 1
                raise ConnectionError("down")
    assert attempts == 2
    assert async_retrying().reraise is True


def test_retry_rejects_unbounded_or_bad_settings() -> None:
    """attempts < 1, negative delays and a non-positive deadline are refused."""
    with pytest.raises(ValueError, match="bounded"):
        retry(attempts=0)
    with pytest.raises(ValueError, match="initial"):
        retrying(initial=-1)
    with pytest.raises(ValueError, match="deadline"):
        retrying(deadline=0)


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "7", 7.0),
        (503, "0", 0.0),
        (200, "7", None),
        (429, "-3", None),
        (429, "soon", None),
        (429, "", None),
        (429, "9" * 80, None),
    ],
)
def test_retry_after_seconds_parses_seconds(
    status: int, header: str, expected: float | None
) -> None:
    """Retry-After counts only on 429/503 and only when well-formed."""
    response = httpx.Response(status, headers={"Retry-After": header})
    assert retry_after_seconds(response) == expected


def test_retry_after_seconds_parses_http_date() -> None:
    """An HTTP-date Retry-After gives the seconds until then (never negative)."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = httpx.Response(
        503, headers={"Retry-After": format_datetime(now + timedelta(seconds=30), usegmt=True)}
    )
    past = httpx.Response(
        503, headers={"Retry-After": format_datetime(now - timedelta(seconds=30), usegmt=True)}
    )
    assert retry_after_seconds(later, now=now) == pytest.approx(30.0)
    assert retry_after_seconds(past, now=now) == 0.0
    assert retry_after_seconds(object()) is None


def test_http_retry_honours_retry_after_and_returns_last_response() -> None:
    """429 with Retry-After: 3 waits 3 s; when attempts run out the last response comes back."""
    statuses = iter([429, 503, 200])
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        return httpx.Response(status, headers={"Retry-After": "3"} if status == 429 else {})

    client = httpx.Client(transport=httpx.MockTransport(handler))

    @http_retry(sleep=sleeps.append)
    def fetch() -> httpx.Response:
        return client.get("http://api.test/x")

    assert fetch().status_code == 200
    assert sleeps[0] == 3.0 and 0 <= sleeps[1] <= 2

    @http_retry(attempts=2, sleep=sleeps.append)
    def always_busy() -> httpx.Response:
        return httpx.Response(503)

    assert always_busy().status_code == 503


def test_http_retry_caps_retry_after_and_skips_client_errors() -> None:
    """A huge Retry-After is capped; raise_for_status on a 404 is not retried."""
    sleeps: list[float] = []
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if request.url.path == "/busy":
            return httpx.Response(429, headers={"Retry-After": "3600"})
        return httpx.Response(404)

    client = httpx.Client(transport=httpx.MockTransport(handler))

    @http_retry(attempts=2, max_retry_after=10, sleep=sleeps.append)
    def get(path: str) -> httpx.Response:
        response = client.get(f"http://api.test{path}")
        response.raise_for_status()
        return response

    with pytest.raises(httpx.HTTPStatusError):
        get("/busy")
    assert sleeps == [10]
    calls = 0
    with pytest.raises(httpx.HTTPStatusError):
        get("/missing")
    assert calls == 1


async def test_http_retry_async_transport_errors() -> None:
    """Async httpx transport errors are retried, then re-raised as themselves."""
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused")

    async def no_sleep(seconds: float) -> None:
        return None

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:

        @http_retry(attempts=3, sleep=no_sleep)
        async def fetch() -> httpx.Response:
            return await client.get("http://api.test/")

        with pytest.raises(httpx.ConnectError):
            await fetch()
    assert calls == 3


# --- Supervisor -----------------------------------------------------------------------------------


async def test_supervisor_restarts_failed_task_with_backoff() -> None:
    """A task that raises is restarted; health is degraded while it keeps failing."""
    runs = 0
    healthy = asyncio.Event()

    async def worker() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("queue unreachable")
        healthy.set()
        await asyncio.sleep(30)

    supervisor = Supervisor(stagger=0, initial_backoff=0.01, max_backoff=0.02)
    supervisor.add("consumer", worker)
    await supervisor.start()
    await asyncio.wait_for(healthy.wait(), 2)
    assert runs == 3
    assert supervisor.stats()["consumer"]["restarts"] == 2
    assert supervisor.health_check().status == "healthy"
    await supervisor.stop()
    assert supervisor.state("consumer") == "stopped"


async def test_supervisor_add_after_start_from_a_thread_runs_on_its_loop() -> None:
    """add() after start() from sync code in another thread schedules the task on the loop."""
    import threading

    ran = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def worker() -> None:
        loop.call_soon(ran.set)
        await asyncio.sleep(30)

    supervisor = Supervisor(stagger=0)
    await supervisor.start()
    adder = threading.Thread(target=supervisor.add, args=("late", worker))
    adder.start()
    await asyncio.to_thread(adder.join, 5)
    await asyncio.wait_for(ran.wait(), 5)
    assert supervisor.state("late") == "running"
    await supervisor.stop()
    assert supervisor.state("late") == "stopped"


def test_supervisor_add_after_its_loop_closed_says_what_to_do() -> None:
    """add() after the start() loop closed raises a RuntimeError that names the fix."""

    async def worker() -> None:
        await asyncio.sleep(30)

    supervisor = Supervisor(stagger=0)
    supervisor.add("first", worker)

    async def start_only() -> None:
        await supervisor.start()

    asyncio.run(start_only())
    with pytest.raises(RuntimeError, match=r"call add\(\) before start\(\)"):
        supervisor.add("late", worker)


class _HeldSleeps:
    """Stands in for ``asyncio`` inside the supervisor: each ``sleep`` is recorded with the
    task that asked for it and held until the test releases it (no wall clock involved)."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[float, asyncio.Future[None]]] = {}

    async def sleep(self, delay: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held[task.get_name().removeprefix("renderkit-supervisor-")] = (delay, future)
        await future

    def release(self, name: str) -> None:
        self.held.pop(name)[1].set_result(None)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


async def test_supervisor_staggers_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first task starts at once; the n-th first waits n * `stagger` seconds, and starts
    only when that wait is over (whatever the order the waits end in)."""
    from renderkit.resilience import _supervisor

    sleeps = _HeldSleeps()
    monkeypatch.setattr(_supervisor, "asyncio", sleeps)
    started: list[str] = []
    forever = asyncio.Event()

    def make(name: str) -> Any:
        async def run() -> None:
            started.append(name)
            await forever.wait()

        return run

    supervisor = Supervisor(stagger=0.1)
    for name in ("a", "b", "c"):
        supervisor.add(name, make(name))
    await supervisor.start()
    for _ in range(10):
        await asyncio.sleep(0)
    try:
        assert started == ["a"]
        assert {name: delay for name, (delay, _) in sleeps.held.items()} == pytest.approx(
            {"b": 0.1, "c": 0.2}
        )
        sleeps.release("c")
        for _ in range(10):
            await asyncio.sleep(0)
        assert started == ["a", "c"]  # b still waits for its own delay
        sleeps.release("b")
        for _ in range(10):
            await asyncio.sleep(0)
        assert started == ["a", "c", "b"]
    finally:
        await supervisor.stop()


async def test_supervisor_gives_up_and_reports_critical_unhealthy() -> None:
    """After max_restarts failures in a row a critical task is failed and health unhealthy."""

    async def broken() -> None:
        raise OSError("disk gone")

    supervisor = Supervisor(stagger=0, initial_backoff=0, max_restarts=2)
    supervisor.add("indexer", broken, critical=True)
    supervisor.add("once", _return_at_once, restart="on_failure")
    async with supervisor:
        for _ in range(100):
            if supervisor.state("indexer") == "failed":
                break
            await asyncio.sleep(0.01)
        result = supervisor.health_check()
    assert supervisor.state("indexer") == "failed"
    assert result.status == "unhealthy" and "disk gone" in result.message
    assert supervisor.state("once") == "finished"
    assert supervisor.task_check("indexer")().status == "unhealthy"
    assert supervisor.names == ["indexer", "once"]


async def _return_at_once() -> None:
    return None


async def test_supervisor_always_restarts_a_returning_loop() -> None:
    """restart='always' restarts a task that returns; 'never' leaves a failure failed."""
    runs = 0

    async def tick() -> None:
        nonlocal runs
        runs += 1

    async def fail() -> None:
        raise RuntimeError("x")

    supervisor = Supervisor(stagger=0, initial_backoff=0.001, max_backoff=0.001)
    supervisor.add("tick", tick, restart="always")
    supervisor.add("fail", fail, restart="never")
    await supervisor.start()
    await asyncio.sleep(0.1)
    await supervisor.stop()
    assert runs >= 3
    assert supervisor.state("fail") == "failed"
    assert supervisor.health_check().status == "degraded"


def test_supervisor_rejects_bad_input() -> None:
    """Coroutine objects, duplicates, bad policies and negative times raise clearly."""
    supervisor = Supervisor()
    supervisor.add("a", _return_at_once)
    with pytest.raises(ValueError, match="unique"):
        supervisor.add("a", _return_at_once)
    coroutine = _return_at_once()
    with pytest.raises(TypeError, match="not a coroutine object"):
        supervisor.add("b", coroutine)  # type: ignore[arg-type]
    coroutine.close()
    with pytest.raises(ValueError, match="restart"):
        supervisor.add("c", _return_at_once, restart="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stagger"):
        Supervisor(stagger=-1)
    with pytest.raises(KeyError):
        supervisor.task_check("missing")


# --- MemoryWatchdog -------------------------------------------------------------------------------


def test_watchdog_soft_threshold_runs_handlers_once_per_cooldown() -> None:
    """At the soft threshold handlers run (a raising one is logged); cooldown stops repeats."""
    used = {"bytes": 50}
    trimmed: list[str] = []
    clock = {"now": 0.0}
    watchdog = MemoryWatchdog(
        limit=100, rss=lambda: used["bytes"], cooldown=60, clock=lambda: clock["now"]
    )
    watchdog.on_pressure(lambda: trimmed.append("cache"), name="cache")

    def broken() -> None:
        raise RuntimeError("nope")

    watchdog.on_pressure(broken)
    assert watchdog.sample() == "ok" and trimmed == []
    used["bytes"] = 85
    assert watchdog.sample() == "soft" and trimmed == ["cache"]
    assert watchdog.sample() == "soft" and trimmed == ["cache"]  # cooldown
    clock["now"] = 61
    watchdog.sample()
    assert trimmed == ["cache", "cache"]
    assert watchdog.stats()["handler_errors"] == 2


def test_watchdog_health_follows_thresholds() -> None:
    """Health: healthy below soft, degraded at soft, unhealthy at hard; usage reported."""
    used = {"bytes": 10}
    watchdog = MemoryWatchdog(limit=100, rss=lambda: used["bytes"])
    assert watchdog.health_check().status == "healthy"
    used["bytes"] = 90
    assert watchdog.health_check().status == "degraded"
    used["bytes"] = 96
    result = watchdog.health_check()
    assert result.status == "unhealthy" and result.details["usage"] == 96.0


async def test_watchdog_async_handlers_and_background_run() -> None:
    """asample awaits async handlers; start()/stop() run the sampling loop."""
    hits: list[str] = []

    async def trim() -> None:
        hits.append("async")

    watchdog = MemoryWatchdog(limit=100, rss=lambda: 90, interval=0.01, cooldown=0)
    watchdog.on_pressure(trim)
    watchdog.on_pressure(lambda: hits.append("sync"))
    watchdog.start()
    for _ in range(200):
        if watchdog.stats()["samples"] >= 2:
            break
        await asyncio.sleep(0.01)
    await watchdog.stop()
    assert hits[:2] == ["async", "sync"] and watchdog.stats()["samples"] >= 2


def test_watchdog_uses_platform_limit_and_rejects_bad_input() -> None:
    """The limit comes from the platform; bad thresholds and handlers raise clearly."""
    watchdog = MemoryWatchdog(platform=Platform(memory_limit=1 << 40))
    assert watchdog.limit == 1 << 40
    assert watchdog.health_check().status == "healthy"  # real RSS, far below 1 TiB
    with pytest.raises(ValueError, match="soft must not exceed hard"):
        MemoryWatchdog(soft=0.9, hard=0.8)
    with pytest.raises(ValueError, match="fraction"):
        MemoryWatchdog(soft=80)
    with pytest.raises(TypeError, match="callable"):
        watchdog.on_pressure("trim")  # type: ignore[arg-type]


def test_a_misspelt_retry_option_is_refused_by_name() -> None:
    """An unknown keyword fails at decoration time naming it, as a plain signature would."""
    with pytest.raises(TypeError, match="attemps"):
        retry(attemps=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="attemps"):
        retrying(attemps=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="attemps"):
        async_retrying(attemps=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="on"):
        http_retry(on=(ValueError,))  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Supervisor(stagger=-1), r"Supervisor\(stagger\)=-1: use a number of seconds >= 0"),
        (lambda: Supervisor(max_backoff=True), r"Supervisor\(max_backoff\)"),
        (lambda: Supervisor(max_restarts=-1), r"Supervisor\(max_restarts\)=-1"),
        (lambda: MemoryWatchdog(soft=1.5), r"MemoryWatchdog\(soft\)=1.5: use a fraction"),
        (lambda: MemoryWatchdog(interval=0), r"MemoryWatchdog\(interval\)=0"),
        (lambda: MemoryWatchdog(limit=0), r"MemoryWatchdog\(limit\)=0"),
        (lambda: MemoryWatchdog(soft=0.9, hard=0.8), "soft must not exceed hard"),
    ],
)
def test_bad_options_are_refused_naming_the_class_and_option(build: Any, match: str) -> None:
    """Options are validated once, the same way, with the option named."""
    with pytest.raises(ValueError, match=match):
        build()
