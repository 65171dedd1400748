"""The pytest plugin's fixtures work as documented for app teams."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from renderkit import testing


def test_fakeredis_clients_share_one_server(renderkit_fakeredis, renderkit_async_fakeredis) -> None:
    """The sync client sees what the test wrote; each test starts empty."""
    renderkit_fakeredis.set("k", "v")
    assert renderkit_fakeredis.get("k") == b"v"
    assert renderkit_fakeredis.dbsize() == 1


async def test_async_fakeredis_sees_sync_writes(
    renderkit_fakeredis, renderkit_async_fakeredis
) -> None:
    """Sync and async clients of one test share the same fake server."""
    renderkit_fakeredis.set("shared", "1")
    assert await renderkit_async_fakeredis.get("shared") == b"1"


def test_require_services_follows_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI=true turns a missing service into a failure instead of a skip."""
    monkeypatch.delenv("RENDERKIT_TEST_REQUIRE_SERVICES", raising=False)
    monkeypatch.setenv("CI", "true")
    assert testing.require_services() is True
    monkeypatch.setenv("CI", "false")
    assert testing.require_services() is False
    monkeypatch.setenv("RENDERKIT_TEST_REQUIRE_SERVICES", "1")
    assert testing.require_services() is True


@pytest.mark.parametrize(
    ("ci", "required"),
    [("TRUE", True), ("y", True), ("1", True), ("woodpecker", False), ("0", False), ("", False)],
)
def test_ci_words_are_parse_bools(monkeypatch: pytest.MonkeyPatch, ci: str, required: bool) -> None:
    """CI is read with config.parse_bool's words; another word (CI=woodpecker) is not true and
    not an error; a garbled APP_ENV does not break the fixtures."""
    monkeypatch.delenv("RENDERKIT_TEST_REQUIRE_SERVICES", raising=False)
    monkeypatch.setenv("CI", ci)
    assert testing.require_services() is required
    monkeypatch.setenv("APP_ENV", "prodd")
    assert testing.require_services() is required


def _run_inner(tmp_path, ci: str) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(
        "def test_needs_redis(renderkit_redis_url):\n    assert renderkit_redis_url\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RENDERKIT_TEST_")}
    env["CI"] = ci
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_missing_service_skips_outside_ci_and_fails_in_ci(tmp_path) -> None:
    """Without an env URL or Docker the fixture skips naming the variable; under CI it fails."""
    local = _run_inner(tmp_path, ci="")
    assert "1 skipped" in local.stdout
    assert "RENDERKIT_TEST_REDIS_URL" in local.stdout
    in_ci = _run_inner(tmp_path, ci="true")
    assert in_ci.returncode == 1
    assert "must not skip" in in_ci.stdout


@pytest.mark.integration
def test_redis_url_fixture_points_at_a_live_redis(renderkit_redis_url: str) -> None:
    """The session fixture yields a URL that answers PING."""
    import redis

    client = redis.Redis.from_url(renderkit_redis_url, socket_timeout=2)
    try:
        assert client.ping() is True
    finally:
        client.close()


@pytest.mark.integration
def test_database_url_fixture_points_at_a_live_postgres(renderkit_database_url: str) -> None:
    """The session fixture yields a URL that answers SELECT 1."""
    import psycopg

    with psycopg.connect(renderkit_database_url, connect_timeout=3) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
