"""The full HTTP edge stack on a Starlette app.

Run: ``uvicorn examples.edge_starlette:app --no-server-header`` then
``curl -i localhost:8000/items/7``, ``curl -i localhost:8000/metrics``, and
``curl -i -H 'X-Forwarded-Proto: http' localhost:8000/`` with ``FORCE_HTTPS=1`` set.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

from renderkit.correlation import CorrelationIdFilter, CorrelationIdMiddleware, get_correlation_id
from renderkit.metrics import RequestMetrics, RequestMetricsMiddleware
from renderkit.resilience import TimeoutMiddleware
from renderkit.security import (
    HTTPSRedirectMiddleware,
    SecurityHeadersMiddleware,
    https_redirect_enabled,
)

handler = logging.StreamHandler()
handler.addFilter(CorrelationIdFilter())
handler.setFormatter(logging.Formatter("%(levelname)s [%(correlation_id)s] %(name)s: %(message)s"))
logging.basicConfig(level=logging.INFO, handlers=[handler])
log = logging.getLogger("example")


async def home(request: Request) -> HTMLResponse:
    nonce = request.state.csp_nonce
    return HTMLResponse(
        "<!doctype html><title>renderkit</title><p id=msg>script blocked</p>"
        f"<script nonce='{nonce}'>"
        "document.getElementById('msg').textContent='nonce works';</script>"
    )


async def item(request: Request) -> JSONResponse:
    log.info("looking up item %s", request.path_params["item_id"])
    return JSONResponse({"id": request.path_params["item_id"], "request_id": get_correlation_id()})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


metrics = RequestMetrics(slow_threshold=1.0)
app = Starlette(
    routes=[
        Route("/", home),
        Route("/items/{item_id:int}", item),
        Route("/health", health),
        *metrics.routes("/metrics"),
    ]
)
# Added last = outermost: the request id is bound first and on every response.
app.add_middleware(TimeoutMiddleware, timeout=30)
if https_redirect_enabled():  # this app decides by environment; the middleware never does
    app.add_middleware(HTTPSRedirectMiddleware)
app.add_middleware(SecurityHeadersMiddleware)
app.add_middleware(RequestMetricsMiddleware, metrics=metrics, exclude_paths=["/metrics/*"])
app.add_middleware(CorrelationIdMiddleware)
