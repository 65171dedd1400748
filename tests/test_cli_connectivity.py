"""``renderkit doctor`` connectivity findings for DATABASE_URL and REDIS_URL."""

from __future__ import annotations

import pytest

from renderkit.cli._connectivity import check_database, check_redis
from renderkit.cli._doctor import CHECKS, build_context


def findings(environ: dict[str, str]) -> list[tuple[str, str, str]]:
    ctx = build_context(environ)
    return [(f.check, f.status, f.message) for f in [*check_database(ctx), *check_redis(ctx)]]


def test_checks_are_registered() -> None:
    """The doctor runs both connectivity checks."""
    assert check_database in CHECKS
    assert check_redis in CHECKS


def test_unset_urls_are_skipped() -> None:
    """Without URLs the checks say they skipped, and nothing fails."""
    out = findings({})
    assert [(c, s) for c, s, _ in out] == [("database", "ok"), ("redis", "ok")]
    assert "skipped" in out[0][2]


def test_invalid_urls_fail_without_echoing_secrets() -> None:
    """Malformed URLs fail with the variable named and no password shown."""
    out = findings({"DATABASE_URL": "mysql://u:hunter2@h/db", "REDIS_URL": "http://:hunter2@h"})
    assert [(c, s) for c, s, _ in out] == [("database", "fail"), ("redis", "fail")]
    assert "DATABASE_URL" in out[0][2]
    assert "REDIS_URL" in out[1][2]
    assert all("hunter2" not in message for _, _, message in out)


def test_unreachable_services_fail_masked() -> None:
    """Nothing listening: a fail finding with the masked URL, quickly."""
    out = findings(
        {
            "DATABASE_URL": "postgres://u:hunter2@127.0.0.1:1/db",
            "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0",
        }
    )
    assert [(c, s) for c, s, _ in out] == [("database", "fail"), ("redis", "fail")]
    assert all("****" in m and "hunter2" not in m for _, _, m in out)


@pytest.mark.integration
def test_real_services_report_latency(
    renderkit_database_url: str, renderkit_redis_url: str
) -> None:
    """Reachable services give ok (or a latency warning) with latency_ms details."""
    ctx = build_context({"DATABASE_URL": renderkit_database_url, "REDIS_URL": renderkit_redis_url})
    db = list(check_database(ctx))
    redis = list(check_redis(ctx))
    assert db[0].status in ("ok", "warn")
    assert db[0].details["latency_ms"] >= 0
    assert "Postgres SELECT 1 answered" in db[0].message
    assert redis[0].details["latency_ms"] >= 0
    assert "Redis PING answered" in redis[0].message
