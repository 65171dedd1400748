"""End to end: SIGTERM under load loses no request, then hooks run, inside the grace period.

Real servers on 127.0.0.1 (uvicorn; gunicorn with uvicorn workers; Flask under gunicorn's
threaded workers), 50 concurrent one-second requests, SIGTERM mid-flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GRACE = 10.0
CONCURRENCY = 50
# A server that shut down by itself: exit code 0, or (uvicorn) the SIGTERM re-raised once
# shutdown is done, as orchestrators expect. Never SIGKILL, and process.wait() did not time out.
EXITED_BY_ITSELF = (0, -signal.SIGTERM)


def example_env(log: Path) -> dict[str, str]:
    """Environment of the example app: its event log, its grace period, renderkit's source."""
    return {
        "EXAMPLE_EVENT_LOG": str(log),
        "SHUTDOWN_GRACE_PERIOD": f"{GRACE:g}s",
        "PYTHONPATH": str(ROOT / "src"),
    }


def uvicorn_command(port: int) -> list[str]:
    """uvicorn serving the example app on 127.0.0.1:port."""
    return [
        sys.executable, "-m", "uvicorn", "health_shutdown_example:app", "--app-dir", str(EXAMPLES),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(
    command: list[str], port: int, env: dict[str, str], cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until it listens on ``port``, stop it by pid at the end."""
    process = subprocess.Popen(
        command, cwd=cwd, env={**os.environ, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start listening within 20 s")
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()


def _started(log: Path) -> int:
    with contextlib.suppress(FileNotFoundError):
        return log.read_text().count(" request start\n")
    return 0


async def load_then_sigterm(
    url: str, process: subprocess.Popen[bytes], log: Path
) -> tuple[list[int], int | None]:
    """Fire CONCURRENCY one-second requests, SIGTERM once all are in the app; return statuses
    and the process's exit code."""
    limits = httpx.Limits(max_connections=CONCURRENCY + 10)
    async with httpx.AsyncClient(timeout=GRACE + 5, limits=limits) as client:
        requests = [
            asyncio.ensure_future(client.get(f"{url}/work?seconds=1")) for _ in range(CONCURRENCY)
        ]
        # Wait (bounded) until every request is running in the app: on a loaded machine a fixed
        # sleep let SIGTERM overtake requests still connecting (503 / refused, not a lost one).
        deadline = time.monotonic() + 20
        while _started(log) < CONCURRENCY and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert _started(log) == CONCURRENCY, "the requests did not all reach the app in 20 s"
        process.send_signal(signal.SIGTERM)
        responses = await asyncio.gather(*requests, return_exceptions=True)
    statuses = [r.status_code if isinstance(r, httpx.Response) else -1 for r in responses]
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, process.wait, GRACE + 5)
    return statuses, process.returncode


def check_event_log(log: Path) -> None:
    """Every request finished before the first hook; hooks ran in reverse registration order."""
    lines = [line.split(" ", 2) for line in log.read_text().splitlines()]
    lines = [line for line in lines if line[2] != "request start"]
    events = [event for _, _, event in lines]
    assert events.count("request done") == CONCURRENCY, events
    hooks = [i for i, event in enumerate(events) if event.startswith("hook ")]
    assert [events[i] for i in hooks] == ["hook cache", "hook database"]
    last_request = max(float(t) for t, _, event in lines if event == "request done")
    first_hook = min(float(lines[i][0]) for i in hooks)
    assert first_hook >= last_request
    assert min(hooks) == CONCURRENCY  # nothing but requests before the hooks


def assert_drains_under_load(
    command: list[str], port: int, env: dict[str, str], tmp_path: Path, log: Path
) -> None:
    """Serve, put CONCURRENCY slow requests in flight, SIGTERM: every one gets 200, none is
    cancelled at the drain deadline, the server exits by itself, and the hooks ran
    after the last request, newest first."""
    with server(command, port, env, tmp_path) as process:
        statuses, code = asyncio.run(load_then_sigterm(f"http://127.0.0.1:{port}", process, log))
    assert statuses == [200] * CONCURRENCY
    assert code in EXITED_BY_ITSELF
    check_event_log(log)


def test_uvicorn_sigterm_under_load(tmp_path: Path) -> None:
    """uvicorn: all 50 in-flight requests get 200, hooks run after them, exit well in time."""
    port = free_port()
    log = tmp_path / "events.log"
    env = example_env(log)
    command = uvicorn_command(port)
    assert_drains_under_load(command, port, env, tmp_path, log)


def test_gunicorn_uvicorn_workers_sigterm_under_load(tmp_path: Path) -> None:
    """gunicorn + uvicorn workers: the same guarantees through the worker's ASGI lifespan."""
    port = free_port()
    log = tmp_path / "events.log"
    env = example_env(log)
    command = [
        sys.executable, "-m", "gunicorn", "health_shutdown_example:app", "--chdir", str(EXAMPLES),
        "-k", "uvicorn.workers.UvicornWorker", "-w", "1", "-b", f"127.0.0.1:{port}",
        "--graceful-timeout", f"{GRACE + 5:g}", "--log-level", "warning",
    ]  # fmt: skip
    assert_drains_under_load(command, port, env, tmp_path, log)


FLASK_APP = """
import os, time
from flask import Flask
from renderkit.shutdown import ShutdownCoordinator
from renderkit.wsgi import ShutdownMiddleware

LOG = os.environ["EXAMPLE_EVENT_LOG"]

def record(event):
    with open(LOG, "a") as f:
        f.write(f"{time.time():.6f} {os.getpid()} {event}\\n")

coordinator = ShutdownCoordinator(grace_period=10)
coordinator.on_shutdown(lambda: record("hook database"), name="database")
coordinator.on_shutdown(lambda: record("hook cache"), name="cache")

app = Flask(__name__)

@app.get("/work")
def work():
    record("request start")
    time.sleep(1)
    record("request done")
    return {"ok": True}

app.wsgi_app = ShutdownMiddleware(app.wsgi_app, coordinator=coordinator)
"""

GUNICORN_CONF = """
from renderkit.shutdown import gunicorn_hooks
globals().update(gunicorn_hooks("flask_app:coordinator"))
"""


def test_flask_gunicorn_threads_sigterm_under_load(tmp_path: Path) -> None:
    """Flask under gunicorn gthread workers: requests finish, worker_exit runs the hooks after."""
    (tmp_path / "flask_app.py").write_text(textwrap.dedent(FLASK_APP))
    (tmp_path / "gunicorn_conf.py").write_text(textwrap.dedent(GUNICORN_CONF))
    port = free_port()
    log = tmp_path / "events.log"
    env = {"EXAMPLE_EVENT_LOG": str(log), "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{tmp_path}"}
    command = [
        sys.executable, "-m", "gunicorn", "flask_app:app", "-c", str(tmp_path / "gunicorn_conf.py"),
        "-k", "gthread", "--threads", str(CONCURRENCY + 10), "-w", "1",
        "-b", f"127.0.0.1:{port}", "--graceful-timeout", f"{GRACE + 5:g}", "--log-level", "warning",
    ]  # fmt: skip
    assert_drains_under_load(command, port, env, tmp_path, log)


async def stream_then_sigterm(
    url: str, process: subprocess.Popen[bytes]
) -> tuple[bytes, int | None]:
    """Open the SSE stream, SIGTERM once it flows; return what arrived and the exit code. A
    stream cut off at the drain deadline instead of ending raises here (an incomplete body)."""
    async with httpx.AsyncClient(timeout=GRACE + 5) as client:
        async with client.stream("GET", f"{url}/events") as response:
            received = b""
            signalled = False
            async for chunk in response.aiter_bytes():
                received += chunk
                if not signalled:
                    signalled = True
                    process.send_signal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, process.wait, GRACE + 5)
    return received, process.returncode


