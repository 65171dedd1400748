"""Health detail for token holders: pool and Redis figures, platform, metrics, per-check
endpoints with their own status words, diagnostics, and secrets that never leak."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from flask import Flask
from starlette.applications import Starlette
from werkzeug.test import Client

from renderkit.config import ConfigError
from renderkit.flask import health_blueprint
from renderkit.health import CheckResult, Health, redis_check
from renderkit.platform import Platform
from renderkit.wsgi import HealthApp

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC = ("203.0.113.9", 1234)
SECRET_URL = "postgresql://app:pw#x@y/z@db.internal:5432/app"


class FakePool:
    """A component with a health check and pool stats, like renderkit.db.Database."""

    def health_check(self) -> CheckResult:
        return CheckResult.healthy()

    def stats(self) -> dict[str, Any]:
        return {
            "pool_size": 5,
            "pool_available": 3,
            "requests_waiting": 1,
            "pool_max": 10,
            "url": SECRET_URL,
        }


def client_for(health: Health, **routes: Any) -> httpx.AsyncClient:
    app = Starlette(routes=health.routes(**routes))
    transport = httpx.ASGITransport(app=app, client=PUBLIC)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_detail_has_pool_platform_and_metrics_for_token_holders_only() -> None:
    """Token holders see pool figures, the platform block and the metrics summary."""
    platform = Platform(provider="render", service_name="web", region="oregon", git_commit="c0ffee")
    health = Health(token=TOKEN, platform=platform, metrics=lambda: {"requests": 12, "errors": 1})
    health.add("database", FakePool().health_check)
    async with client_for(health) as client:
        detailed = (await client.get("/health", headers=AUTH)).json()
        public = (await client.get("/health")).json()
    entry = detailed["checks"]["database"]
    assert entry["pool"] == {"size": 5, "active": 2, "idle": 3, "waiting": 1, "max": 10}
    assert entry["stats"]["url"] == "postgresql://app:****@db.internal:5432/app"
    assert detailed["platform"]["provider"] == "render"
    assert detailed["platform"]["region"] == "oregon"
    assert detailed["metrics"] == {"requests": 12, "errors": 1}
    assert public == {"status": "healthy"}


async def test_broken_stats_and_metrics_never_break_the_answer() -> None:
    """stats() or the metrics hook raising is reported in the detail, the status stays."""

    class Broken:
        def health_check(self) -> None:
            return None

        def stats(self) -> dict[str, Any]:
            raise RuntimeError(f"cannot reach {SECRET_URL}")

    def metrics() -> dict[str, Any]:
        raise ValueError("no metrics")

    health = Health(token=TOKEN, metrics=metrics)
    health.add("thing", Broken().health_check)
    async with client_for(health) as client:
        response = await client.get("/health", headers=AUTH)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "healthy"
    assert "pw#x" not in response.text and "****" in body["checks"]["thing"]["stats"]["error"]
    assert body["metrics"] == {"error": "ValueError: no metrics"}


async def test_check_exception_with_a_password_is_masked_in_body_and_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A driver error quoting the URL reaches neither the detail body nor the log unmasked."""

    def failing() -> None:
        raise ConnectionError(f"could not connect to {SECRET_URL}: timeout")

    def result_with_url() -> CheckResult:
        return CheckResult.degraded(
            f"fallback for {SECRET_URL}", url=SECRET_URL, nested=[SECRET_URL]
        )

    health = Health(token=TOKEN, cache_ttl=0)
    health.add("database", failing)
    health.add("cache", result_with_url, critical=False)
    with caplog.at_level(logging.WARNING, logger="renderkit.health"):
        async with client_for(health) as client:
            response = await client.get("/health", headers=AUTH)
    assert response.status_code == 503
    for text in (response.text, caplog.text):
        assert "pw#x" not in text and "y/z" not in text
    body = response.json()
    assert body["checks"]["database"]["message"].startswith("ConnectionError: could not connect")
    assert "postgresql://app:****@db.internal" in body["checks"]["database"]["message"]
    assert body["checks"]["cache"]["url"] == "postgresql://app:****@db.internal:5432/app"
    assert "****" in caplog.text


async def test_per_check_endpoints_with_datifyy_words() -> None:
    """/health/db and /health/redis say ok/error with 200/503; unknown names are 404."""
    state = {"redis": True}
    health = Health(
        cache_ttl=0,
        status_words={"healthy": "ok", "degraded": "ok", "unhealthy": "error"},
        token=TOKEN,
    )
    health.add("db", lambda: None)
    health.add("redis", lambda: state["redis"], critical=False)
    async with client_for(health, per_check=True) as client:
        assert (await client.get("/health/db")).json() == {"status": "ok"}
        ok = await client.get("/health/redis")
        state["redis"] = False
        failed = await client.get("/health/redis")
        detailed = await client.get("/health/redis", headers=AUTH)
        overall = await client.get("/health")
        missing = await client.get("/health/nope")
        live = await client.get("/health/live")
    assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
    assert (failed.status_code, failed.json()) == (503, {"status": "error"})
    assert detailed.json()["error"] == "check returned False"
    assert (overall.status_code, overall.json()) == (200, {"status": "ok"})  # redis not critical
    assert missing.status_code == 404
    assert live.json() == {"status": "ok"}


