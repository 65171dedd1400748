"""Pytest fixtures for apps built with renderkit (installed as a ``pytest11`` plugin).

Every fixture is prefixed ``renderkit_`` so it never clashes with an app's own:

- ``renderkit_redis_url`` / ``renderkit_database_url``: a real Redis / Postgres, from
  ``RENDERKIT_TEST_REDIS_URL`` / ``RENDERKIT_TEST_DATABASE_URL``, else a testcontainers
  container when a Docker engine answers, else the test is skipped with the reason. With
  ``CI=true`` (or ``RENDERKIT_TEST_REQUIRE_SERVICES=1``) a missing service fails the test
  instead of skipping it, so CI can never pass by skipping.
- ``renderkit_fakeredis`` / ``renderkit_async_fakeredis``: fresh in-process fakeredis clients
  (sync and asyncio) sharing one fake server per test.

Importing this module imports nothing heavy: fakeredis and testcontainers load when a fixture
is first used.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = [
    "renderkit_async_fakeredis",
    "renderkit_database_url",
    "renderkit_fakeredis",
    "renderkit_fakeredis_server",
    "renderkit_redis_url",
    "require_services",
]

REDIS_URL_VAR = "RENDERKIT_TEST_REDIS_URL"
DATABASE_URL_VAR = "RENDERKIT_TEST_DATABASE_URL"
_TRUE = {"1", "true", "yes", "on"}


def require_services() -> bool:
    """True when a missing Redis/Postgres must fail tests instead of skipping them (CI)."""
    return (
        os.environ.get("CI", "").lower() in _TRUE
        or os.environ.get("RENDERKIT_TEST_REQUIRE_SERVICES", "").lower() in _TRUE
    )


def _unavailable(reason: str) -> None:
    if require_services():
        pytest.fail(f"{reason} (CI=true: integration tests must not skip)", pytrace=False)
    pytest.skip(reason)


def _docker_answers() -> bool:
    # Without DOCKER_HOST and without the default socket there is nothing to ask; asking
    # anyway leaks the docker client's socket (a ResourceWarning under filterwarnings=error).
    if not os.environ.get("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return False
    client = None
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False
    finally:
        if client is not None:
            client.close()


def _service_url(var: str, start_container: str, what: str) -> Iterator[str]:
    url = os.environ.get(var)
    if url:
        yield url
        return
    if not _docker_answers():
        _unavailable(f"no {what}: set {var} or run a Docker engine for testcontainers")
        return
    try:
        import testcontainers  # noqa: F401
    except ImportError:
        _unavailable(f"no {what}: set {var} or pip install testcontainers")
        return
    if start_container == "redis":
        from testcontainers.redis import RedisContainer

        with RedisContainer() as redis_container:
            host = redis_container.get_container_host_ip()
            port = redis_container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
    else:
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as pg:
            yield pg.get_connection_url()


@pytest.fixture(scope="session")
def renderkit_redis_url() -> Iterator[str]:
    """URL of a real Redis for integration tests (env URL, else testcontainers, else skip)."""
    yield from _service_url(REDIS_URL_VAR, "redis", "Redis")


@pytest.fixture(scope="session")
def renderkit_database_url() -> Iterator[str]:
    """URL of a real Postgres for integration tests (env URL, else testcontainers, else skip)."""
    yield from _service_url(DATABASE_URL_VAR, "postgres", "Postgres")


@pytest.fixture
def renderkit_fakeredis_server() -> Any:
    """A fresh fakeredis server shared by the sync and async client fixtures of one test."""
    import fakeredis

    return fakeredis.FakeServer()


@pytest.fixture
def renderkit_fakeredis(renderkit_fakeredis_server: Any) -> Iterator[redis.Redis]:
    """A synchronous fakeredis client (``redis.Redis`` API), empty for each test."""
    import fakeredis

    client = fakeredis.FakeRedis(server=renderkit_fakeredis_server)
    yield client
    client.close()


@pytest.fixture
async def renderkit_async_fakeredis(
    renderkit_fakeredis_server: Any,
) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio fakeredis client (``redis.asyncio.Redis`` API), empty for each test."""
    import fakeredis

    client = fakeredis.FakeAsyncRedis(server=renderkit_fakeredis_server)
    yield client
    await client.aclose()
