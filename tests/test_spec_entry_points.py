"""The SPEC's "Exact entry points", run as an app team writes them.

Each test copies the SPEC lines as they are written there and asserts the documented effect
through a real request, so a renamed keyword or a changed default fails here first.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from renderkit.config import PostgresUrl, RedisUrl

SECRET = "spec-entry-points-secret-key-0123456789abcdef"


async def _hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def _counter(request: Request) -> Response:
    request.session["n"] = int(request.session.get("n", 0)) + 1
    return JSONResponse({"n": request.session["n"]})


def _starlette() -> Starlette:
    return Starlette(
        routes=[Route("/", _hello), Route("/health", _hello), Route("/count", _counter)]
    )


def _fastapi() -> Any:
    fastapi = pytest.importorskip("fastapi")
    app = fastapi.FastAPI()

    @app.get("/")
    async def root() -> PlainTextResponse:
        return PlainTextResponse("hello")

    @app.get("/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("hello")

    @app.get("/count")
    async def count(request: Request) -> dict[str, int]:
        request.session["n"] = int(request.session.get("n", 0)) + 1
        return {"n": request.session["n"]}

    return app


APPS: dict[str, Callable[[], Any]] = {"starlette": _starlette, "fastapi": _fastapi}


@pytest.fixture(params=sorted(APPS))
def app(request: pytest.FixtureRequest) -> Any:
    """A fresh Starlette or FastAPI app with /, /health and /count routes."""
    return APPS[request.param]()


async def _get(app: Any, url: str, *, peer: str = "127.0.0.1", **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(url, **kwargs)


# --- platform -------------------------------------------------------------------------------


def test_detect_reads_env_and_injected_cgroup_root(tmp_path: Path) -> None:
    """detect(environ, cgroup_root=...) takes limits from the fake cgroup v2 files."""
    from renderkit.platform import detect

    (tmp_path / "memory.max").write_text("536870912\n")
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    environ = {"RENDER": "true", "RENDER_SERVICE_NAME": "web", "RENDER_GIT_COMMIT": "abc123"}

    p = detect(environ, cgroup_root=str(tmp_path))

    assert p.provider == "render"
    assert p.service_name == "web"
    assert p.git_commit == "abc123"
    assert p.port == 10000
    assert p.memory_limit == 536870912
    assert p.cpu_limit == 0.5
    assert json.loads(json.dumps(p.as_dict()))["provider"] == "render"


def test_detect_reads_cgroup_v1_and_both_arguments_are_optional(tmp_path: Path) -> None:
    """cgroup v1 memory.limit_in_bytes is honoured; detect() alone never raises."""
    from renderkit.platform import detect

    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("268435456\n")
    p = detect({"PORT": "9000"}, cgroup_root=str(tmp_path))
    assert p.provider == "local"
    assert p.port == 9000
    assert p.memory_limit == 268435456

    assert detect().memory_limit > 0
    assert detect({}).port == 8000


# --- config ---------------------------------------------------------------------------------


def _app_settings() -> Any:
    from renderkit.config import Settings, env

    class AppSettings(Settings):
        database_url: str = env("DATABASE_URL", secret=True)  # no default: required
        redis_url: str | None = env("REDIS_URL", default=None, secret=True)
        port: int = env("PORT", default=10000)
        request_timeout: timedelta = env("REQUEST_TIMEOUT", default="30s")
        cors_origins: list[str] = env("CORS_ALLOWED_ORIGINS", default=[])

    return AppSettings


def test_app_settings_as_written_load_and_summary_masks_secrets() -> None:
    """The SPEC's AppSettings loads typed values and summary() masks both secrets."""
    settings_cls = _app_settings()
    environ = {
        "DATABASE_URL": "postgresql://app:pg-pass-7f3a@db:5432/app",
        "REDIS_URL": "redis://:redis-pass-91bc@cache:6379/0",
        "CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
        "REQUEST_TIMEOUT": "5m",
    }
    settings = settings_cls.load(environ)

    assert settings.database_url == environ["DATABASE_URL"]
    assert settings.port == 10000
    assert settings.request_timeout == timedelta(minutes=5)
    assert settings.cors_origins == ["https://a.example", "https://b.example"]

    summary = settings.summary()
    assert summary["DATABASE_URL"] == "****"
    assert summary["PORT"] == "10000"
    text = json.dumps(summary) + str(settings) + repr(settings)
    assert "pg-pass-7f3a" not in text
    assert "redis-pass-91bc" not in text


