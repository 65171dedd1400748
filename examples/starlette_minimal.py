"""Adopting one module alone: ``renderkit.health`` in a plain Starlette app.

Run: ``uvicorn examples.starlette_minimal:app`` then ``curl -i localhost:8000/health``.

Nothing else of renderkit is imported: no middleware, no config. The registry runs both
checks concurrently, each under its own timeout, caches the report for a second, answers
``application/health+json``, and shows per-check detail only to loopback callers (or with
``HEALTH_TOKEN``). Give Render ``/health/instance`` as the health check path.
"""

from __future__ import annotations

import asyncio
import shutil

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from renderkit.health import CheckResult, Health


async def upstream_api() -> CheckResult:
    """A dependency check: a real app would call its payment provider's status endpoint."""
    await asyncio.sleep(0.01)
    return CheckResult.healthy("reachable", latency_ms=10)


def scratch_space() -> bool:
    """A sync check (run in a thread): fail when /tmp has under 100 MB free."""
    return shutil.disk_usage("/tmp").free > 100 * 1024 * 1024


health = Health()
health.add("upstream-api", upstream_api, critical=False, timeout=2.0)
health.add("scratch-space", scratch_space, critical=True)


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello from a Starlette app with renderkit.health\n")


app = Starlette(routes=[Route("/", home), *health.routes(prefix="/health")])
