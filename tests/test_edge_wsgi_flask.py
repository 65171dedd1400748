"""Tests for the WSGI edge middleware and the Flask ``RenderKit`` extension."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from flask import Flask, g, render_template_string

from renderkit._context import correlation_id_var
from renderkit.correlation import CorrelationIdFilter, get_correlation_id
from renderkit.flask import RenderKit, RenderKitState
from renderkit.metrics import UNMATCHED_ROUTE, RequestMetrics
from renderkit.proxy import ProxyTrust
from renderkit.security import SecurityHeaders
from renderkit.wsgi import (
    CorrelationIdMiddleware,
    HTTPSRedirectMiddleware,
    RequestMetricsMiddleware,
    SecurityHeadersMiddleware,
)
from test_security import assert_observatory_a_plus, parse_csp

PROXY = ProxyTrust(hops=1)


@pytest.fixture(autouse=True)
def _fresh_correlation_context() -> Iterator[None]:
    # Flask's test client closes a response only when the test does; start each test clean.
    token = correlation_id_var.set(None)
    yield
    correlation_id_var.reset(token)


def make_flask(**options: Any) -> tuple[Flask, RenderKit]:
    app = Flask(__name__)

    @app.get("/users/<int:uid>")
    def user(uid: int) -> str:
        return render_template_string(
            '<script nonce="{{ csp_nonce }}">1</script>{{ request_id }}|{{ g.csp_nonce }}|'
            + str(g.request_id)
            + "|"
            + str(get_correlation_id())
        )

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("handler failed")

    @app.get("/health")
    def health() -> str:
        return "ok"

    options.setdefault("trust", PROXY)
    options.setdefault("environ", {"APP_ENV": "development"})
    return app, RenderKit(app, **options)


def closed(response: Any) -> Any:
    response.close()  # the server closes the body: that is when metrics record and ids reset
    return response


def test_flask_scores_a_plus_and_exposes_ids_to_handlers_and_templates() -> None:
    """Headers meet the Observatory rules; g.request_id, g.csp_nonce and the Jinja global work."""
    app, _ = make_flask()
    client = app.test_client()
    response = closed(
        client.get(
            "/users/5",
            base_url="https://localhost",
            headers={"X-Request-ID": "flask-1"},
        )
    )
    assert_observatory_a_plus(response.headers)
    nonce = response.text.split('nonce="')[1].split('"')[0]
    assert (
        f"'nonce-{nonce}'" in parse_csp(response.headers["Content-Security-Policy"])["script-src"]
    )
    assert response.text.endswith(f"flask-1|{nonce}|flask-1|flask-1")
    assert response.headers["X-Request-ID"] == "flask-1"
    assert response.headers["Cache-Control"] == "private"
    assert get_correlation_id() is None


def test_flask_500_carries_id_and_headers_and_counts_the_error() -> None:
    """A raising view answers 500 with the id and security headers; metrics count it."""
    app, _ = make_flask()
    app.logger.disabled = True
    response = closed(app.test_client().get("/boom", headers={"X-Request-ID": "boom-1"}))
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "boom-1"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    state: RenderKitState = app.extensions["renderkit"]
    assert state.metrics is not None
    snap = state.metrics.snapshot()
    boom = next(r for r in snap["routes"] if r["route"] == "/boom")
    assert boom["errors"] == 1


def test_flask_metrics_use_the_url_rule_and_serve_endpoints() -> None:
    """Routes are labelled by URL rule; /metrics and /metrics/json serve them."""
    app, _ = make_flask(metrics_token="tok")
    client = app.test_client()
    for uid in range(3):
        closed(client.get(f"/users/{uid}"))
    closed(client.get("/nope/1"))
    assert client.get("/metrics").status_code == 401
    text = client.get("/metrics", headers={"Authorization": "Bearer tok"}).text
    assert 'http_response_status_code="200",http_route="/users/<int:uid>"} 3.0' in text
    assert f'http_response_status_code="404",http_route="{UNMATCHED_ROUTE}"}} 1.0' in text
    data = client.get("/metrics/json", headers={"Authorization": "Bearer tok"}).json
    assert data["requests"] >= 4


def test_https_redirect_is_on_in_production_only_and_exempts_health() -> None:
    """RenderKit decides by environment; FORCE_HTTPS overrides; /health stays reachable."""
    prod, _ = make_flask(environ={"APP_ENV": "production"})
    client = prod.test_client()
    response = client.get("/users/1?x=1", headers={"X-Forwarded-Proto": "http"})
    assert response.status_code == 301
    assert response.headers["Location"] == "https://localhost/users/1?x=1"
    assert response.headers["X-Request-ID"]  # the redirect passes through the edge stack
    assert client.post("/users/1").status_code == 308
    assert client.get("/health").status_code == 200
    dev, _ = make_flask()
    assert dev.test_client().get("/users/1").status_code == 200
    forced, _ = make_flask(environ={"APP_ENV": "development", "FORCE_HTTPS": "1"})
    assert forced.test_client().get("/users/1").status_code == 301
    off, _ = make_flask(environ={"APP_ENV": "production"}, https_redirect=False)
    assert off.test_client().get("/users/1").status_code == 200


def test_init_app_factory_pattern_and_options() -> None:
    """RenderKit().init_app(app) works; a second init on one app raises; hooks are no-ops."""
    ext = RenderKit(
        security=SecurityHeaders.api(), metrics=False, trust=PROXY, environ={"APP_ENV": "test"}
    )
    app = Flask(__name__)
    app.add_url_rule("/", "index", lambda: "x")
    ext.init_app(app)
    state = app.extensions["renderkit"]
    assert state.extension is ext and state.metrics is None
    response = closed(app.test_client().get("/"))
    assert (
        response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert app.test_client().get("/metrics").status_code == 404
    with pytest.raises(RuntimeError, match="already initialised"):
        ext.init_app(app)
    with pytest.raises(TypeError, match="security"):
        RenderKit(security="strict")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metrics_path"):
        RenderKit(metrics_path="metrics")


def test_hooks_do_nothing_when_their_option_is_none() -> None:
    """The sessions / rate-limit / health hooks are no-ops without their option."""
    app, ext = make_flask()
    state = app.extensions["renderkit"]
    for hook in (ext._init_sessions, ext._init_ratelimit, ext._init_health):
        assert hook(app, state) is None


# --- plain WSGI ---------------------------------------------------------------------------


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/raise":
        raise RuntimeError("wsgi app failed")
    body = f"{environ.get('renderkit.request_id')}|{get_correlation_id()}".encode()
    start_response("200 OK", [("Content-Type", "text/html"), ("Server", "gunicorn")])
    return [body]


def call(app: Any, path: str = "/", **environ: str) -> tuple[str, dict[str, str], bytes]:
    from werkzeug.test import EnvironBuilder

    env = EnvironBuilder(path=path).get_environ()
    env.update(environ)
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, dict(headers)
        return lambda data: None

    body = app(env, start_response)
    data = b"".join(body)
    getattr(body, "close", lambda: None)()
    return captured["status"], captured["headers"], data


def test_wsgi_stack_ids_headers_and_500(caplog) -> None:
    """The WSGI twins add the id and headers, and turn an exception into a logged 500."""
    metrics = RequestMetrics()
    stack = CorrelationIdMiddleware(
        RequestMetricsMiddleware(SecurityHeadersMiddleware(wsgi_app, trust=PROXY), metrics=metrics)
    )
    status, headers, body = call(stack, HTTP_X_REQUEST_ID="w-1", HTTP_X_FORWARDED_PROTO="https")
    assert status == "200 OK" and body == b"w-1|w-1"
    assert headers["X-Request-ID"] == "w-1"
    assert "Server" not in headers and headers["strict-transport-security"].startswith("max-age=")
    assert "'nonce-" in headers["content-security-policy"]
    with caplog.at_level(logging.ERROR, logger="renderkit.wsgi"):
        status, headers, body = call(stack, "/raise", HTTP_X_REQUEST_ID="w-2\r\nX: y")
    assert status.startswith("500")
    assert headers["X-Request-ID"] != "w-2\r\nX: y" and len(headers["X-Request-ID"]) == 32
    assert headers["x-content-type-options"] == "nosniff"
    assert "wsgi app failed" in caplog.text
    # The innermost edge middleware answered the exception; metrics saw (and count) a 500.
    assert metrics.snapshot()["errors"] == 1
    assert metrics.snapshot()["routes"][0]["statuses"] == {"200": 1, "500": 1}
    assert get_correlation_id() is None


def test_wsgi_https_redirect() -> None:
    """WSGI redirect: 301/308, query kept, health exempt, foreign host rejected."""
    app = HTTPSRedirectMiddleware(wsgi_app, trust=PROXY, allowed_hosts=["example.com"])
    status, headers, _ = call(
        app, "/a b", QUERY_STRING="q=1", HTTP_HOST="example.com", HTTP_X_FORWARDED_PROTO="http"
    )
    assert status.startswith("301") and headers["Location"] == "https://example.com/a%20b?q=1"
    status, _, _ = call(app, "/a", REQUEST_METHOD="POST", HTTP_HOST="example.com")
    assert status.startswith("308")
    assert call(app, "/healthz", HTTP_HOST="example.com")[0] == "200 OK"
    status, headers, _ = call(app, "/a", HTTP_HOST="evil.com")
    assert status.startswith("400") and "Location" not in headers
    assert call(app, "/a", HTTP_HOST="example.com", HTTP_X_FORWARDED_PROTO="https")[0] == "200 OK"


def test_wsgi_threads_never_share_an_id() -> None:
    """Concurrent WSGI threads each see only their own request id."""
    barrier = threading.Barrier(8)
    results: dict[int, bytes] = {}

    def slow_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        barrier.wait(timeout=5)
        start_response("200 OK", [])
        return [str(get_correlation_id()).encode()]

    stack = CorrelationIdMiddleware(slow_app)

    def worker(i: int) -> None:
        results[i] = call(stack, HTTP_X_REQUEST_ID=f"thread-{i}")[2]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == {i: f"thread-{i}".encode() for i in range(8)}


def test_flask_logs_carry_the_request_id(caplog) -> None:
    """A log line written in a Flask view carries the id through CorrelationIdFilter."""
    app, _ = make_flask()
    view_logger = logging.getLogger("tests.flask.view")

    @app.get("/log")
    def log_view() -> str:
        view_logger.warning("inside")
        return "ok"

    caplog.handler.addFilter(CorrelationIdFilter())
    with caplog.at_level(logging.WARNING, logger="tests.flask.view"):
        closed(app.test_client().get("/log", headers={"X-Request-ID": "log-1"}))
    assert [r.correlation_id for r in caplog.records if r.name == "tests.flask.view"] == ["log-1"]  # type: ignore[attr-defined]


FLASK_APP = """
import time

