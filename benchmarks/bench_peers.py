"""The full renderkit stack against the peer stack an app would otherwise assemble.

Variants, one Starlette route that adds one to a counter in the session:

- ``bare``: the app with Starlette's own cookie ``SessionMiddleware`` (the route needs a
  session), nothing else.
- ``renderkit stack``: CorrelationIdMiddleware + SecurityHeadersMiddleware (HTML preset, fresh
  CSP nonce) + RateLimitMiddleware (memory) + renderkit ``SessionMiddleware`` (MemoryStore).
- ``peer stack``: asgi-correlation-id + secure's ASGI middleware + slowapi's
  ``SlowAPIASGIMiddleware`` (memory) + starsessions (InMemoryStore, autoload).

Both rate limiters do the same work: the same limit, renderkit's default strategy (sliding
window counter; slowapi's own default is the fixed window) and rate-limit headers on every
response (renderkit's default; slowapi's ``headers_enabled``).

In-process (ASGI calls built by hand, each client keeping its session cookie) and, with
``--wrk`` or from ``run_all.py``, whole-app throughput under uvicorn with ``wrk -c32``.
Targets (issue 9): the renderkit stack adds at most 0.4x the peer stack's per-request overhead
in-process, and keeps at least 80% of bare Starlette's requests per second under wrk.
Needs ``pip install 'renderkit[bench]'`` (asgi-correlation-id, secure, slowapi, starsessions).
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

from _harness import Result, Target, Variant, asgi_caller, measure, report
from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware as StarletteSessions
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SECRET = "bench-secret-" + "k" * 40
LIMIT = "1000000/minute"
STRATEGY = "sliding-window-counter"  # renderkit's default, given to both rate limiters


async def counter(request: Request) -> JSONResponse:
    session = request.session
    session["n"] = int(session.get("n", 0)) + 1
    return JSONResponse({"n": session["n"]})


def _routes() -> list[Route]:
    return [Route("/count", counter)]


def bare_app() -> Starlette:
    app = Starlette(routes=_routes())
    app.add_middleware(StarletteSessions, secret_key=SECRET, https_only=False)
    return app


def renderkit_app() -> Starlette:
    from renderkit.correlation import CorrelationIdMiddleware
    from renderkit.ratelimit import RateLimiter, RateLimitMiddleware
    from renderkit.security import SecurityHeadersMiddleware
    from renderkit.sessions import MemoryStore, SessionMiddleware

    app = Starlette(routes=_routes())
    app.add_middleware(SessionMiddleware, store=MemoryStore(), secret_key=SECRET, https_only=False)
    limiter = RateLimiter("memory://", default=LIMIT, strategy=STRATEGY)
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(CorrelationIdMiddleware)
    return app


def peer_app() -> Starlette:
    from asgi_correlation_id import CorrelationIdMiddleware as PeerCorrelation
    from secure.middleware import SecureASGIMiddleware
    from slowapi import Limiter
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address
    from starsessions import InMemoryStore, SessionAutoloadMiddleware
    from starsessions import SessionMiddleware as StarSessions

    app = Starlette(routes=_routes())
    app.state.limiter = Limiter(
        key_func=get_remote_address,
        default_limits=[LIMIT],
        strategy=STRATEGY,
        headers_enabled=True,
        storage_uri="memory://",
    )
    app.add_middleware(SessionAutoloadMiddleware)
    app.add_middleware(StarSessions, store=InMemoryStore(), cookie_https_only=False)
    app.add_middleware(SlowAPIASGIMiddleware)
    app.add_middleware(SecureASGIMiddleware)
    app.add_middleware(PeerCorrelation)
    return app


def caller(app: Any) -> Any:
    """An ASGI caller that keeps the session cookie between calls, like a browser."""
    headers = [(b"host", b"example.com"), (b"user-agent", b"bench/1.0")]
    return asgi_caller(
        app, "/count", headers=headers, scheme="https", keep_cookie=True, expect_status=200
    )


async def _lifespan(app: Any) -> None:
    # Build the middleware stack once, outside the timings.
    await caller(app)()


def in_process() -> Result:
    apps = {"bare": bare_app(), "renderkit stack": renderkit_app(), "peer stack": peer_app()}
    loop = asyncio.new_event_loop()
    for app in apps.values():
        loop.run_until_complete(_lifespan(app))
    result = measure(
        "Full stack (edge + rate limit + sessions), in-process ASGI call",
        {name: caller(app) for name, app in apps.items()},
        baseline="bare",
        rounds=15,
        number=300,
        loop=loop,
    )
    loop.close()
    result.check(
        Target(
            "renderkit stack adds ≤ 0.4x the peer stack's overhead",
            "renderkit stack",
            "peer stack",
            max_ratio=0.4,
        ),
        result.overhead_ratio("renderkit stack", "peer stack", "bare"),
    )
    result.note = (
        "Overhead ratio = (renderkit stack - bare) / (peer stack - bare); bare already carries "
        "Starlette's signed-cookie SessionMiddleware. Both stacks keep server-side sessions in "
        "memory and count every request against the same memory rate limit with the same "
        f"strategy ({STRATEGY}) and send rate-limit headers; each variant keeps its session "
        "cookie, so every call loads, changes and saves one session."
    )
    return result


WRK_APP = """
from bench_peers import bare_app, peer_app, renderkit_app
app = {factory}()
"""

WRK_LUA = """
local cookie = nil
response = function(status, headers, body)
  local c = headers["set-cookie"] or headers["Set-Cookie"]
  if c then cookie = string.match(c, "^[^;]+") end
