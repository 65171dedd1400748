"""A short chaos run in CI: Redis killed and restarted, Postgres backends terminated and
Postgres restarted, Redis hung (SIGSTOP) and resumed under load, then SIGTERM; the app must not
500, lose a session or a write, bring back a logged-out session, or drop an in-flight request
(``nox -s chaos`` runs the long version)."""

from __future__ import annotations

import glob
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def report():  # type: ignore[no-untyped-def]
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb") and shutil.which("initdb") is None:
        pytest.skip("Postgres server binaries are not installed")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import chaos
    finally:
        sys.path.remove(str(BENCHMARKS))
    return chaos.run_chaos(duration=16.0, clients=6, limit=20)


def test_the_app_answers_through_every_fault_without_a_500(report) -> None:  # type: ignore[no-untyped-def]
    """Every answer is a 2xx, a 429 or a 503 with Retry-After; never another 5xx."""
    assert report.requests_sent > 200
    assert report.status_codes.get("200", 0) > 100
    assert report.errors_500 == 0, report.markdown()
    assert report.connection_errors == 0, report.markdown()


def test_no_session_counter_goes_backwards(report) -> None:  # type: ignore[no-untyped-def]
    """Each client's counter only grows across the Redis and Postgres faults: no session is
    lost and no write is undone when Redis returns (FallbackStore reconciles, newest wins)."""
    assert report.session_checks > 100
    assert report.sessions_lost == 0, report.markdown()
    assert report.writes_lost == 0, report.markdown()


def test_a_log_out_or_log_in_during_an_outage_is_never_undone(report) -> None:  # type: ignore[no-untyped-def]
    """Cookies ended while Redis was away (log-out, regenerate at log-in) stay dead after it
    returns, though a hung Redis still holds their old copies."""
    if "sessions" not in report.wired:
        pytest.skip("renderkit.sessions is not in the tree")
    assert report.logouts_during_outage + report.logins_during_outage > 0, report.markdown()
    assert report.stolen_replays > 0, report.markdown()
    assert report.sessions_resurrected == 0, report.markdown()


def test_health_reports_the_redis_outage_and_recovers(report) -> None:  # type: ignore[no-untyped-def]
    """Health goes degraded while Redis is down (never unhealthy for it) and healthy again."""
    transitions = report.health_transitions
    assert transitions[0] == "healthy", report.markdown()
    assert "degraded" in transitions, report.markdown()
    assert "healthy" in transitions[transitions.index("degraded") :], report.markdown()
    assert "no answer" not in transitions, report.markdown()


def test_sigterm_drains_in_flight_requests(report) -> None:  # type: ignore[no-untyped-def]
    """Requests in flight at SIGTERM all complete; uvicorn exits cleanly."""
    assert report.in_flight_at_sigterm > 0
    assert report.in_flight_dropped == 0, report.markdown()
    assert report.exit_code == 0, report.markdown()


def test_rate_limit_holds_across_workers_while_redis_is_up(report) -> None:  # type: ignore[no-untyped-def]
    """Two warm workers sharing Redis never let more than the limit through a burst."""
    if "ratelimit" not in report.wired:
        pytest.skip("renderkit.ratelimit is not in the tree")
    assert report.rate_bursts_before_faults > 0
    assert report.rate_overshoot_before_faults == 0, report.markdown()


def test_rate_limit_holds_after_redis_came_back(report) -> None:  # type: ignore[no-untyped-def]
    """Once Redis is back (5 s grace) the shared count holds again: every pooled connection
    reconnects once instead of tripping the breaker back to memory."""
    if "ratelimit" not in report.wired:
        pytest.skip("renderkit.ratelimit is not in the tree")
    assert report.rate_overshoot_redis_up == 0, report.markdown()
