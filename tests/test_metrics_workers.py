"""Metrics add up across worker processes: uvicorn --workers 2 and gunicorn with 2 workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from _uvicorn_server import _stop, _wait_listening, free_port

pytestmark = [pytest.mark.e2e]

ASGI_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from renderkit.metrics import RequestMetrics, RequestMetricsMiddleware

metrics = RequestMetrics.from_env(public=True)


async def item(request):
    return PlainTextResponse(str(__import__("os").getpid()))


app = Starlette(routes=[Route("/items/{item_id}", item), *metrics.routes("/metrics")])
app.add_middleware(
    RequestMetricsMiddleware, metrics=metrics, exclude_paths=["/metrics", "/metrics/*"]
)
"""

WSGI_APP = """
import os

from renderkit.metrics import RequestMetrics
from renderkit.wsgi import RequestMetricsMiddleware


metrics = RequestMetrics.from_env(public=True)


def inner(environ, start_response):
    if environ["PATH_INFO"] == "/metrics/json":
        body, ctype = metrics.render("json")
    else:
        body, ctype = str(os.getpid()).encode(), b"text/plain"
    start_response("200 OK", [("Content-Type", ctype.decode())])
    return [body]


app = RequestMetricsMiddleware(inner, metrics=metrics, exclude_paths=["/metrics", "/metrics/*"])
"""

SENT = 60


def start(command: list[str], tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "APP_ENV": "development"}
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _wait_listening(process, port)
    return process


def hammer(base: str) -> tuple[set[str], dict[str, object]]:
    """Send SENT requests on fresh connections (so both workers serve), then read totals."""
    pids = set()
    for i in range(SENT):
        with httpx.Client(base_url=base, timeout=10) as client:
            response = client.get(f"/items/{i}")
            assert response.status_code == 200
            pids.add(response.text)
    totals = []
    for _ in range(6):  # whichever worker answers, the totals are the same
        with httpx.Client(base_url=base, timeout=10) as client:
            totals.append(client.get("/metrics/json").json()["requests"])
    return pids, {"totals": totals}


def test_uvicorn_two_workers_count_every_request(tmp_path: Path) -> None:
    """60 requests spread over 2 uvicorn workers: /metrics/json says 60 from either worker."""
    (tmp_path / "asgi_app.py").write_text(textwrap.dedent(ASGI_APP))
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "asgi_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "2", "--log-level", "warning",
    ]  # fmt: skip
    process = start(command, tmp_path, port)
    try:
        pids, seen = hammer(f"http://127.0.0.1:{port}")
    finally:
        _stop(process)
    assert len(pids) == 2, "both workers should have served requests"
    assert seen["totals"] == [SENT] * 6


def test_gunicorn_two_workers_count_every_request(tmp_path: Path) -> None:
    """The same through gunicorn's sync workers and the WSGI middleware."""
    (tmp_path / "wsgi_app.py").write_text(textwrap.dedent(WSGI_APP))
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "wsgi_app:app", "--bind", f"127.0.0.1:{port}",
        "--workers", "2", "--log-level", "warning",
    ]  # fmt: skip
    process = start(command, tmp_path, port)
    try:
        pids, seen = hammer(f"http://127.0.0.1:{port}")
    finally:
        _stop(process)
    assert len(pids) == 2, "both workers should have served requests"
    assert seen["totals"] == [SENT] * 6
