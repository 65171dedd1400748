"""Tests for renderkit.shutdown: signal chaining, drain, 503s, hooks, lifespan, streams."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from types import FrameType
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from renderkit.config import ConfigError
from renderkit.health import Health
from renderkit.platform import Platform
from renderkit.shutdown import (
    ShutdownCoordinator,
    ShutdownEvent,
    ShutdownMiddleware,
    gunicorn_hooks,
)

SIG = signal.SIGUSR1


@pytest.fixture
def previous_handler() -> Iterator[list[tuple[int, str]]]:
    """Install a stand-in for the server's handler on SIGUSR1; restore afterwards."""
    calls: list[tuple[int, str]] = []
    original = signal.getsignal(SIG)

    def server_handler(signum: int, frame: FrameType | None) -> None:
        calls.append((signum, "server"))

    signal.signal(SIG, server_handler)
    yield calls
    signal.signal(SIG, original)


def make_app(coordinator: ShutdownCoordinator, health: Health | None = None) -> Starlette:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params.get("s", "0.2")))
        return PlainTextResponse("done")

    routes = [Route("/slow", slow)]
    if health is not None:
        routes += health.routes()
    app = Starlette(routes=routes, lifespan=coordinator.lifespan)
    app.add_middleware(ShutdownMiddleware, coordinator=coordinator)
    return app


def asgi_client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_signal_chains_to_the_previous_handler() -> None:
    """Our handler flips state first, then calls the server's handler with the same signal."""
    exits: list[int] = []
    coordinator = ShutdownCoordinator(signals=(SIG,), exit=exits.append, keepalive_window=0)
    calls: list[tuple[int, str]] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:
        calls.append((signum, coordinator.phase))

    original = signal.signal(SIG, server_handler)
    try:
        assert coordinator.install_signal_handlers()
        assert not coordinator.install_signal_handlers()  # idempotent
        signal.raise_signal(SIG)
        assert calls == [(SIG, "closing")]
        assert coordinator.is_shutting_down and coordinator.shutting_down.is_set()
        assert not coordinator.accepting
        signal.raise_signal(SIG)  # second signal: fast exit, server not called again
        assert exits == [128 + SIG]
        assert calls == [(SIG, "closing")]
        coordinator.uninstall_signal_handlers()
        assert signal.getsignal(SIG) is server_handler
    finally:
        signal.signal(SIG, original)


async def test_chains_with_a_loop_signal_handler() -> None:
    """A server that used loop.add_signal_handler (hypercorn) still gets its callback."""
    loop = asyncio.get_running_loop()
    fired = asyncio.Event()
    loop.add_signal_handler(SIG, fired.set)
    coordinator = ShutdownCoordinator(signals=(SIG,))
    try:
        coordinator.install_signal_handlers()
        signal.raise_signal(SIG)
        await asyncio.wait_for(fired.wait(), 2)
        assert coordinator.is_shutting_down
        assert await asyncio.wait_for(coordinator.shutting_down.wait(), 1)
    finally:
        coordinator.uninstall_signal_handlers()
        loop.remove_signal_handler(SIG)


def test_no_handlers_installed_at_construction() -> None:
    """Creating a coordinator installs nothing; it happens at lifespan start or on request."""
    before = signal.getsignal(signal.SIGTERM)
    ShutdownCoordinator()
    assert signal.getsignal(signal.SIGTERM) is before


def test_install_off_main_thread_returns_false() -> None:
    """Signals can only be handled in the main thread: installing elsewhere is a no-op."""
    coordinator = ShutdownCoordinator()
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(coordinator.install_signal_handlers()))
    thread.start()
    thread.join()
    assert result == [False]


def test_drain_delay_defers_forwarding(previous_handler: list[tuple[int, str]]) -> None:
    """With drain_delay the server handler runs only after the delay; requests still admitted."""
    coordinator = ShutdownCoordinator(grace_period=5, drain_delay=0.2, signals=(SIG,))
    coordinator.install_signal_handlers()
    try:
        signal.raise_signal(SIG)
        assert coordinator.phase == "draining" and coordinator.accepting
        assert previous_handler == []
        deadline = time.monotonic() + 2
        while not previous_handler and time.monotonic() < deadline:
            time.sleep(0.01)
        assert previous_handler == [(SIG, "server")]
        assert not coordinator.accepting
    finally:
        coordinator.uninstall_signal_handlers()


