"""Per-request cost of the HTTP edge stack, called in-process on a one-route Starlette app.

Variants (each call builds an ASGI scope by hand and awaits the app, no HTTP client):

- ``bare``: the Starlette app alone.
- ``renderkit edge``: CorrelationIdMiddleware + RequestMetricsMiddleware +
  SecurityHeadersMiddleware (HTML preset, fresh nonce) + HTTPSRedirectMiddleware +
  TimeoutMiddleware.
- ``peer stack``: asgi-correlation-id + secure's ASGI middleware + an equivalent hand-written
  pure-ASGI HTTPS check + a BaseHTTPMiddleware timing middleware (the usual way apps add one).

Target (issue 3): the renderkit stack adds at most half the per-request overhead the peer stack
adds, ``(edge - bare) / (peer - bare) <= 0.5``. Needs ``pip install 'renderkit[bench]'``.

Optional: ``--wrk`` also runs ``wrk -c32`` against uvicorn (bare vs edge) when wrk is installed;
target: the edge app keeps at least 85% of the bare app's requests per second.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import Result, Target, measure, report
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from renderkit._http import ProxyTrust
from renderkit.correlation import CorrelationIdMiddleware
from renderkit.metrics import RequestMetrics, RequestMetricsMiddleware
from renderkit.resilience import TimeoutMiddleware
from renderkit.security import HTTPSRedirectMiddleware, SecurityHeadersMiddleware

TRUST = ProxyTrust(hops=1)


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/items/{item_id}", hello)])


def renderkit_app() -> Starlette:
    app = bare_app()
    app.add_middleware(TimeoutMiddleware, timeout=30)
    app.add_middleware(HTTPSRedirectMiddleware, trust=TRUST)
    app.add_middleware(SecurityHeadersMiddleware, trust=TRUST)
    app.add_middleware(RequestMetricsMiddleware, metrics=RequestMetrics())
    app.add_middleware(CorrelationIdMiddleware)
    return app


class PeerHTTPSCheck:
    """What an app writes without renderkit: redirect when X-Forwarded-Proto says http."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            proto = dict(scope["headers"]).get(b"x-forwarded-proto", b"").decode()
            if proto.split(",")[-1].strip() == "http":
                host = dict(scope["headers"]).get(b"host", b"").decode()
                response = RedirectResponse(f"https://{host}{scope['path']}", status_code=301)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class PeerTiming(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response: Response = await call_next(request)
        response.headers["x-process-time"] = f"{time.perf_counter() - start:.6f}"
        return response


def peer_app() -> Starlette:
    from asgi_correlation_id import CorrelationIdMiddleware as PeerCorrelation
    from secure.middleware import SecureASGIMiddleware

    app = bare_app()
    app.add_middleware(PeerTiming)
    app.add_middleware(PeerHTTPSCheck)
    app.add_middleware(SecureASGIMiddleware)
    app.add_middleware(PeerCorrelation)
    return app


HEADERS = [
    (b"host", b"example.com"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
    (b"x-forwarded-for", b"203.0.113.7"),
    (b"x-forwarded-proto", b"https"),
]


def caller(app: Any) -> Any:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def call() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/items/42",
            "raw_path": b"/items/42",
            "root_path": "",
            "query_string": b"",
            "headers": list(HEADERS),
            "client": ("10.0.0.2", 51000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        await app(scope, receive, send)

    return call


def in_process() -> Result:
    result = measure(
        "HTTP edge stack, in-process ASGI call",
        {
            "bare": caller(bare_app()),
            "renderkit edge": caller(renderkit_app()),
            "peer stack": caller(peer_app()),
        },
        baseline="bare",
        rounds=15,
        number=400,
    )
    result.check(
        Target(
            "renderkit edge adds ≤ 0.5x the peer stack's overhead",
            "renderkit edge",
            "peer stack",
            max_ratio=0.5,
        ),
        result.overhead_ratio("renderkit edge", "peer stack", "bare"),
    )
    result.note = (
        "Overhead ratio = (renderkit edge - bare) / (peer stack - bare). The peer stack is "
        "asgi-correlation-id + secure's SecureASGIMiddleware + a hand-written HTTPS check + a "
        "BaseHTTPMiddleware timing middleware. renderkit's stack also draws a CSP nonce and "
        "records per-route latency histograms."
    )
    return result


WRK_APP = """
from bench_edge import bare_app, peer_app, renderkit_app
app = {factory}()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wrk_rps(factory: str, seconds: int) -> float:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "wrk_app.py").write_text(WRK_APP.format(factory=factory))
        env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{Path(__file__).parent}"}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "wrk_app:app", "--port", str(port),
             "--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"],
            env=env,
        )  # fmt: skip
        try:
            for _ in range(150):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            out = subprocess.run(
                ["wrk", "-t2", "-c32", f"-d{seconds}s", "-H", "X-Forwarded-Proto: https",
                 f"http://127.0.0.1:{port}/items/42"],
                capture_output=True, text=True, timeout=seconds + 30, check=True,
            ).stdout  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=10)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def wrk(seconds: int = 5, repeats: int = 2) -> Result | None:
    if shutil.which("wrk") is None:
        return None
    factories = {"bare": "bare_app", "renderkit edge": "renderkit_app", "peer stack": "peer_app"}
    rps: dict[str, list[float]] = {name: [] for name in factories}
    for _ in range(repeats):  # interleaved
        for name, factory in factories.items():
            rps[name].append(_wrk_rps(factory, seconds))
    from _harness import Variant

    best = {name: max(values) for name, values in rps.items()}
    result = Result(
        benchmark=f"wrk -c32 -d{seconds}s against uvicorn (requests/second, best of {repeats})",
        baseline="bare",
        variants=[
            Variant(name, round(value, 1), round(value / best["bare"], 3), repeats)
            for name, value in best.items()
        ],
    )
    result.check(
        Target("edge app keeps ≥ 85% of bare req/s", "renderkit edge", "bare", min_ratio=0.85),
        best["renderkit edge"] / best["bare"],
    )
    result.note = (
        "The 'median (µs)' column holds requests per second for this table (higher is better). "
        "uvicorn runs one worker with httptools when installed; wrk shares the 2 cores."
    )
    return result


def run() -> list[Result]:
    results = [in_process()]
    if "--wrk" in sys.argv:
        extra = wrk()
        if extra is not None:
            results.append(extra)
    return results


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    report(run(), "edge")
