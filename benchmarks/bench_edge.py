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

Optional: ``--wrk`` also runs ``wrk -c32`` against uvicorn when wrk is installed: bare, bare plus
the edge stack's headers from a precomputed list (the server's own per-header cost), the edge
stack with the HTML and the API preset, and the peer stack, interleaved, median of 3 runs, with
the server's CPU time per request beside requests per second. Target: the edge app keeps at
least 85% of the bare app's requests per second.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import Result, Target, asgi_caller, measure, report
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
    return asgi_caller(app, "/items/42", headers=HEADERS, client=("10.0.0.2", 51000))


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


def renderkit_api_app() -> Starlette:
    """The same stack with ``SecurityHeaders.api()`` (no nonce, no Permissions-Policy)."""
    from renderkit.security import SecurityHeaders

    app = bare_app()
    app.add_middleware(TimeoutMiddleware, timeout=30)
    app.add_middleware(HTTPSRedirectMiddleware, trust=TRUST)
    app.add_middleware(SecurityHeadersMiddleware, trust=TRUST, policy=SecurityHeaders.api())
    app.add_middleware(RequestMetricsMiddleware, metrics=RequestMetrics())
    app.add_middleware(CorrelationIdMiddleware)
    return app


def _edge_headers() -> list[tuple[bytes, bytes]]:
    """The headers the HTML edge stack adds to the benchmark route, as one response got them."""
    sent: list[tuple[bytes, bytes]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.extend(message["headers"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/items/42", "raw_path": b"/items/42", "root_path": "",
        "query_string": b"", "headers": list(HEADERS), "client": ("10.0.0.2", 51000),
        "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    asyncio.run(renderkit_app()(scope, receive, send))
    return [pair for pair in sent if pair[0] not in (b"content-length", b"content-type")]


def same_headers_app() -> Starlette:
    """The bare app plus ONE send wrapper adding the edge stack's headers, precomputed.

    Its distance to ``bare`` is what the server pays to write those headers (uvicorn checks
    each name and value with a regex and lower-cases it), the floor no middleware can go
    below while it sends them.
    """
    extra = _edge_headers()
    app = bare_app()

    class AddHeaders:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            async def send_more(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message["headers"], *extra]
                await send(message)

            await self.app(scope, receive, send_more)

    app.add_middleware(AddHeaders)
    return app


WRK_APP = """
from bench_edge import {factory} as factory
app = factory()
"""
WRK_VARIANTS = {
    "bare": "bare_app",
    "bare + the same headers": "same_headers_app",
    "renderkit edge (html)": "renderkit_app",
    "renderkit edge (api)": "renderkit_api_app",
    "peer stack": "peer_app",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pin(cpu: int) -> list[str]:
    """``taskset -c cpu`` when there are two CPUs or more: server and wrk then never share one."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk_run(factory: str, seconds: int) -> tuple[float, float | None]:
    """Requests per second, and the server's CPU µs per request (None off Linux)."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "wrk_app.py").write_text(WRK_APP.format(factory=factory))
        env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{Path(__file__).parent}"}
        # The same server options for every variant: no Server or Date header (the Date
        # header alone is one more header per response), httptools when installed.
        server = subprocess.Popen(
            [*_pin(0), sys.executable, "-m", "uvicorn", "wrk_app:app", "--port", str(port),
             "--host", "127.0.0.1", "--log-level", "warning", "--no-access-log",
             "--no-server-header", "--no-date-header"],
            env=env,
        )  # fmt: skip
        try:
            for _ in range(150):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            cpu_before = _cpu_seconds(server.pid)
            out = subprocess.run(
                [*_pin(1), "wrk", "-t1", "-c32", f"-d{seconds}s", "-H", "X-Forwarded-Proto: https",
                 f"http://127.0.0.1:{port}/items/42"],
                capture_output=True, text=True, timeout=seconds + 30, check=True,
            ).stdout  # fmt: skip
            cpu_after = _cpu_seconds(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=10)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and count and int(count.group(1)):
        cpu_us = (cpu_after - cpu_before) / int(count.group(1)) * 1e6
    return (float(rps.group(1)) if rps else 0.0), cpu_us


def wrk(seconds: int = 5, repeats: int = 3) -> list[Result]:
    """Interleaved wrk runs (bare, same-headers, edge html, edge api, peer), medians."""
    if shutil.which("wrk") is None:
        return []
    from _harness import Variant

    rps: dict[str, list[float]] = {name: [] for name in WRK_VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in WRK_VARIANTS}
    for _ in range(repeats):  # interleaved: a noisy neighbour hits every variant alike
        for name, factory in WRK_VARIANTS.items():
            value, cpu_us = _wrk_run(factory, seconds)
            rps[name].append(value)
            if cpu_us is not None:
                cpu[name].append(cpu_us)
    median_rps = {name: statistics.median(values) for name, values in rps.items()}
    result = Result(
        benchmark=f"wrk -c32 -d{seconds}s against uvicorn (requests/second, median of {repeats})",
        baseline="bare",
        variants=[
            Variant(name, round(value, 1), round(value / median_rps["bare"], 3), repeats)
            for name, value in median_rps.items()
        ],
    )
    for variant in ("renderkit edge (html)", "renderkit edge (api)"):
        result.check(
            Target(f"{variant} keeps ≥ 85% of bare req/s", variant, "bare", min_ratio=0.85),
            median_rps[variant] / median_rps["bare"],
        )
    result.note = (
        "The 'median (µs)' column holds requests per second here (higher is better). uvicorn "
        "runs one worker (httptools when installed, --no-server-header --no-date-header), "
        "pinned to CPU 0 and wrk to CPU 1 when taskset is there. 'bare + the same headers' "
        "adds the edge stack's headers from one precomputed list: the server's own cost for "
        "writing them, which bounds what any edge stack sending them can keep."
    )
    results = [result]
    if all(cpu.values()):
        median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
        cpu_result = Result(
            benchmark="uvicorn CPU time per request under wrk (µs, median; less noisy than req/s)",
            baseline="bare",
            variants=[
                Variant(name, round(value, 1), round(value / median_cpu["bare"], 3), repeats)
                for name, value in median_cpu.items()
            ],
        )
        cpu_result.note = (
            "Server process user+system CPU over the run divided by requests served. With one "
            "worker saturated, bare/variant of this column is the req/s ratio a quiet machine "
            "would show."
        )
        results.append(cpu_result)
    return results


def run() -> list[Result]:
    results = [in_process()]
    if "--wrk" in sys.argv:
        results.extend(wrk())
    return results


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    report(run(), "edge")