end
request = function()
  if cookie then
    return wrk.format("GET", "/count", {["Cookie"] = cookie})
  end
  return wrk.format("GET", "/count")
end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wrk_rps(factory: str, seconds: int, tmp: str) -> float:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{Path(__file__).parent}"}
    Path(tmp, f"wrk_{factory}.py").write_text(WRK_APP.format(factory=factory))
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"wrk_{factory}:app", "--port", str(port),
         "--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"],
        env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        out = subprocess.run(
            ["wrk", "-t2", "-c32", f"-d{seconds}s", "-s", str(Path(tmp, "cookie.lua")),
             f"http://127.0.0.1:{port}/count"],
            capture_output=True, text=True, timeout=seconds + 30, check=True,
        ).stdout  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)
    if re.search(r"Non-2xx or 3xx responses", out):
        raise RuntimeError(f"{factory} answered errors under wrk:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def wrk(seconds: int = 4, repeats: int = 3) -> Result | None:
    if shutil.which("wrk") is None:
        return None
    factories = {"bare": "bare_app", "renderkit stack": "renderkit_app", "peer stack": "peer_app"}
    rps: dict[str, list[float]] = {name: [] for name in factories}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "cookie.lua").write_text(WRK_LUA)
        for _ in range(repeats):  # interleaved: bare, renderkit, peer, bare, ...
            for name, factory in factories.items():
                rps[name].append(_wrk_rps(factory, seconds, tmp))
    best = {name: max(values) for name, values in rps.items()}
    result = Result(
        benchmark=(
            f"Full stack under uvicorn: wrk -t2 -c32 -d{seconds}s, requests/second "
            f"(best of {repeats} interleaved runs)"
        ),
        baseline="bare",
        variants=[
            Variant(name, round(value, 1), round(value / best["bare"], 3), repeats)
            for name, value in best.items()
        ],
    )
    result.check(
        Target("renderkit stack keeps ≥ 80% of bare req/s", "renderkit stack", "bare",
               min_ratio=0.8),
        best["renderkit stack"] / best["bare"],
    )  # fmt: skip
    result.note = (
        "The 'median (µs)' column holds requests per second here (higher is better); the "
        "ratio is to bare. One uvicorn worker; wrk shares the 2 cores; every wrk connection "
        "keeps its session cookie (a Lua script), so each request loads and saves a session. "
        f"All runs: {', '.join(f'{n}: {[round(v) for v in vs]}' for n, vs in rps.items())}."
    )
    return result


def run() -> list[Result]:
    results = [in_process()]
    extra = wrk()
    if extra is not None:
        results.append(extra)
    return results


if __name__ == "__main__":
    if "--no-wrk" in sys.argv:
        report([in_process()], "peers")
    else:
        report(run(), "peers")