def test_app_settings_defaults_apply_when_unset() -> None:
    """Only DATABASE_URL is required; the other fields take their documented defaults."""
    settings = _app_settings().load({"DATABASE_URL": "postgresql://db/app"})
    assert settings.redis_url is None
    assert settings.request_timeout == timedelta(seconds=30)
    assert settings.cors_origins == []


def test_config_error_lists_every_problem_and_never_echoes_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Principle 6: one ConfigError names every bad variable; secret values never appear."""
    from renderkit.config import ConfigError, Settings, env

    class Strict(Settings):
        database_url: PostgresUrl = env("DATABASE_URL", secret=True)
        redis_url: RedisUrl | None = env("REDIS_URL", default=None, secret=True)
        api_token: int = env("API_TOKEN", secret=True)
        port: int = env("PORT", default=10000)
        request_timeout: timedelta = env("REQUEST_TIMEOUT", default="30s")

    secrets = ["mysql-pw-SECRET-1a2b", "redis-pw-SECRET-3c4d", "tok-SECRET-5e6f"]
    environ = {
        "DATABASE_URL": f"mysql://root:{secrets[0]}@db/app",
        "REDIS_URL": f"http://:{secrets[1]}@cache:6379",
        "API_TOKEN": secrets[2],
        "PORT": "eighty",
        "REQUEST_TIMEOUT": "soon",
    }
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError) as info:
        Strict.load(environ)
    error = info.value

    named = {problem.variable for problem in error.errors}
    assert named == {"DATABASE_URL", "REDIS_URL", "API_TOKEN", "PORT", "REQUEST_TIMEOUT"}
    shown = str(error) + repr(error) + repr(error.errors) + caplog.text
    for secret in secrets:
        assert secret not in shown
    # A non-secret bad value is echoed so the user can see what was wrong.
    assert "eighty" in str(error)


def test_environment_precedence() -> None:
    """APP_ENV, then ENV, then ENVIRONMENT; a PaaS defaults to production, previews to staging."""
    from renderkit.config import environment

    assert environment({}) == "development"
    assert environment({"RENDER": "true"}) == "production"
    assert environment({"RENDER": "true", "IS_PULL_REQUEST": "true"}) == "staging"
    assert environment({"APP_ENV": "staging", "ENV": "production"}) == "staging"
    assert environment({"ENV": "production", "ENVIRONMENT": "development"}) == "production"


# --- security and correlation middleware ----------------------------------------------------


async def test_security_headers_html_preset(app: Any) -> None:
    """app.add_middleware(SecurityHeadersMiddleware) sends the HTML preset with a fresh nonce."""
    from renderkit.security import SecurityHeadersMiddleware

    app.add_middleware(SecurityHeadersMiddleware)
    # HSTS is only meaningful (and only sent) over HTTPS.
    first, second = await _get(app, "https://testserver/"), await _get(app, "https://testserver/")

    assert first.status_code == 200
    assert first.headers["x-content-type-options"] == "nosniff"
    assert "max-age=" in first.headers["strict-transport-security"]
    assert first.headers["referrer-policy"]
    csp = first.headers["content-security-policy"]
    assert "'nonce-" in csp
    assert csp != second.headers["content-security-policy"]


async def test_security_headers_api_preset(app: Any) -> None:
    """policy=SecurityHeaders.api() gives CSP default-src 'none'; frame-ancestors 'none'."""
    from renderkit.security import SecurityHeaders, SecurityHeadersMiddleware

    app.add_middleware(SecurityHeadersMiddleware, policy=SecurityHeaders.api())
    response = await _get(app, "/")

    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_https_redirect_honours_forwarded_proto_and_exempts_health(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Render the redirect trusts the proxy's X-Forwarded-Proto; /health* is exempt."""
    from renderkit.security import HTTPSRedirectMiddleware

    monkeypatch.setenv("RENDER", "true")  # the default trust follows the detected platform
    app.add_middleware(HTTPSRedirectMiddleware)
    proxy = "10.201.3.4"  # Render's proxy is a private 10.x peer

    plain = await _get(app, "/?q=1", peer=proxy, headers={"x-forwarded-proto": "http"})
    assert plain.status_code in (301, 307, 308)
    assert plain.headers["location"] == "https://testserver/?q=1"

    forwarded = await _get(app, "/", peer=proxy, headers={"x-forwarded-proto": "https"})
    assert forwarded.status_code == 200
    assert forwarded.text == "hello"

    # uvicorn does not split a comma list; the proxy-appended right-most value counts here.
    listed = await _get(app, "/", peer=proxy, headers={"x-forwarded-proto": "https,https"})
    assert listed.status_code == 200

    for path in ("/health", "/health/ready"):
        assert (await _get(app, path, peer=proxy)).status_code != 301, path

    # A forged header from an untrusted (public) peer does not skip the redirect.
    forged = await _get(app, "/", peer="203.0.113.9", headers={"x-forwarded-proto": "https"})
    assert forged.status_code in (301, 307, 308)