def test_uvicorn_sigterm_ends_open_sse_stream(tmp_path: Path) -> None:
    """An open SSE stream ends when shutdown begins, so uvicorn's drain and the hooks finish."""
    port = free_port()
    log = tmp_path / "events.log"
    env = example_env(log)
    command = uvicorn_command(port)
    with server(command, port, env, tmp_path) as process:
        received, code = asyncio.run(stream_then_sigterm(f"http://127.0.0.1:{port}", process))
    assert received.startswith(b"data: tick")
    assert received.endswith(b"\n\n")  # the stream ended between events, not cut mid-way
    assert code in EXITED_BY_ITSELF
    assert [line.split(" ", 2)[2] for line in log.read_text().splitlines()] == [
        "hook cache",
        "hook database",
    ]


def test_hypercorn_sigterm_under_load(tmp_path: Path) -> None:
    """hypercorn (loop.add_signal_handler): requests finish, hooks run after them, in time."""
    pytest.importorskip("hypercorn")
    port = free_port()
    log = tmp_path / "events.log"
    env = {
        "EXAMPLE_EVENT_LOG": str(log),
        "SHUTDOWN_GRACE_PERIOD": f"{GRACE:g}s",
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{EXAMPLES}",
    }
    command = [
        sys.executable, "-m", "hypercorn", "health_shutdown_example:app",
        "--bind", f"127.0.0.1:{port}", "--graceful-timeout", f"{GRACE:g}", "--log-level", "warning",
    ]  # fmt: skip
    assert_drains_under_load(command, port, env, tmp_path, log)


KEEPALIVE_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from renderkit.shutdown import ShutdownCoordinator, ShutdownMiddleware

coordinator = ShutdownCoordinator(grace_period=10)

async def hello(request):
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/", hello)], lifespan=coordinator.lifespan)
app.add_middleware(ShutdownMiddleware, coordinator=coordinator)
"""

_REQUEST = b"GET / HTTP/1.1\r\nHost: e2e\r\n\r\n"


def _exchange(sock: socket.socket) -> bytes:
    """Send one request on ``sock`` and read its response head (b"" when cut)."""
    sock.sendall(_REQUEST)
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.partition(b"\r\n\r\n")[0]


def test_uvicorn_sigterm_cuts_no_request_on_idle_keepalive_connections(tmp_path: Path) -> None:
    """At the default settings, requests sent on idle keep-alive connections right after
    SIGTERM are answered (200, Connection: close), not cut by uvicorn closing them."""
    (tmp_path / "ka_app.py").write_text(textwrap.dedent(KEEPALIVE_APP))
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "ka_app:app", "--app-dir", str(tmp_path),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--timeout-keep-alive", "75",
    ]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT / "src")}
    with server(command, port, env, tmp_path) as process:
        sockets = [socket.create_connection(("127.0.0.1", port), 5) for _ in range(10)]
        try:
            for sock in sockets:
                assert b" 200 " in _exchange(sock)  # now an idle keep-alive connection
            process.send_signal(signal.SIGTERM)
            time.sleep(0.1)
            heads = [_exchange(sock) for sock in sockets]
        finally:
            for sock in sockets:
                sock.close()
        process.wait(timeout=15)
    assert all(b" 200 " in head for head in heads), heads
    assert all(b"connection: close" in head.lower() for head in heads)
