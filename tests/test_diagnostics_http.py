"""Doctor's findings over HTTP: /health/diagnostics for token holders, masked, no network."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.testclient import TestClient

from renderkit.cli import doctor_findings
from renderkit.health import Health

SECRET_URL = "postgresql://app:hunter2pass@127.0.0.1:1/app"
ENV = {"APP_ENV": "production", "DATABASE_URL": SECRET_URL, "SESSION_SECRET": "short"}


def app_for(token: str | None) -> TestClient:
    health = Health(token=token, diagnostics=lambda: doctor_findings(ENV))
    return TestClient(Starlette(routes=health.routes(prefix="/health")))


def checks(findings: list[dict[str, object]]) -> set[str]:
    return {str(f["check"]) for f in findings}


def test_token_holder_reads_the_doctors_findings_with_secrets_masked() -> None:
    """The short SESSION_SECRET is reported by length; the database password never appears."""
    client = app_for("diag-token")
    response = client.get("/health/diagnostics", headers={"Authorization": "Bearer diag-token"})
    assert response.status_code == 200
    assert "hunter2pass" not in response.text
    assert "SESSION_SECRET is 5 bytes long" in response.text


def test_without_the_token_or_without_a_configured_token_nothing_is_served() -> None:
    """401 without the bearer token; 404 when no token is configured at all."""
    assert app_for("diag-token").get("/health/diagnostics").status_code == 401
    assert app_for(None).get("/health/diagnostics").status_code == 404


def test_offline_by_default_network_on_request() -> None:
    """The default report runs no Postgres or Redis probe; network=True adds exactly those."""
    offline = checks(doctor_findings(ENV))
    online = doctor_findings(ENV, network=True)
    assert {"database", "redis"}.isdisjoint(offline)
    assert checks(online) - offline == {"database", "redis"}
    assert "hunter2pass" not in str(online)