async def test_explicit_https_redirect_acts_in_development(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Principle 7: an explicitly added middleware redirects whatever the environment says."""
    from renderkit.security import HTTPSRedirectMiddleware

    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.setenv("FORCE_HTTPS", "false")
    app.add_middleware(HTTPSRedirectMiddleware)
    assert (await _get(app, "/")).status_code in (301, 307, 308)


async def test_correlation_id_echoed_and_generated(app: Any) -> None:
    """CorrelationIdMiddleware echoes a valid X-Request-ID, replaces a bad one, and binds it."""
    from renderkit.correlation import CorrelationIdMiddleware, get_correlation_id

    seen: list[str | None] = []

    async def who(request: Request) -> Response:
        seen.append(get_correlation_id())
        return PlainTextResponse("ok")

    app.add_route("/who", who)
    app.add_middleware(CorrelationIdMiddleware)

    echoed = await _get(app, "/who", headers={"X-Request-ID": "req-1234abcd"})
    assert echoed.headers["x-request-id"] == "req-1234abcd"
    assert seen[-1] == "req-1234abcd"

    fresh = await _get(app, "/who")
    generated = fresh.headers["x-request-id"]
    assert generated and seen[-1] == generated

    hostile = await _get(app, "/who", headers={"X-Request-ID": "bad id\twith <script>"})
    assert hostile.status_code == 200
    assert hostile.headers["x-request-id"] != "bad id\twith <script>"
    assert get_correlation_id() is None


# --- sessions -------------------------------------------------------------------------------


def _count(client: TestClient) -> int:
    response = client.get("/count")
    assert response.status_code == 200
    return int(response.json()["n"])


def test_session_middleware_with_memory_store(app: Any) -> None:
    """SessionMiddleware(store=MemoryStore(), secret_key=SECRET) keeps request.session."""
    from renderkit.sessions import MemoryStore, SessionMiddleware

    app.add_middleware(SessionMiddleware, store=MemoryStore(), secret_key=SECRET)
    with TestClient(app) as client:
        assert [_count(client), _count(client), _count(client)] == [1, 2, 3]
        client.cookies.clear()
        client.cookies.set("session", "forged.value")
        assert _count(client) == 1


def test_session_middleware_accepts_starlette_keywords(app: Any) -> None:
    """Starlette's keyword names mean the same thing here, with a default MemoryStore."""
    from renderkit.sessions import SessionMiddleware

    app.add_middleware(
        SessionMiddleware,
        secret_key=SECRET,
        session_cookie="sid",
        max_age=3600,
        path="/",
        same_site="strict",
        https_only=True,
        domain="testserver.local",
    )
    with TestClient(app, base_url="https://testserver.local") as client:
        response = client.get("/count")
        cookie = response.headers["set-cookie"]
        lowered = cookie.lower()
        assert cookie.startswith("sid=")
        assert "max-age=3600" in lowered
        assert "path=/" in lowered
        assert "samesite=strict" in lowered
        assert "secure" in lowered
        assert "domain=testserver.local" in lowered
        assert "httponly" in lowered
        assert _count(client) == 2


def test_session_bad_force_https_is_a_config_error() -> None:
    """A FORCE_HTTPS that is not a boolean is named in a ConfigError, not silently ignored."""
    from renderkit.config import ConfigError
    from renderkit.sessions import SessionMiddleware

    with pytest.raises(ConfigError, match="FORCE_HTTPS"):
        SessionMiddleware(_starlette(), secret_key=SECRET, environ={"FORCE_HTTPS": "maybe"})


def test_session_https_only_false_wins_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An explicit https_only=False is obeyed even in production (as Starlette's is)."""
    from renderkit.sessions import SessionMiddleware

    monkeypatch.setenv("APP_ENV", "production")
    app = _starlette()
    app.add_middleware(SessionMiddleware, secret_key=SECRET, https_only=False)
    with TestClient(app) as client:
        assert "secure" not in client.get("/count").headers["set-cookie"].lower()


@pytest.mark.integration
async def test_redis_store_from_url_serves_asgi_and_wsgi(renderkit_redis_url: str) -> None:
    """One RedisStore.from_url(...) object serves the ASGI and the WSGI middleware alike."""
    from renderkit.sessions import RedisStore, SessionMiddleware
    from renderkit.wsgi import SessionMiddleware as WSGISessionMiddleware

    store = RedisStore.from_url(renderkit_redis_url, prefix=f"spec-{uuid.uuid4().hex}:")
    try:
        asgi = _starlette()
        asgi.add_middleware(SessionMiddleware, store=store, secret_key=SECRET)

        def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            session = environ["renderkit.session"]
            session["n"] = int(session.get("n", 0)) + 1
            start_response("200 OK", [("content-type", "application/json")])
            return [json.dumps({"n": session["n"]}).encode()]

        wsgi = WSGISessionMiddleware(wsgi_app, store=store, secret_key=SECRET)
        first = await _get(asgi, "/count")
        assert first.json() == {"n": 1}
        cookie = first.cookies["session"]

        transport = httpx.WSGITransport(app=wsgi)
        with httpx.Client(transport=transport, base_url="http://testserver") as client:
            assert client.get("/", headers={"cookie": f"session={cookie}"}).json() == {"n": 2}

        third = await _get(asgi, "/count", headers={"cookie": f"session={cookie}"})
        assert third.json() == {"n": 3}
        assert store.health_check().status == "healthy"
        json.dumps(store.stats())
    finally:
        await store.aclose()


# --- rate limiting --------------------------------------------------------------------------


def test_rate_limiter_hit_result_fields() -> None:
    """limiter.hit("client-key") reports .allowed .limit .remaining .reset_after (seconds)."""
    from renderkit.ratelimit import RateLimiter

    limiter = RateLimiter("memory://", default="100/hour")
    result = limiter.hit("client-key")
    assert result.allowed is True
    assert result.limit == 100
    assert result.remaining == 99
    assert 0 < result.reset_after <= 3600
    assert limiter.hit("client-key").remaining == 98
    assert limiter.hit("other-key").remaining == 99


async def test_rate_limit_middleware_answers_429(app: Any) -> None:
    """RateLimitMiddleware sends RateLimit headers, then 429 with Retry-After."""
    from renderkit.ratelimit import RateLimiter, RateLimitMiddleware

    limiter = RateLimiter("memory://", default="2/hour")
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    statuses = [(await _get(app, "/")).status_code for _ in range(2)]
    assert statuses == [200, 200]
    denied = await _get(app, "/")
    assert denied.status_code == 429
    assert int(denied.headers["retry-after"]) > 0
    assert any(name.lower().startswith("ratelimit") for name in denied.headers)


# --- cache, database, health, shutdown ------------------------------------------------------


def test_cache_from_url_none_is_memory() -> None:
    """Cache.from_url(None) is an in-memory cache that works without any server."""
    from renderkit.cache import Cache

    cache = Cache.from_url(None)
    cache.set("k", {"v": 1}, ttl=60)
    assert cache.get("k") == {"v": 1}
    assert cache.get_or_set("g", lambda: 5) == 5
    assert cache.stats()["backend"]["backend"] == "memory"
    assert cache.health_check().status == "healthy"


@pytest.mark.integration
def test_database_open_fetch_one(renderkit_database_url: str) -> None:
    """Database(DATABASE_URL); db.open(); db.fetch_one("SELECT 1") returns the row."""
    from renderkit.db import Database

    db = Database(renderkit_database_url)
    db.open()
    try:
        row = db.fetch_one("SELECT 1")
        assert row is not None
        assert list(row.values() if isinstance(row, dict) else row) == [1]
        assert db.health_check().status == "healthy"
        json.dumps(db.stats())
    finally:
        db.close()


async def test_health_registry_run_and_routes() -> None:
    """Health().add(..., critical=...), await run() and routes(prefix="/health") as written."""
    from renderkit.cache import Cache
    from renderkit.health import CheckResult, Health

    cache = Cache.from_url(None)
    broken = {"cache": False, "db": False}

    def db_check() -> CheckResult:
        if broken["db"]:
            raise ConnectionError("connection refused")
        return CheckResult("healthy")

    async def cache_check() -> CheckResult:
        if broken["cache"]:
            return CheckResult("unhealthy", message="redis down")
        return cache.health_check()

    health = Health(cache_ttl=0)
    health.add("database", db_check, critical=True)
    health.add("cache", cache_check, critical=False)

    report = await health.run()
    assert (report.status, report.http_status) == ("healthy", 200)
    broken["cache"] = True
    report = await health.run()
    assert (report.status, report.http_status) == ("degraded", 200)
    broken["db"] = True
    report = await health.run()
    assert (report.status, report.http_status) == ("unhealthy", 503)

    broken.update(cache=False, db=False)
    app = Starlette(routes=[*health.routes(prefix="/health"), Route("/", _hello)])
    for path in ("/health", "/health/live", "/health/ready"):
        response = await _get(app, path)
        assert response.status_code == 200, path
    body = (await _get(app, "/health")).json()
    assert body["status"] in ("pass", "healthy")


def test_health_cache_ttl_keyword_exists() -> None:
    """Health(cache_ttl=...) is accepted, so tests above can turn result caching off."""
    from renderkit.health import Health

    Health(cache_ttl=0)


def test_shutdown_coordinator_lifespan_and_middleware() -> None:
    """ShutdownCoordinator runs on_shutdown hooks on lifespan exit; the middleware serves."""
    from renderkit.shutdown import ShutdownCoordinator, ShutdownMiddleware

    closed: list[str] = []

    class FakeDb:
        def close(self) -> None:
            closed.append("database")

    db = FakeDb()
    coordinator = ShutdownCoordinator(grace_period=25.0)
    coordinator.on_shutdown(db.close, name="database", timeout=5.0)
    app = Starlette(routes=[Route("/", _hello)], lifespan=coordinator.lifespan)
    app.add_middleware(ShutdownMiddleware, coordinator=coordinator)

    with TestClient(app) as client:
        assert client.get("/").text == "hello"
        assert closed == []
    assert closed == ["database"]
    assert json.loads(json.dumps(coordinator.stats()))["hooks"] == ["database"]


def test_shutdown_middleware_refuses_new_requests_once_shutdown_began() -> None:
    """After begin(), readiness fails and ShutdownMiddleware answers 503 with Retry-After."""
    from renderkit.shutdown import ShutdownCoordinator, ShutdownMiddleware

    exits: list[int] = []
    coordinator = ShutdownCoordinator(grace_period=25.0, exit=exits.append)
    app = Starlette(routes=[Route("/", _hello)], lifespan=coordinator.lifespan)
    app.add_middleware(ShutdownMiddleware, coordinator=coordinator)

    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        assert coordinator.health_check().status == "healthy"
        coordinator.begin("test")
        refused = client.get("/")
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        assert coordinator.health_check().status == "unhealthy"
    assert exits == []


# --- Flask ------------------------------------------------------------------------------------


def _flask_app() -> Any:
    flask = pytest.importorskip("flask")
    app = flask.Flask("spec_entry_points")

    @app.get("/")
    def index() -> str:
        return "hello"

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app


@pytest.mark.parametrize("style", ["constructor", "init_app"])
def test_flask_renderkit_both_styles(style: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """RenderKit(app, ...) and RenderKit().init_app(app) wire the same edge policies."""
    from renderkit.flask import RenderKit

    monkeypatch.delenv("FORCE_HTTPS", raising=False)
    app = _flask_app()
    if style == "constructor":
        RenderKit(app, environ={"APP_ENV": "development"})
    else:
        RenderKit(environ={"APP_ENV": "development"}).init_app(app)

    response = app.test_client().get("/", headers={"X-Request-ID": "flask-req-1"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "flask-req-1"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "renderkit" in app.extensions


@pytest.mark.parametrize(
    ("environ", "redirects"),
    [
        ({"APP_ENV": "development"}, False),
        ({"APP_ENV": "staging"}, False),
        ({"APP_ENV": "production"}, True),
        ({"APP_ENV": "production", "FORCE_HTTPS": "false"}, False),
        ({"APP_ENV": "development", "FORCE_HTTPS": "true"}, True),
    ],
)
def test_flask_renderkit_https_redirect_only_in_production(
    environ: dict[str, str], redirects: bool
) -> None:
    """Principle 7: RenderKit redirects to HTTPS only in production; FORCE_HTTPS overrides."""
    from renderkit.flask import RenderKit

    app = _flask_app()
    RenderKit(app, environ=environ)
    client = app.test_client()
    response = client.get("/")
    assert (response.status_code in (301, 307, 308)) is redirects
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("environ", "secure"),
    [
        ({"APP_ENV": "development"}, False),
        ({"APP_ENV": "production"}, True),
        ({"APP_ENV": "production", "FORCE_HTTPS": "false"}, False),
        ({"APP_ENV": "development", "FORCE_HTTPS": "true"}, True),
    ],
)
def test_session_cookie_secure_follows_environment(environ: dict[str, str], secure: bool) -> None:
    """Principle 7: with https_only left unset, Secure follows production / FORCE_HTTPS."""
    from renderkit.sessions import SessionMiddleware

    app = _starlette()
    app.add_middleware(SessionMiddleware, secret_key=SECRET, environ=environ)
    with TestClient(app, base_url="https://testserver") as client:
        cookie = client.get("/count").headers["set-cookie"].lower()
    assert ("secure" in cookie.split("; ")) is secure


# --- principles 4 and 5 -----------------------------------------------------------------------


def _components() -> Iterator[tuple[str, Any]]:
    from renderkit.cache import Cache, FallbackBackend, MemoryBackend, TieredBackend
    from renderkit.health import Health
    from renderkit.metrics import RequestMetrics
    from renderkit.ratelimit import RateLimiter
    from renderkit.resilience import CircuitBreaker, MemoryWatchdog, Supervisor
    from renderkit.sessions import FallbackStore, MemoryStore
    from renderkit.shutdown import ShutdownCoordinator

    yield "Cache", Cache.from_url(None)
    yield "MemoryBackend", MemoryBackend()
    yield "TieredBackend", TieredBackend(MemoryBackend(), MemoryBackend())
    yield "FallbackBackend", FallbackBackend(MemoryBackend(), MemoryBackend())
    yield "RateLimiter", RateLimiter("memory://", default="100/hour")
    yield "MemoryStore", MemoryStore()
    yield "FallbackStore", FallbackStore(MemoryStore(), MemoryStore())
    yield "ShutdownCoordinator", ShutdownCoordinator(grace_period=25.0)
    yield "CircuitBreaker", CircuitBreaker()
    yield "Supervisor", Supervisor()
    yield "MemoryWatchdog", MemoryWatchdog()
    yield "RequestMetrics", RequestMetrics()
    yield "Health", Health()


async def test_every_stateful_component_has_health_check_and_stats() -> None:
    """Principle 5: health_check() gives a CheckResult; stats() a JSON-serialisable dict."""
    import inspect

    from renderkit.health import CheckResult

    for name, component in _components():
        stats = component.stats()
        assert isinstance(stats, dict), name
        json.dumps(stats)
        if name == "Health":
            continue  # the registry is the consumer of checks, not a check itself
        result = component.health_check()
        if inspect.isawaitable(result):
            result = await result
        assert isinstance(result, CheckResult), name
        assert result.status in ("healthy", "degraded", "unhealthy"), name


def test_from_env_reads_documented_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Principle 4: each env-configured component has from_env() reading its variables."""
    from renderkit.cache import AsyncCache, Cache
    from renderkit.db import AsyncDatabase, Database
    from renderkit.health import Health
    from renderkit.ratelimit import RateLimiter
    from renderkit.sessions import MemoryStore, store_from_env
    from renderkit.shutdown import ShutdownCoordinator

    environ = {"RATELIMIT_DEFAULT": "7/minute", "CACHE_TYPE": "memory"}
    assert RateLimiter.from_env(environ).hit("k").limit == 7
    assert Cache.from_env(environ).stats()["backend"]["backend"] == "memory"
    assert AsyncCache.from_env(environ).stats()["backend"]["backend"] == "memory"
    assert isinstance(store_from_env({}), MemoryStore)
    assert isinstance(Health.from_env({}), Health)
    coordinator = ShutdownCoordinator.from_env({"SHUTDOWN_GRACE_PERIOD": "12"})
    assert coordinator.stats()["grace_period"] == 12.0
    for cls in (Database, AsyncDatabase):
        db = cls.from_env({"DATABASE_URL": "postgres://u:p@127.0.0.1:1/x"})
        assert json.loads(json.dumps(db.stats()))


@pytest.mark.parametrize(
    ("factory", "variable", "value"),
    [
        ("shutdown", "SHUTDOWN_GRACE_PERIOD", "soon"),
        ("health", "HEALTH_CACHE_TTL", "later"),
        ("health", "HEALTH_TRUSTED_NETWORKS", "10.0.0.0/33"),
    ],
)
def test_from_env_problems_say_where_the_value_came_from(
    factory: str, variable: str, value: str
) -> None:
    """A bad variable is reported as coming from the environment, with the value it had."""
    from renderkit.config import ConfigError
    from renderkit.health import Health
    from renderkit.shutdown import ShutdownCoordinator

    build = {"shutdown": ShutdownCoordinator.from_env, "health": Health.from_env}[factory]
    with pytest.raises(ConfigError) as info:
        build({variable: value})
    (problem,) = info.value.errors
    assert (problem.variable, problem.source) == (variable, "environment")
    assert value in str(info.value)


def test_redis_down_degrades_and_never_500s() -> None:
    """Principle 1: with Redis refusing connections, cache, limiter and sessions keep serving."""
    from renderkit.cache import Cache
    from renderkit.ratelimit import RateLimiter, RateLimitMiddleware
    from renderkit.sessions import RedisStore, SessionMiddleware

    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once
    cache = Cache.from_url(dead)
    cache.set("k", {"v": 1})
    assert cache.get("k") == {"v": 1}
    assert cache.health_check().status == "degraded"

    limiter = RateLimiter(dead, default="100/hour")
    assert limiter.hit("client").allowed is True
    assert limiter.health_check().status == "degraded"

    store = RedisStore.from_url(dead)
    app = _starlette()
    app.add_middleware(SessionMiddleware, store=store, secret_key=SECRET)
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/count").status_code == 200
        client.cookies.set("session", "tampered.cookie")
        assert client.get("/").status_code == 200
    assert store.health_check().status != "healthy"
    store.close()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"APP_ENV": "production"}, True),
        ({"RENDER": "true"}, True),
        ({"RENDER": "true", "IS_PULL_REQUEST": "true"}, False),
        ({"APP_ENV": "production", "FORCE_HTTPS": "off"}, False),
        ({"FORCE_HTTPS": "yes"}, True),
    ],
)
def test_https_redirect_enabled_is_the_wiring_decision(
    environ: dict[str, str], expected: bool
) -> None:
    """Principle 7's rule in one function: FORCE_HTTPS when set, else production only."""
    from renderkit.security import https_redirect_enabled

    assert https_redirect_enabled(environ) is expected


def test_bad_force_https_names_the_variable() -> None:
    """FORCE_HTTPS=maybe is a ConfigError naming FORCE_HTTPS, not a silent default."""
    from renderkit.config import ConfigError
    from renderkit.security import https_redirect_enabled

    with pytest.raises(ConfigError, match="FORCE_HTTPS"):
        https_redirect_enabled({"FORCE_HTTPS": "maybe"})


@pytest.mark.parametrize(
    ("environ", "secure"),
    [
        ({"APP_ENV": "development"}, False),
        ({"APP_ENV": "production"}, True),
        ({"APP_ENV": "production", "FORCE_HTTPS": "false"}, False),
    ],
)
def test_flask_renderkit_session_cookie_secure_only_in_production(
    environ: dict[str, str], secure: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Principle 7: RenderKit(session_store=...) marks the cookie Secure in production only."""
    from flask import session

    from renderkit.flask import RenderKit
    from renderkit.sessions import MemoryStore

    for name in ("APP_ENV", "FORCE_HTTPS", "RENDER"):
        monkeypatch.delenv(name, raising=False)
    app = _flask_app()
    app.secret_key = SECRET

    @app.get("/login")
    def login() -> str:
        session["user"] = "ada"
        return "ok"

    RenderKit(app, session_store=MemoryStore(), https_redirect=False, environ=environ)
    response = app.test_client().get("/login", base_url="https://localhost")
    cookie = response.headers["Set-Cookie"].lower()
    assert ("secure" in [part.strip() for part in cookie.split(";")]) is secure


@pytest.mark.integration
async def test_async_twins_use_the_same_method_names(renderkit_database_url: str) -> None:
    """Principle 3: AsyncDatabase and AsyncCache mirror Database and Cache, awaited."""
    from renderkit.cache import AsyncCache
    from renderkit.db import AsyncDatabase

    db = AsyncDatabase(renderkit_database_url)
    await db.open()
    try:
        row = await db.fetch_one("SELECT 1")
        assert row is not None and list(row) == [1]
        assert (await db.health_check()).status == "healthy"
    finally:
        await db.close()

    cache = AsyncCache.from_url(None)
    await cache.set("k", [1, 2], ttl=60)
    assert await cache.get("k") == [1, 2]
    assert (await cache.health_check()).status == "healthy"


@pytest.mark.parametrize("kind", ["sync", "asyncio"])
def test_redis_store_takes_a_sync_or_asyncio_client(kind: str) -> None:
    """RedisStore(client) works behind the ASGI middleware with either kind of client."""
    fakeredis = pytest.importorskip("fakeredis")
    from renderkit.sessions import RedisStore, SessionMiddleware

    server = fakeredis.FakeServer()
    client = (
        fakeredis.FakeRedis(server=server)
        if kind == "sync"
        else fakeredis.FakeAsyncRedis(server=server)
    )
    app = _starlette()
    app.add_middleware(SessionMiddleware, store=RedisStore(client), secret_key=SECRET)
    with TestClient(app) as http:
        assert [_count(http), _count(http)] == [1, 2]
    assert any(key.startswith(b"session:") for key in fakeredis.FakeRedis(server=server).keys())
