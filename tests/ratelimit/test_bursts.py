"""Exact under bursts: several uvicorn workers on one real Redis let exactly the limit through.

Each trial is a burst of concurrent connections (32 or 64) against a 30/minute limit, from a
fresh client identity (the ``X-Trial`` header is the key), so trials never share a counter.
Fixed windows (they start at the first hit): a sliding-window counter estimates the previous
window's requests as spread evenly, so a trial that straddles a minute boundary by seconds may
rightly let one more through. The endpoint holds the event loop for 10 ms, as a CPU-bound
handler does, so Redis replies wait behind other requests. That used to open the breaker (the
Redis timeout counted time spent queued behind the event loop) and the memory fallback then
let extra requests through.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _uvicorn_server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

LIMIT = 30
TRIALS = 5

_APP = """
import time

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from renderkit.ratelimit import RateLimiter, RateLimitMiddleware

async def ok(request):
    time.sleep(0.01)  # a handler that keeps the event loop busy
    return PlainTextResponse("ok")

limiter = RateLimiter(
    {url!r}, default="{limit}/minute", key_prefix={prefix!r}, strategy="fixed-window"
)
app = Starlette(routes=[Route("/", ok)])
app.add_middleware(
    RateLimitMiddleware, limiter=limiter, key=lambda request: request.header("x-trial")
)
"""


@contextlib.contextmanager
def _workers(source: str, directory: Path, workers: int) -> Iterator[str]:
    module = f"rl_burst_{workers}"
    (directory / f"{module}.py").write_text(textwrap.dedent(source))
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(directory),
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--log-level", "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("uvicorn did not start listening within 30 s")
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        assert process.stderr is not None
        process.stderr.close()


async def _burst(url: str, connections: int, trial: str) -> list[int]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        # Every worker answers once first, so the burst measures counting, not start-up.
        await asyncio.gather(*(client.get(url, headers={"x-trial": "warm"}) for _ in range(8)))

        async def one() -> int:
            return (await client.get(url, headers={"x-trial": trial})).status_code

        return list(await asyncio.gather(*(one() for _ in range(2 * connections))))


@pytest.mark.parametrize("workers", [2, 4])
async def test_bursts_let_exactly_the_limit_through(
    renderkit_redis_url: str, tmp_path: Path, workers: int
) -> None:
    """2 and 4 workers, bursts of 32 and 64 connections, 5 trials each: exactly 30 pass."""
    prefix = f"rk-burst-{uuid.uuid4().hex[:8]}"
    source = _APP.format(url=renderkit_redis_url, limit=LIMIT, prefix=prefix)
    passed: dict[tuple[int, int], int] = {}
    with _workers(source, tmp_path, workers) as url:
        for connections in (32, 64):
            for trial in range(TRIALS):
                codes = await _burst(url, connections, f"{connections}-{trial}")
                assert set(codes) <= {200, 429}, codes
                passed[(connections, trial)] = codes.count(200)
    assert passed == {key: LIMIT for key in passed}