from flask import Flask, g

from renderkit.proxy import ProxyTrust
from renderkit.correlation import get_correlation_id
from renderkit.flask import RenderKit

app = Flask(__name__)


@app.get("/echo/<int:n>")
def echo(n):
    time.sleep(0.02)  # overlap the threads
    return f"{g.request_id}|{get_correlation_id()}"


@app.get("/boom")
def boom():
    raise RuntimeError("view failed on purpose")


RenderKit(app, trust=ProxyTrust.none(), environ={"APP_ENV": "development"})
"""


@pytest.mark.e2e
def test_threaded_gunicorn_keeps_ids_apart_and_counts_every_request(tmp_path) -> None:
    """Under gunicorn --threads 8, concurrent requests each get their own id; metrics count all."""
    import concurrent.futures

    import httpx

    from _uvicorn_server import serve_gunicorn

    with serve_gunicorn(FLASK_APP, tmp_path) as base:

        def fetch(i: int) -> tuple[str, str]:
            response = httpx.get(f"{base}/echo/{i}", headers={"X-Request-ID": f"g-{i}"}, timeout=10)
            return response.headers["x-request-id"], response.text

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(fetch, range(24)))
        failed = httpx.get(f"{base}/boom", headers={"X-Request-ID": "g-500"}, timeout=10)
        metrics = httpx.get(f"{base}/metrics/json", timeout=10).json()
    assert results == [(f"g-{i}", f"g-{i}|g-{i}") for i in range(24)]
    assert failed.status_code == 500 and failed.headers["x-request-id"] == "g-500"
    assert failed.headers["content-security-policy"]
    routes = {r["route"]: r for r in metrics["routes"]}
    assert routes["/echo/<int:n>"]["count"] == 24
    assert routes["/boom"]["errors"] == 1


def test_jinja_nonce_global_is_empty_outside_a_request() -> None:
    """{{ csp_nonce }} renders empty (not an error) outside a request and in app contexts."""
    app, _ = make_flask()
    nonce_global = app.jinja_env.globals["csp_nonce"]
    assert str(nonce_global) == "" and not nonce_global
    with app.app_context():
        assert render_template_string("[{{ csp_nonce }}]") == "[]"


def test_wsgi_request_id_never_leaks_into_the_callers_context() -> None:
    """A body that is never iterated nor closed leaves the caller's context without an id,
    while logs written during streaming still see it."""
    seen: list[str | None] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        seen.append(get_correlation_id())
        yield b"a"
        seen.append(get_correlation_id())
        yield b"b"

    wrapped = CorrelationIdMiddleware(app)
    headers: list[Any] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_REQUEST_ID": "stream-1"}
    abandoned = wrapped(dict(environ), lambda s, h, e=None: headers.append(h))
    assert get_correlation_id() is None
    body = wrapped(dict(environ), lambda s, h, e=None: headers.append(h))
    assert b"".join(body) == b"ab"
    assert seen == ["stream-1", "stream-1"]
    assert get_correlation_id() is None
    del abandoned


def test_flask_request_header_and_from_env_toggles() -> None:
    """Flask handlers read the resolved id from request.headers (a rejected one never shows),
    and a policy from SecurityHeaders.from_env drives the WSGI headers the same way."""
    from flask import request

    app = Flask(__name__)

    @app.get("/")
    def index() -> str:
        return f"{request.headers.get('X-Request-ID')}|{g.csp_nonce!r}"

    RenderKit(
        app,
        https_redirect=False,
        trust=PROXY,
        security=SecurityHeaders.from_env({"CSP_ENABLED": "false", "HSTS_MAX_AGE": "0"}),
    )
    client = app.test_client()
    response = client.get("/", headers={"X-Request-ID": "bad id", "X-Forwarded-Proto": "https"})
    request_id = response.headers["X-Request-ID"]
    assert response.text == f"{request_id}|''"  # no nonce without a CSP: "" not None
    assert request_id != "bad id"
    assert "Content-Security-Policy" not in response.headers
    assert "Strict-Transport-Security" not in response.headers
    assert response.headers["X-Frame-Options"] == "DENY"
    kept = client.get("/", headers={"X-Request-ID": "flask-1"})
    assert kept.text.startswith("flask-1|")


def test_wsgi_correlation_transformer_and_option_errors() -> None:
    """The WSGI middleware takes the same options as the ASGI one, checked the same way."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["HTTP_X_REQUEST_ID"].encode()]

    wrapped = CorrelationIdMiddleware(app, transformer=lambda value: value.upper())
    seen: list[Any] = []
    body = b"".join(
        wrapped({"HTTP_X_REQUEST_ID": "abc", "REQUEST_METHOD": "GET"}, lambda *a: seen.append(a))
    )
    assert body == b"ABC" and ("X-Request-ID", "ABC") in seen[0][1]
    with pytest.raises(TypeError, match="header_nam"):
        CorrelationIdMiddleware(app, header_nam="X-Id")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="policy, trust"):
        SecurityHeadersMiddleware(app, polcy=None)  # type: ignore[call-arg]


def test_flask_metrics_are_closed_in_production_without_a_token() -> None:
    """RenderKit's /metrics: open in development, 401 in production unless METRICS_TOKEN."""
    dev, _ = make_flask()
    assert closed(dev.test_client().get("/metrics")).status_code == 200
    prod, _ = make_flask(environ={"APP_ENV": "production", "FORCE_HTTPS": "false"})
    client = prod.test_client()
    assert (
        closed(client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"})).status_code
        == 401
    )
    forged = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}
    assert closed(client.get("/metrics/json", environ_base=forged)).status_code == 401
    tokened, _ = make_flask(
        environ={"APP_ENV": "production", "FORCE_HTTPS": "false", "METRICS_TOKEN": "m-tok"}
    )
    auth = {"Authorization": "Bearer m-tok"}
    response = tokened.test_client().get("/metrics", headers=auth)
    assert closed(response).status_code == 200
