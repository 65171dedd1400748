"""The CSP nonce in a real browser (Debian's chromium) and the edge stack under a real uvicorn."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from _uvicorn_server import serve
from renderkit.testing import require_services

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
)

APP = """
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from renderkit._http import ProxyTrust
from renderkit.correlation import CorrelationIdMiddleware
from renderkit.metrics import RequestMetricsMiddleware
from renderkit.resilience import TimeoutMiddleware
from renderkit.security import SecurityHeadersMiddleware


async def page(request):
    nonce = request.state.csp_nonce
    return HTMLResponse(
        "<!doctype html><html><body>"
        "<div id='with-nonce'>blocked</div><div id='without-nonce'>blocked</div>"
        f"<script nonce='{nonce}'>document.getElementById('with-nonce').textContent='ran';</script>"
        "<script>document.getElementById('without-nonce').textContent='ran';</script>"
        "</body></html>"
    )


async def boom(request):
    raise RuntimeError("handler failed on purpose")


app = Starlette(routes=[Route("/", page), Route("/boom", boom)])
app.add_middleware(TimeoutMiddleware, timeout=5)
app.add_middleware(SecurityHeadersMiddleware, trust=ProxyTrust.none())
app.add_middleware(RequestMetricsMiddleware)
app.add_middleware(CorrelationIdMiddleware)
"""


@pytest.mark.e2e
def test_unhandled_500_under_uvicorn_carries_the_request_id(tmp_path: Path) -> None:
    """Under a real uvicorn a raising handler's 500 still has X-Request-ID and the headers."""
    with serve(APP, tmp_path) as base:
        response = httpx.get(f"{base}/boom", headers={"X-Request-ID": "uvicorn-500"}, timeout=10)
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "uvicorn-500"
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.e2e
@pytest.mark.browser
def test_nonced_inline_script_runs_and_the_other_is_blocked(tmp_path: Path) -> None:
    """Chromium runs the inline script carrying the nonce and blocks the one without it."""
    if CHROMIUM is None:
        if require_services():
            pytest.fail("chromium is not installed (CI=true: the browser test must not skip)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    profile = tmp_path / "profile"
    with serve(APP, tmp_path) as base:
        result = subprocess.run(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--dump-dom", f"{base}/",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
    dom = result.stdout
    assert '<div id="with-nonce">ran</div>' in dom, (dom, result.stderr[-2000:])
    assert '<div id="without-nonce">blocked</div>' in dom, dom
