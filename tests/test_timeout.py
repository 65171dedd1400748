"""Tests for renderkit.resilience.TimeoutMiddleware."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from renderkit.correlation import CorrelationIdMiddleware
from renderkit.errors import ConfigError
from renderkit.resilience import TimeoutMiddleware

cancelled: list[bool] = []


async def slow(request: Request) -> PlainTextResponse:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        cancelled.append(True)
        raise
    return PlainTextResponse("late")


async def fast(request: Request) -> PlainTextResponse:
    return PlainTextResponse("fast")


async def stream(request: Request) -> StreamingResponse:
    async def body():  # type: ignore[no-untyped-def]
        for i in range(3):
            yield f"chunk{i};".encode()
            await asyncio.sleep(0.06)

    return StreamingResponse(body())


def client_for(**options: object) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/slow", slow), Route("/fast", fast), Route("/stream", stream)])
    app.add_middleware(TimeoutMiddleware, **options)  # type: ignore[arg-type]
    app.add_middleware(CorrelationIdMiddleware)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_slow_handler_gets_504_json_and_is_cancelled() -> None:
    """After the timeout the handler is cancelled and the client gets a 504 with a JSON body."""
    cancelled.clear()
    async with client_for(timeout=0.1) as client:
        response = await client.get("/slow", headers={"X-Request-ID": "t-1"})
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "t-1"
    body = response.json()
    assert body["error"] == "gateway_timeout" and body["request_id"] == "t-1"
    assert "0.1 seconds" in body["detail"]
    assert cancelled == [True]


async def test_fast_handler_and_started_stream_are_left_alone() -> None:
    """A response that started before the deadline streams to its end."""
    async with client_for(timeout=0.1) as client:
        assert (await client.get("/fast")).text == "fast"
        response = await client.get("/stream")
    assert response.status_code == 200
    assert response.text == "chunk0;chunk1;chunk2;"


async def test_exempt_paths_and_disabled_timeout() -> None:
    """Exempt paths and timeout=None never time out."""
    async with client_for(timeout=0.05, exempt_paths=["/stream"]) as client:
        assert (await client.get("/stream")).status_code == 200
    middleware = TimeoutMiddleware(fast, timeout=None)  # type: ignore[arg-type]
    assert middleware.timeout is None


@pytest.mark.parametrize("bad", [0, -1, "30", True])
def test_bad_timeout_is_rejected(bad: object) -> None:
    """Non-positive or non-numeric timeouts fail at construction naming the option."""
    with pytest.raises(ValueError, match="timeout"):
        TimeoutMiddleware(fast, timeout=bad)  # type: ignore[arg-type]


def test_from_env_reads_request_timeout() -> None:
    """REQUEST_TIMEOUT takes durations; 0/off disables; garbage is a ConfigError naming it."""
    assert TimeoutMiddleware.from_env(fast, {}).timeout == 30.0  # type: ignore[arg-type]
    assert TimeoutMiddleware.from_env(fast, {"REQUEST_TIMEOUT": "2m"}).timeout == 120.0  # type: ignore[arg-type]
    assert TimeoutMiddleware.from_env(fast, {"REQUEST_TIMEOUT": "off"}).timeout is None  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="REQUEST_TIMEOUT"):
        TimeoutMiddleware.from_env(fast, {"REQUEST_TIMEOUT": "soon"})  # type: ignore[arg-type]


async def test_cancel_scope_path_used_off_asyncio_behaves_the_same() -> None:
    """The anyio cancel-scope path (used under trio) also times out only unstarted responses."""
    sent: list[dict] = []

    async def send(message: dict) -> None:  # type: ignore[type-arg]
        sent.append(message)

    async def receive() -> dict:  # type: ignore[type-arg]
        return {"type": "http.request", "body": b""}

    async def stuck(scope, receive, send):  # type: ignore[no-untyped-def]
        await slow(None)  # type: ignore[arg-type]

    middleware = TimeoutMiddleware(stuck, timeout=0.05)  # type: ignore[arg-type]
    scope = {"type": "http", "method": "GET", "path": "/slow", "headers": []}
    cancelled.clear()
    assert await middleware._call_with_cancel_scope(scope, receive, send) is True
    assert cancelled == [True] and sent == []

    async def quick(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.1)  # past the deadline, but the response had started
        await send({"type": "http.response.body", "body": b"done"})

    middleware = TimeoutMiddleware(quick, timeout=0.05)  # type: ignore[arg-type]
    assert await middleware._call_with_cancel_scope(scope, receive, send) is False
    assert sent[-1]["body"] == b"done"


async def test_timeout_error_raised_by_the_handler_is_not_a_504() -> None:
    """A handler's own TimeoutError propagates; only the middleware's deadline becomes 504."""

    async def raises(scope, receive, send):  # type: ignore[no-untyped-def]
        raise TimeoutError("upstream timed out")

    middleware = TimeoutMiddleware(raises, timeout=5)  # type: ignore[arg-type]
    with pytest.raises(TimeoutError, match="upstream"):
        await middleware({"type": "http", "path": "/", "headers": []}, None, None)  # type: ignore[arg-type]


def _scope(path: str = "/x") -> dict:  # type: ignore[type-arg]
    return {"type": "http", "method": "GET", "path": path, "headers": []}


async def _receive() -> dict:  # type: ignore[type-arg]
    return {"type": "http.request", "body": b""}


async def test_concurrent_requests_time_out_each_on_its_own_deadline() -> None:
    """One watchdog serves many requests: a slow one gets 504 while quicker ones finish."""
    statuses: dict[str, int] = {}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await asyncio.sleep(float(scope["path"][1:]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = TimeoutMiddleware(app, timeout=0.15)  # type: ignore[arg-type]

    async def call(delay: str, start_after: float) -> None:
        await asyncio.sleep(start_after)

        async def send(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                statuses[delay] = message["status"]

        await middleware(_scope("/" + delay), _receive, send)  # type: ignore[arg-type]

    # Staggered starts: the first request's deadline passes while later ones are in flight,
    # so the watchdog must re-arm for the next pending deadline after it fires.
    await asyncio.gather(call("0.01", 0), call("0.5", 0.02), call("0.05", 0.04), call("1", 0.08))
    assert statuses == {"0.01": 200, "0.5": 504, "0.05": 200, "1": 504}
    assert middleware._watchdog is not None and not middleware._watchdog.pending


async def test_outside_cancellation_is_not_turned_into_a_504() -> None:
    """A request cancelled by someone else (client gone, shutdown) propagates CancelledError."""
    sent: list[dict] = []  # type: ignore[type-arg]

    async def send(message: dict) -> None:  # type: ignore[type-arg]
        sent.append(message)

    async def stuck(scope, receive, send):  # type: ignore[no-untyped-def]
        await asyncio.sleep(5)

    middleware = TimeoutMiddleware(stuck, timeout=5)  # type: ignore[arg-type]
    task = asyncio.create_task(middleware(_scope(), _receive, send))  # type: ignore[arg-type]
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sent == []
    assert middleware._watchdog is not None and not middleware._watchdog.pending


async def test_handler_that_swallows_the_cancellation_keeps_its_task_uncancelled() -> None:
    """A handler that catches the timeout's cancellation and answers itself is left alone, and
    the task's cancellation count is restored (later awaits in the same task still work)."""
    sent: list[dict] = []  # type: ignore[type-arg]

    async def send(message: dict) -> None:  # type: ignore[type-arg]
        sent.append(message)

    async def stubborn(scope, receive, send):  # type: ignore[no-untyped-def]
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"mine"})

    middleware = TimeoutMiddleware(stubborn, timeout=0.05)  # type: ignore[arg-type]
    await middleware(_scope(), _receive, send)  # type: ignore[arg-type]
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [200]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # the task is not cancelled any more


