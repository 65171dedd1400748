"""The examples/ apps work as their docstrings say (through TestClient / Flask's test_client)."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    app = module.create_app({}, logs=False)  # zero configuration: no env var at all
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


def test_fastapi_session_counts_visits(fastapi_client: TestClient) -> None:
    """The session cookie carries the counters across requests; a new client starts over."""
    first = fastapi_client.post("/api/visits")
    assert first.json()["visits"] == 1
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    second = fastapi_client.post("/api/visits")
    assert second.json()["visits"] == 2
    assert "set-cookie" not in second.headers  # the id did not change: no cookie re-sent
    fastapi_client.get("/")
    assert fastapi_client.get("/api/visits").json() == {"views": 1, "visits": 2}
    fastapi_client.cookies.clear()
    assert fastapi_client.get("/api/visits").json() == {"views": 0, "visits": 0}


def test_fastapi_production_needs_session_secret() -> None:
    """In production without SESSION_SECRET the app refuses to start, naming the variable."""
    module = importlib.import_module("examples.fastapi_app")
    app = module.create_app({"APP_ENV": "production"}, logs=False)
    with pytest.raises(Exception, match="SESSION_SECRET"), TestClient(app) as client:
        client.get("/health")


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
    text = fastapi_client.get("/metrics").text  # OpenTelemetry's HTTP semantic-convention names
    assert "http_server_request_duration_seconds_count{" in text
    assert 'http_route="/api/slow-square/{n}"' in text


def test_fastapi_docs_still_render(fastapi_client: TestClient) -> None:
    """FastAPI's /docs gets the relaxed CSP its CDN assets need."""
    response = fastapi_client.get("/docs")
    assert response.status_code == 200
    assert "cdn.jsdelivr.net" in response.headers["content-security-policy"]


def test_fastapi_production_redirects_plain_http() -> None:
    """In production (APP_ENV=production) plain http is redirected; health is exempt."""
    module = importlib.import_module("examples.fastapi_app")
    app = module.create_app({"APP_ENV": "production", "SESSION_SECRET": "x" * 64}, logs=False)
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


# --- Flask ---------------------------------------------------------------------------------


class BufferedClient:
    """Flask's test client, reading and closing every response as a WSGI server does.

    An unclosed response keeps the request's correlation id bound in the test's context
    (the WSGI middleware resets it when the server closes the body).
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.client.get(*args, buffered=True, **kwargs)

    def post(self, *args: Any, **kwargs: Any) -> Any:
        return self.client.post(*args, buffered=True, **kwargs)


@pytest.fixture
def flask_client() -> BufferedClient:
    module = importlib.import_module("examples.flask_app")
    return BufferedClient(module.create_app({}).test_client())


def test_flask_home_page_uses_the_csp_nonce(flask_client: Any) -> None:
    """The Flask page carries this response's nonce and request id, with A+ headers."""
    response = flask_client.get("/")
    assert response.status_code == 200
    nonce = csp_nonce(response.headers["Content-Security-Policy"])
    assert f'<script nonce="{nonce}">' in response.get_data(as_text=True)
    assert response.headers["X-Request-ID"] in response.get_data(as_text=True)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_flask_cache_limits_and_health(flask_client: Any) -> None:
    """Cache hit on the second call, 429 on the sixth limited call, health endpoints up."""
    first = flask_client.get("/api/slow-square/7").json
    second = flask_client.get("/api/slow-square/7").json
    assert first["result"] == {"n": 7, "square": 49}
    assert second["cache"]["hits"] > first["cache"]["hits"]
    codes = [flask_client.get("/api/limited").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    for path in ("/health", "/health/live", "/health/ready", "/health/instance"):
        response = flask_client.get(path)
        assert response.status_code == 200, path
        assert response.json["status"] == "healthy"


def test_flask_session_counts_visits(flask_client: Any) -> None:
    """Flask's session is renderkit's server-side one: the counter survives requests."""
    first = flask_client.post("/api/visits")
    assert first.json["visits"] == 1
    assert "httponly" in first.headers["Set-Cookie"].lower()
    assert flask_client.post("/api/visits").json["visits"] == 2
    flask_client.get("/")
    assert flask_client.get("/api/visits").json == {"views": 1, "visits": 2}


@pytest.mark.e2e
def test_flask_example_under_gunicorn_drains_on_sigterm(tmp_path: Path) -> None:
    """gunicorn with the example config serves the app and exits cleanly on SIGTERM."""
    import signal
    import socket
    import time

    import httpx

    from _uvicorn_server import free_port

    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "examples/gunicorn.conf.py",
             "--workers", "1", "examples.flask_app:app"],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "PORT": str(port), "APP_ENV": "development"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while True:
                assert process.poll() is None, log.read_text()[-2000:]
                try:
                    with socket.create_connection(("127.0.0.1", port), 0.2):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "gunicorn did not listen within 20 s"
                    time.sleep(0.05)
            response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            assert response.status_code == 200
            assert response.json()["status"] == "healthy"
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).headers["x-request-id"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
    text = log.read_text()
    assert "shutdown" in text  # renderkit's coordinator ran its hooks in the worker


# --- Starlette, one module -----------------------------------------------------------------


def test_starlette_minimal_adopts_health_alone() -> None:
    """The minimal app serves the four health endpoints; importing it pulls in no other module."""
    module = importlib.import_module("examples.starlette_minimal")
    with TestClient(module.app) as client:
        assert client.get("/").status_code == 200
        for path in ("/health", "/health/live", "/health/ready", "/health/instance"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.json()["status"] == "healthy"
    code = (
        "import json, sys, examples.starlette_minimal; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('renderkit.'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert not loaded & {"renderkit.cache", "renderkit.sessions", "renderkit.ratelimit"}


@pytest.mark.integration
def test_fastapi_with_real_postgres(renderkit_database_url: str) -> None:
    """With DATABASE_URL the example opens Postgres, checks it and serves /api/db-time."""
    module = importlib.import_module("examples.fastapi_app")
    app = module.create_app({"DATABASE_URL": renderkit_database_url}, logs=False)
    with TestClient(app) as client:
        assert client.get("/api/db-time").status_code == 200
        assert client.get("/api/db-time").json()["now"]
        assert client.get("/health").json()["status"] == "healthy"


def test_fastapi_db_route_without_database(fastapi_client: TestClient) -> None:
    """Without DATABASE_URL the database route says which variable enables it."""
    response = fastapi_client.get("/api/db-time")
    assert response.status_code == 404
    assert "DATABASE_URL" in response.json()["detail"]
