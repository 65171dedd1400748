"""SIGTERM with keep-alive connections: how many requests sent on idle connections are cut.

A real server (uvicorn; gunicorn with gthread workers; gunicorn with uvicorn workers) serves a
tiny app behind ``ShutdownMiddleware`` on 127.0.0.1. Twenty client connections are opened and
left idle (HTTP/1.1 keep-alive). Then 200 requests are sent, ten per connection, at seeded
random moments from 0.3 s before SIGTERM reaches the server to 1.5 s after it (inside the
keep-alive window) and, in a second series, to 4 s after it (past the window: traffic that
never stops). A request written on an open connection that gets no response (EOF or reset) is
**cut**: what a proxy turns into a 502. A response saying ``Connection: close`` makes the
client open a new connection for its next request; a connection refused there is counted
apart (**refused**: nothing was sent, a proxy retries it elsewhere). Variants:
``keepalive_window=0`` (the server is told at once: renderkit before this change) and the
default window.

Run: ``python benchmarks/bench_shutdown_keepalive.py [runs] [server ...]`` (servers: uvicorn,
gunicorn, gunicorn-uvicorn-worker; default: 3 runs per variant, all three). Every wait is
bounded; servers are stopped by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 20
PER_CONNECTION = 10
BEFORE = 0.3  # requests are spread from BEFORE seconds ahead of SIGTERM ...
SPREADS = (1.5, 4.0)  # ... to these many seconds after it (inside, then past the 2 s window)

ASGI_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from renderkit.shutdown import ShutdownCoordinator, ShutdownMiddleware

coordinator = ShutdownCoordinator(grace_period=10, **OPTIONS)

async def hello(request):
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/", hello)], lifespan=coordinator.lifespan)
app.add_middleware(ShutdownMiddleware, coordinator=coordinator)
"""

WSGI_APP = """
from renderkit.shutdown import ShutdownCoordinator
from renderkit.wsgi import ShutdownMiddleware

coordinator = ShutdownCoordinator(grace_period=10, **OPTIONS)

def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]

app = ShutdownMiddleware(hello, coordinator=coordinator)
"""

GUNICORN_CONF = """
from renderkit.shutdown import gunicorn_hooks
globals().update(gunicorn_hooks("ka_app:coordinator"))
"""

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("server did not listen within 15 s")


def _command(server: str, port: int, directory: Path) -> list[str]:
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", "ka_app:app", "--app-dir", str(directory),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--timeout-keep-alive", "75", "--timeout-graceful-shutdown", "8",
        ]  # fmt: skip
    if server == "gunicorn-uvicorn-worker":
        return [
            sys.executable, "-m", "gunicorn", "ka_app:app", "--chdir", str(directory),
            "-k", "uvicorn.workers.UvicornWorker", "-w", "1", "-b", f"127.0.0.1:{port}",
            "--keep-alive", "75", "--graceful-timeout", "8", "--log-level", "warning",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "gunicorn", "ka_app:app", "-c", str(directory / "conf.py"),
        "--chdir", str(directory), "-k", "gthread", "--threads", "32", "-w", "1",
        "-b", f"127.0.0.1:{port}", "--keep-alive", "75", "--graceful-timeout", "8",
        "--log-level", "warning",
    ]  # fmt: skip


def _read_response(sock: socket.socket) -> tuple[int, bool]:
    """Read one response; return (status, server wants the connection closed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("EOF before a response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers.get("connection", "").lower() == "close"


def _client(port: int, moments: list[float], outcomes: Counter[str], lock: threading.Lock) -> None:
    sock: socket.socket | None
    try:
        sock = socket.create_connection(("127.0.0.1", port), 5)
        sock.sendall(REQUEST)  # warm up: the connection is then an idle keep-alive one
        _read_response(sock)
    except OSError:
        with lock:
            outcomes["warm-up failed (run invalid)"] += len(moments)
        return
    for moment in moments:
        time.sleep(max(0.0, moment - time.monotonic()))
        reused = sock is not None
        if sock is None:
            try:
                sock = socket.create_connection(("127.0.0.1", port), 5)
            except OSError:
                with lock:
                    outcomes["refused (new connection, nothing sent)"] += 1
                continue
        try:
            sock.sendall(REQUEST)
            status, close = _read_response(sock)
        except OSError:
            with lock:
                outcomes["cut (sent on idle keep-alive)" if reused else "cut (new connection)"] += 1
            with contextlib.suppress(OSError):
                sock.close()
            sock = None
            continue
        with lock:
            outcomes[f"{status}{' on idle keep-alive' if reused else ' on new connection'}"] += 1
        if close:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()


def run_once(server: str, options: str, seed: int, after: float) -> Counter[str]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        source = WSGI_APP if server == "gunicorn" else ASGI_APP
        app = textwrap.dedent(source).replace("**OPTIONS", options)
        (directory / "ka_app.py").write_text(app)
        (directory / "conf.py").write_text(textwrap.dedent(GUNICORN_CONF))
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{directory}"}
        process = subprocess.Popen(
            _command(server, port, directory),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_listening(process, port)
            time.sleep(0.5 if server == "uvicorn" else 1.0)  # gunicorn: post_worker_init done
            rng = random.Random(seed)
            signal_at = time.monotonic() + 1.0 + BEFORE
            outcomes: Counter[str] = Counter()
            lock = threading.Lock()
            threads = []
            for _ in range(CONNECTIONS):
                moments = sorted(
                    signal_at + rng.uniform(-BEFORE, after) for _ in range(PER_CONNECTION)
                )
                thread = threading.Thread(target=_client, args=(port, moments, outcomes, lock))
                thread.start()
                threads.append(thread)
            time.sleep(max(0.0, signal_at - time.monotonic()))
            process.send_signal(signal.SIGTERM)
            for thread in threads:
                thread.join(timeout=20)
            process.wait(timeout=20)
            return outcomes
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    variants = {"keepalive_window=0 (before)": "keepalive_window=0", "default window": ""}
    results: dict[str, dict[str, list[int]]] = {}
    servers = sys.argv[2:] or ["uvicorn", "gunicorn", "gunicorn-uvicorn-worker"]
    for server in servers:
        for after in SPREADS:
            for label, options in variants.items():
                cuts, totals = [], Counter[str]()
                for seed in range(runs):
                    outcome = run_once(server, options, seed, after)
                    cuts.append(outcome["cut (sent on idle keep-alive)"])
                    totals.update(outcome)
                key = f"{server}, requests until +{after:g} s, {label}"
                results[key] = {"cut per run": cuts, **{k: [v] for k, v in sorted(totals.items())}}
                print(f"{key}: cut per run {cuts}; totals: {dict(sorted(totals.items()))}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    name = "shutdown_keepalive" + ("" if len(servers) == 3 else "_" + "_".join(servers))
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