async def test_drain_delay_on_the_event_loop(previous_handler: list[tuple[int, str]]) -> None:
    """Installed inside a running loop, the delayed forward is scheduled on that loop."""
    coordinator = ShutdownCoordinator(
        grace_period=5, drain_delay=0.1, keepalive_window=0, signals=(SIG,)
    )
    coordinator.install_signal_handlers()
    try:
        signal.raise_signal(SIG)
        await asyncio.sleep(0.02)
        assert previous_handler == [] and coordinator.accepting
        await asyncio.sleep(0.2)
        assert previous_handler == [(SIG, "server")] and not coordinator.accepting
        assert coordinator.phase == "closing"
    finally:
        coordinator.uninstall_signal_handlers()


async def test_inflight_requests_finish_and_new_ones_get_503() -> None:
    """In-flight requests complete with 200; new ones get 503 + Connection: close + Retry-After."""
    coordinator = ShutdownCoordinator(grace_period=5, retry_after=7)
    app = make_app(coordinator)
    async with asgi_client(app) as client:
        pending = asyncio.gather(*(client.get("/slow?s=0.3") for _ in range(10)))
        await asyncio.sleep(0.05)
        assert coordinator.inflight == 10
        coordinator.begin("test")
        refused = await client.get("/slow")
        responses = await pending
        summary = await coordinator.shutdown()
    assert [r.status_code for r in responses] == [200] * 10
    assert refused.status_code == 503
    assert refused.headers["connection"] == "close"
    assert refused.headers["retry-after"] == "7"
    assert summary.drained and summary.cancelled_requests == 0
    assert coordinator.phase == "stopped"
    assert coordinator.stats()["refused"] == 1


async def test_hooks_run_in_reverse_after_drain_with_timeouts() -> None:
    """Hooks run last-in first-out after the drain; a raising or hung hook is skipped."""
    coordinator = ShutdownCoordinator(grace_period=5)
    order: list[str] = []
    coordinator.on_shutdown(lambda: order.append("database"), name="database")

    async def close_cache() -> None:
        order.append("cache")

    coordinator.on_shutdown(close_cache, name="cache")

    def broken() -> None:
        raise RuntimeError("boom")

    coordinator.on_shutdown(broken, name="broken")
    release, hung_ended = threading.Event(), threading.Event()

    def hung() -> None:
        release.wait(10)
        hung_ended.set()

    coordinator.on_shutdown(hung, name="hung", timeout=0.2)

    @coordinator.on_shutdown(timeout=1)
    async def last() -> None:
        order.append("last")

    summary = await coordinator.shutdown()
    assert not hung_ended.is_set()  # the later hooks ran without waiting for the hung one
    release.set()
    assert order == ["last", "cache", "database"]
    assert [(h.name, h.status) for h in summary.hooks] == [
        ("test_hooks_run_in_reverse_after_drain_with_timeouts.<locals>.last", "ok"),
        ("hung", "timeout"),
        ("broken", "error"),
        ("cache", "ok"),
        ("database", "ok"),
    ]
    assert "boom" in (summary.hooks[2].error or "")
    assert "hung timeout" in summary.describe()
    assert await coordinator.shutdown() is summary  # idempotent
    with pytest.raises(RuntimeError, match="already ran"):
        coordinator.on_shutdown(lambda: None)


async def test_hooks_share_the_grace_period() -> None:
    """Once the grace period is spent, later hooks are skipped rather than overrunning it."""
    coordinator = ShutdownCoordinator(grace_period=0.3)
    coordinator.on_shutdown(lambda: None, name="never")
    release, slow_ended = threading.Event(), threading.Event()

    def slow() -> None:
        release.wait(10)
        slow_ended.set()

    coordinator.on_shutdown(slow, name="slow", timeout=5)
    summary = await coordinator.shutdown()
    assert not slow_ended.is_set()  # cut off at the grace period, not at its own 5 s timeout
    release.set()
    assert [(h.name, h.status) for h in summary.hooks] == [
        ("slow", "timeout"),
        ("never", "skipped"),
    ]


