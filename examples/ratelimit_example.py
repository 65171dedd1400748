"""Rate limiting a Starlette app: tiers, a per-route rule, health exempt, Redis or memory.

Run:  REDIS_URL=redis://127.0.0.1:6379/0 uvicorn examples.ratelimit_example:app
      (without REDIS_URL the limiter counts in process memory)
Try:  for i in $(seq 5); do curl -si localhost:8000/ | grep -i ratelimit; done
      curl -si -X POST localhost:8000/analyses -H 'x-plan: pro'
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from renderkit.platform import detect
from renderkit.proxy import ProxyTrust
from renderkit.ratelimit import (
    RateLimiter,
    RateLimitMiddleware,
    RateLimitPolicy,
    RequestInfo,
    Rule,
    limit,
)

limiter = RateLimiter.from_env()  # RATELIMIT_STORAGE_URL / REDIS_URL, else memory://


def plan(request: RequestInfo) -> str:
    """The tier of a request; a real app looks the API key up instead of trusting a header."""
    return "pro" if request.header("x-plan") == "pro" else "free"


async def home(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


async def analyses(request: Request) -> JSONResponse:
    return JSONResponse({"analysis": "queued"}, status_code=202)


@limit("3/minute", limiter=limiter)  # replaces the tier default on this route
async def export(request: Request) -> JSONResponse:
    return JSONResponse({"export": "ready"})


async def health(request: Request) -> JSONResponse:
    check = limiter.health_check()
    return JSONResponse({"status": check.status, "ratelimit": limiter.stats()})


policy = RateLimitPolicy(
    limiter,
    # Behind Render's Cloudflare + proxy chain key on the real client; locally, the TCP peer.
    trust=ProxyTrust.for_provider(detect().provider),
    tiers={"free": "100/hour", "pro": "1000/hour"},
    tier=plan,
    rules=[Rule("/analyses", {"free": "10/day", "pro": "100/day"}, methods=["POST"])],
    legacy_headers=True,
)

app = Starlette(
    routes=[
        Route("/", home),
        Route("/analyses", analyses, methods=["POST"]),
        Route("/export", export),
        Route("/health", health),
    ]
)
app.add_middleware(RateLimitMiddleware, policy=policy)