def test_per_check_endpoints_over_wsgi_and_flask() -> None:
    """The WSGI app and the Flask blueprint answer /health/<check> the same way."""
    health = Health(cache_ttl=0, status_words={"healthy": "ok", "unhealthy": "error"})
    health.add("db", lambda: False)
    wsgi = Client(HealthApp(health, per_check=True))
    response = wsgi.get("/health/db", environ_base={"REMOTE_ADDR": PUBLIC[0]})
    assert (response.status_code, response.json) == (503, {"status": "error"})
    assert wsgi.get("/health/nope").status_code == 404
    app = Flask(__name__)
    app.register_blueprint(health_blueprint(health, per_check=True))
    flask = app.test_client()
    response = flask.get("/health/db", environ_base={"REMOTE_ADDR": PUBLIC[0]})
    assert (response.status_code, response.json) == (503, {"status": "error"})
    assert flask.get("/health/nope").status_code == 404
    head = flask.head("/health/db", environ_base={"REMOTE_ADDR": PUBLIC[0]})
    assert head.headers["Content-Length"] == response.headers["Content-Length"]


def test_status_words_are_validated_and_read_from_the_environment() -> None:
    """Unknown statuses and empty words are refused; HEALTH_STATUS_WORDS sets them."""
    with pytest.raises(ValueError, match="unknown status 'fine'"):
        Health(status_words={"fine": "ok"})
    with pytest.raises(ValueError, match="non-empty"):
        Health(status_words={"healthy": " "})
    health = Health.from_env({"HEALTH_STATUS_WORDS": "healthy=ok, unhealthy=error"})
    assert health.status_words == {"healthy": "ok", "degraded": "degraded", "unhealthy": "error"}
    with pytest.raises(ConfigError) as info:
        Health.from_env({"HEALTH_STATUS_WORDS": "ok", "HEALTH_CHECK_TIMEOUT": "soon"})
    assert "HEALTH_STATUS_WORDS" in str(info.value) and "HEALTH_CHECK_TIMEOUT" in str(info.value)


def findings() -> list[Any]:
    class Finding:
        def as_dict(self) -> dict[str, Any]:
            return {"check": "config", "status": "fail", "message": f"DATABASE_URL={SECRET_URL}"}

    return [Finding(), {"check": "port", "status": "ok", "message": "PORT=10000"}]


async def test_diagnostics_need_a_configured_token_and_are_masked() -> None:
    """Off without a token (404), 401 without the right one, masked findings with it."""
    without = Health(diagnostics=findings)
    async with client_for(without) as client:
        assert (await client.get("/health/diagnostics")).status_code == 404
    health = Health(token=TOKEN, diagnostics=findings, trusted_networks=["0.0.0.0/0"])
    async with client_for(health) as client:
        anonymous = await client.get("/health/diagnostics")
        wrong = await client.get("/health/diagnostics", headers={"Authorization": "Bearer x"})
        allowed = await client.get("/health/diagnostics", headers=AUTH)
    assert anonymous.status_code == 401  # a trusted network is not enough for diagnostics
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert allowed.status_code == 200 and "pw#x" not in allowed.text
    body = allowed.json()
    assert body["counts"] == {"fail": 1, "ok": 1}
    assert (
        body["findings"][0]["message"] == "DATABASE_URL=postgresql://app:****@db.internal:5432/app"
    )


async def test_diagnostics_that_fail_answer_500_masked() -> None:
    """A raising findings callable gives 500 with the masked error."""

    def broken() -> list[Any]:
        raise RuntimeError(f"doctor crashed on {SECRET_URL}")

    health = Health(token=TOKEN, diagnostics=broken)
    async with client_for(health) as client:
        response = await client.get("/health/diagnostics", headers=AUTH)
    assert response.status_code == 500 and "pw#x" not in response.text


def test_diagnostics_over_wsgi() -> None:
    """The WSGI app serves diagnostics to token holders only."""
    wsgi = Client(HealthApp(Health(token=TOKEN, diagnostics=findings)))
    assert wsgi.get("/health/diagnostics", headers=AUTH).status_code == 200
    assert wsgi.get("/health/diagnostics").status_code == 401


class FakeRedis:
    def __init__(self, used: int, maxmemory: int = 0) -> None:
        self.info_memory = {
            "used_memory": used,
            "used_memory_peak": used * 2,
            "maxmemory": maxmemory,
            "maxmemory_policy": "noeviction",
        }

    def ping(self) -> bool:
        return True

    def info(self, section: str) -> dict[str, Any]:
        assert section == "memory"
        return self.info_memory


def test_redis_check_reports_memory_and_degrades_near_maxmemory() -> None:
    """used/peak always; usage and degraded once maxmemory is set and nearly reached."""
    plain = redis_check(FakeRedis(1000))()
    assert plain.status == "healthy"
    assert plain.details == {
        "memory_used": 1000,
        "memory_peak": 2000,
        "memory_max": 0,
        "eviction_policy": "noeviction",
    }
    full = redis_check(FakeRedis(950, maxmemory=1000))()
    assert full.status == "degraded" and full.details["usage"] == 95.0
    with pytest.raises(TypeError, match="redis-py client"):
        redis_check(object())


@pytest.mark.integration
async def test_redis_check_against_a_real_redis(renderkit_redis_url: str) -> None:
    """Sync and asyncio redis-py clients both give real memory figures."""
    import redis
    import redis.asyncio

    health = Health(token=TOKEN, cache_ttl=0)
    sync_client = redis.Redis.from_url(renderkit_redis_url)
    async_client = redis.asyncio.Redis.from_url(renderkit_redis_url)
    health.add("redis", redis_check(sync_client), critical=False)
    health.add("redis_async", redis_check(async_client), critical=False)
    try:
        report = await health.run()
    finally:
        sync_client.close()
        await async_client.aclose()
    for name in ("redis", "redis_async"):
        details = report.checks[name].details
        assert report.checks[name].status == "healthy"
        assert details["memory_used"] > 0 and details["memory_peak"] >= details["memory_used"]