async def test_stragglers_cancelled_at_the_drain_deadline() -> None:
    """A request still running when the drain budget is spent is cancelled; hooks still run."""
    coordinator = ShutdownCoordinator(grace_period=2, drain_timeout=0.3)
    ran: list[str] = []
    coordinator.on_shutdown(lambda: ran.append("hook"), name="hook")
    app = make_app(coordinator)
    async with asgi_client(app) as client:
        stuck = asyncio.ensure_future(client.get("/slow?s=30"))
        await asyncio.sleep(0.05)
        summary = await coordinator.shutdown()
        with pytest.raises(asyncio.CancelledError):  # in-process, the request task is ours
            await stuck
    assert not summary.drained and summary.cancelled_requests == 1
    assert ran == ["hook"]


async def test_lifespan_runs_hooks_and_health_flips() -> None:
    """Under the ASGI lifespan: readiness 503 once shutdown begins; hooks at lifespan end."""
    coordinator = ShutdownCoordinator(grace_period=5)
    ran: list[str] = []
    coordinator.on_shutdown(lambda: ran.append("db"), name="db")
    health = Health(shutdown=coordinator)
    app = make_app(coordinator, health)
    async with app.router.lifespan_context(app):
        async with asgi_client(app) as client:
            assert (await client.get("/health/ready")).status_code == 200
            assert coordinator.health_check().status == "healthy"
            coordinator.begin("test")
            assert health.shutting_down
            assert coordinator.health_check().status == "unhealthy"
        assert ran == []
    assert ran == ["db"]


async def test_app_can_start_again_after_a_shutdown() -> None:
    """A second lifespan (a test suite starting the app again) serves normally and re-runs
    the hooks; reset() refuses while a shutdown is under way."""
    coordinator = ShutdownCoordinator(grace_period=5)
    ran: list[str] = []
    coordinator.on_shutdown(lambda: ran.append("db"), name="db")
    app = make_app(coordinator)
    for _ in range(2):
        async with app.router.lifespan_context(app):
            async with asgi_client(app) as client:
                assert (await client.get("/slow?s=0")).status_code == 200
            assert not coordinator.shutting_down.is_set()
    assert ran == ["db", "db"]
    coordinator.reset()
    coordinator.begin("test")
    with pytest.raises(RuntimeError, match="under way"):
        coordinator.reset()


async def test_wrap_lifespan_composes_with_the_app_lifespan() -> None:
    """The app's own lifespan runs inside ours: its teardown before our hooks."""
    coordinator = ShutdownCoordinator(grace_period=5)
    order: list[str] = []
    coordinator.on_shutdown(lambda: order.append("hooks"), name="hooks")

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def app_lifespan(app: Any) -> AsyncIterator[dict[str, str]]:
        order.append("app start")
        yield {"key": "value"}
        order.append("app stop")

    combined = coordinator.wrap_lifespan(app_lifespan)
    async with combined(None) as state:
        assert state == {"key": "value"}
    assert order == ["app start", "app stop", "hooks"]


async def test_streams_learn_about_shutdown() -> None:
    """SSE generators wrapped in until_shutdown stop when shutdown begins, so the drain ends."""
    coordinator = ShutdownCoordinator(grace_period=5)

    async def ticks() -> AsyncIterator[bytes]:
        while True:
            yield b"data: tick\n\n"
            await asyncio.sleep(0.02)

    async def stream(request: Request) -> Response:
        return StreamingResponse(coordinator.until_shutdown(ticks()))

    app = Starlette(routes=[Route("/events", stream)])
    app.add_middleware(ShutdownMiddleware, coordinator=coordinator)
    async with asgi_client(app) as client:
        body = asyncio.ensure_future(client.get("/events"))
        await asyncio.sleep(0.1)
        coordinator.begin("test")
        summary = await coordinator.shutdown()
        response = await asyncio.wait_for(body, 2)
    assert response.status_code == 200 and response.content.count(b"tick") >= 2
    assert summary.drained


