"""The examples/ apps work as their docstrings say (through TestClient / Flask's test_client)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _examples_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))


def csp_nonce(csp: str) -> str:
    match = re.search(r"'nonce-([A-Za-z0-9_-]+)'", csp)
    assert match, csp
    return match.group(1)


@pytest.fixture
def fastapi_client() -> Iterator[TestClient]:
    module = importlib.import_module("examples.fastapi_app")
    app = module.create_app({})  # zero configuration: no env var at all
    with TestClient(app) as client:
        yield client


def test_fastapi_home_page_uses_the_csp_nonce(fastapi_client: TestClient) -> None:
    """The page's inline script and style carry this response's CSP nonce, fresh per request."""
    first = fastapi_client.get("/")
    second = fastapi_client.get("/")
    assert first.status_code == 200
    nonce = csp_nonce(first.headers["content-security-policy"])
    assert f'<script nonce="{nonce}">' in first.text
    assert f'<style nonce="{nonce}">' in first.text
    assert "__NONCE__" not in first.text
    assert nonce != csp_nonce(second.headers["content-security-policy"])
    assert first.headers["x-request-id"] in first.text
    assert first.headers["cache-control"].startswith("private")  # a nonce is never shared


def test_fastapi_cache_route_computes_once(fastapi_client: TestClient) -> None:
    """The second call of the slow route is a cache hit."""
    first = fastapi_client.get("/api/slow-square/12").json()
    second = fastapi_client.get("/api/slow-square/12").json()
    assert first["result"] == second["result"] == {"n": 12, "square": 144}
    assert second["cache"]["hits"] > first["cache"]["hits"]
    assert second["cache"]["sets"] == first["cache"]["sets"] == 1


def test_fastapi_limited_route_answers_429_on_the_sixth_call(fastapi_client: TestClient) -> None:
    """Five calls a minute pass with RateLimit headers; the sixth gets 429 and Retry-After."""
    codes = [fastapi_client.get("/api/limited") for _ in range(6)]
    assert [r.status_code for r in codes] == [200] * 5 + [429]
    assert "ratelimit" in codes[0].headers
    assert "ratelimit-policy" in codes[0].headers
    assert int(codes[-1].headers["retry-after"]) > 0
    assert codes[-1].headers["x-request-id"]  # the 429 still carries the edge headers
    assert "content-security-policy" in codes[-1].headers


def test_fastapi_health_and_metrics(fastapi_client: TestClient) -> None:
    """Every health endpoint answers health+json; metrics count the requests per route."""
    for path in ("/health", "/health/live", "/health/ready", "/health/instance"):
        response = fastapi_client.get(path)
        assert response.status_code == 200, path
        assert "json" in response.headers["content-type"], path
        assert response.json()["status"] == "healthy"
    assert "ratelimit" not in fastapi_client.get("/health").headers  # health is exempt
    fastapi_client.get("/api/slow-square/3")
    snapshot = fastapi_client.get("/metrics/json").json()
    routes = {r["route"] for r in snapshot["routes"]}
    assert "/api/slow-square/{n}" in routes
    assert "renderkit_http_requests_total" in fastapi_client.get("/metrics").text


def test_fastapi_docs_still_render(fastapi_client: TestClient) -> None:
    """FastAPI's /docs gets the relaxed CSP its CDN assets need."""
    response = fastapi_client.get("/docs")
    assert response.status_code == 200
    assert "cdn.jsdelivr.net" in response.headers["content-security-policy"]


def test_fastapi_production_redirects_plain_http() -> None:
    """In production (APP_ENV=production) plain http is redirected; health is exempt."""
    module = importlib.import_module("examples.fastapi_app")
    app = module.create_app({"APP_ENV": "production", "SESSION_SECRET": "x" * 64})
    with TestClient(app) as client:
        response = client.get("/", follow_redirects=False)
        assert response.status_code in (301, 308)
        assert response.headers["location"].startswith("https://")
        assert client.get("/health", follow_redirects=False).status_code == 200


def test_fastapi_example_imports_with_no_environment() -> None:
    """`uvicorn examples.fastapi_app:app` needs no env var: importing it in a bare env works."""
    result = subprocess.run(
        [sys.executable, "-c", "import examples.fastapi_app as m; print(type(m.app).__name__)"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "FastAPI"