def test_middleware_survives_a_new_event_loop_per_run() -> None:
    """Each event loop gets its own watchdog (a new TestClient, a new asyncio.run)."""

    async def stuck(scope, receive, send):  # type: ignore[no-untyped-def]
        await asyncio.sleep(5)

    middleware = TimeoutMiddleware(stuck, timeout=0.03)  # type: ignore[arg-type]

    async def once() -> int:
        statuses: list[int] = []

        async def send(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await middleware(_scope(), _receive, send)  # type: ignore[arg-type]
        return statuses[0]

    assert asyncio.run(once()) == 504
    first = middleware._watchdog
    assert asyncio.run(once()) == 504
    assert middleware._watchdog is not first


async def test_coroutine_driven_outside_any_task_runs_without_a_deadline() -> None:
    """Driven by hand from a loop callback (no current task), the app still runs."""
    sent: list[dict] = []  # type: ignore[type-arg]

    async def send(message: dict) -> None:  # type: ignore[type-arg]
        sent.append(message)

    async def ok(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = TimeoutMiddleware(ok, timeout=1)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()

    def drive() -> None:
        coro = middleware(_scope(), _receive, send)  # type: ignore[arg-type]
        try:
            coro.send(None)
        except StopIteration:
            done.set_result(True)
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            done.set_exception(exc)

    loop.call_soon(drive)
    assert await asyncio.wait_for(done, 1) is True
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