async def test_shutdown_event_wakes_waiters_on_other_threads_and_loops() -> None:
    """ShutdownEvent set from a thread wakes an awaiting coroutine and a blocking thread."""
    event = ShutdownEvent()
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(event.wait_sync(2)))
    waiter.start()
    threading.Timer(0.05, event.set).start()
    assert await asyncio.wait_for(event.wait(), 2)
    waiter.join(2)
    assert woke == [True]
    await event  # already set: returns at once


async def test_websocket_refused_with_1012_during_drain() -> None:
    """A new WebSocket during the drain is closed with 1012 (service restart)."""
    coordinator = ShutdownCoordinator(keepalive_window=0)
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("must not be called")

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    middleware = ShutdownMiddleware(inner, coordinator=coordinator)
    coordinator.begin("test")
    await middleware({"type": "websocket", "path": "/ws"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1012, "reason": "service restart"}]


def test_bad_options_are_rejected() -> None:
    """Bad grace periods, delays, retry_after, hooks and middleware wiring raise clearly."""
    with pytest.raises(ValueError, match="grace_period"):
        ShutdownCoordinator(grace_period=0)
    with pytest.raises(ValueError, match="shorter than the grace period"):
        ShutdownCoordinator(grace_period=5, drain_delay=5)
    with pytest.raises(ValueError, match="retry_after"):
        ShutdownCoordinator(retry_after=-1)
    coordinator = ShutdownCoordinator()
    with pytest.raises(TypeError, match=r"not db.close\(\)"):
        coordinator.on_shutdown(42)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="timeout"):
        coordinator.on_shutdown(lambda: None, timeout=0)
    with pytest.raises(TypeError, match="ShutdownCoordinator"):
        ShutdownMiddleware(lambda s, r, x: None, coordinator=object())  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(
    ("provider", "kill_after", "grace", "delay"),
    [
        ("render", 30.0, 25.0, 0.0),
        ("heroku", 30.0, 25.0, 0.0),
        ("fly", 5.0, 4.0, 0.0),
        ("cloud_run", 10.0, 8.0, 0.0),
        ("kubernetes", 30.0, 25.0, 5.0),
    ],
)
def test_platform_defaults(provider: str, kill_after: float, grace: float, delay: float) -> None:
    """from_platform: the SIGKILL delay minus a margin; a drain delay only on Kubernetes."""
    coordinator = ShutdownCoordinator.from_platform(
        Platform(provider=provider, shutdown_grace_period=kill_after)
    )
    assert (coordinator.grace_period, coordinator.drain_delay) == (grace, delay)


def test_from_env_overrides_and_reports_problems() -> None:
    """SHUTDOWN_GRACE_PERIOD / SHUTDOWN_DRAIN_DELAY override; bad values listed together."""
    coordinator = ShutdownCoordinator.from_env(
        {"RENDER": "true", "SHUTDOWN_GRACE_PERIOD": "20s", "SHUTDOWN_DRAIN_DELAY": "2s"}
    )
    assert (coordinator.grace_period, coordinator.drain_delay) == (20.0, 2.0)
    with pytest.raises(ConfigError) as info:
        ShutdownCoordinator.from_env({"SHUTDOWN_GRACE_PERIOD": "0s", "SHUTDOWN_DRAIN_DELAY": "x"})
    assert "SHUTDOWN_GRACE_PERIOD" in str(info.value) and "SHUTDOWN_DRAIN_DELAY" in str(info.value)


def test_shutdown_sync_and_gunicorn_hooks(previous_handler: list[tuple[int, str]]) -> None:
    """gunicorn hooks: post_worker_init chains the handlers, worker_exit runs the hooks once."""
    coordinator = ShutdownCoordinator(grace_period=5, signals=(SIG,), keepalive_window=0)
    ran: list[str] = []
    coordinator.on_shutdown(lambda: ran.append("db"), name="db")
    hooks = gunicorn_hooks(coordinator)
    hooks["post_worker_init"](object())
    try:
        signal.raise_signal(SIG)
        assert previous_handler == [(SIG, "server")]
        hooks["worker_exit"](object(), object())
        hooks["worker_exit"](object(), object())
    finally:
        coordinator.uninstall_signal_handlers()
    assert ran == ["db"]
    assert coordinator.wait_stopped(0)


def test_gunicorn_hooks_resolve_an_import_path() -> None:
    """A 'module:attribute' target is imported in the worker; a wrong one fails clearly."""
    hooks = gunicorn_hooks(f"{__name__}:MODULE_COORDINATOR")
    hooks["worker_exit"](object(), object())
    assert MODULE_COORDINATOR.phase == "stopped"
    with pytest.raises(TypeError, match="not a ShutdownCoordinator"):
        gunicorn_hooks(f"{__name__}:SIG")["worker_exit"](object(), object())
    with pytest.raises(ValueError, match="module:attribute"):
        gunicorn_hooks("nocolon")["worker_exit"](object(), object())


MODULE_COORDINATOR = ShutdownCoordinator(grace_period=2)


async def test_keepalive_window_serves_with_connection_close_then_forwards(
    previous_handler: list[tuple[int, str]],
) -> None:
    """After SIGTERM requests on open connections are served (not 503) with Connection: close;
    the server gets the signal once no request started for 0.5 s."""
    coordinator = ShutdownCoordinator(grace_period=5, keepalive_window=3, signals=(SIG,))
    app = make_app(coordinator)
    async with asgi_client(app) as client:
        before = await client.get("/slow?s=0")
        coordinator.install_signal_handlers()
        try:
            signal.raise_signal(SIG)
            served = [await client.get("/slow?s=0") for _ in range(3)]
            assert previous_handler == [] and coordinator.accepting
            deadline = time.monotonic() + 3
            while not previous_handler and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert previous_handler == [(SIG, "server")]
            refused = await client.get("/slow?s=0")
        finally:
            coordinator.uninstall_signal_handlers()
        await coordinator.shutdown()
    assert "connection" not in before.headers
    assert [r.status_code for r in served] == [200, 200, 200]
    assert all(r.headers["connection"] == "close" for r in served)
    assert refused.status_code == 503


async def test_keepalive_window_is_bounded_under_steady_traffic(
    previous_handler: list[tuple[int, str]],
) -> None:
    """Requests every 0.1 s never let the window go quiet: it still ends at its bound."""
    coordinator = ShutdownCoordinator(grace_period=5, keepalive_window=0.6, signals=(SIG,))
    app = make_app(coordinator)
    coordinator.install_signal_handlers()
    try:
        async with asgi_client(app) as client:
            signal.raise_signal(SIG)
            codes = []
            while not previous_handler and len(codes) < 40:
                codes.append((await client.get("/slow?s=0")).status_code)
                await asyncio.sleep(0.1)
        assert previous_handler == [(SIG, "server")]
        assert 3 <= len(codes) < 40 and set(codes) == {200}
    finally:
        coordinator.uninstall_signal_handlers()


def test_keepalive_window_option_and_env() -> None:
    """The window is validated, defaults within the grace period, and reads its variable."""
    assert ShutdownCoordinator().keepalive_window == 2.0
    assert ShutdownCoordinator(grace_period=2).keepalive_window == 0.5
    with pytest.raises(ValueError, match="keepalive_window"):
        ShutdownCoordinator(keepalive_window=-1)
    with pytest.raises(ValueError, match="shorter than the grace period"):
        ShutdownCoordinator(grace_period=3, keepalive_window=3)
    coordinator = ShutdownCoordinator.from_env({"SHUTDOWN_KEEPALIVE_WINDOW": "0s"})
    assert coordinator.keepalive_window == 0.0
    with pytest.raises(ConfigError, match="SHUTDOWN_KEEPALIVE_WINDOW"):
        ShutdownCoordinator.from_env({"SHUTDOWN_KEEPALIVE_WINDOW": "soon"})
