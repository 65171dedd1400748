"""Pytest fixtures for apps built with renderkit (installed as a ``pytest11`` plugin).

Every fixture is prefixed ``renderkit_`` so it never clashes with an app's own:

- ``renderkit_redis_url`` / ``renderkit_database_url``: a real Redis / Postgres, from
  ``RENDERKIT_TEST_REDIS_URL`` / ``RENDERKIT_TEST_DATABASE_URL``, else a testcontainers
  container when a Docker engine answers, else the test is skipped with the reason. With
  ``CI=true`` (or ``RENDERKIT_TEST_REQUIRE_SERVICES=1``) a missing service fails the test
  instead of skipping it, so CI can never pass by skipping.
- ``renderkit_fakeredis`` / ``renderkit_async_fakeredis``: fresh in-process fakeredis clients
  (sync and asyncio) sharing one fake server per test.
- ``renderkit_cache`` / ``renderkit_async_cache``: a ``Cache`` / ``AsyncCache`` on that fake
  Redis; ``renderkit_limiter``: a ``RateLimiter`` counting in it; ``renderkit_session_store``:
  a sessions ``RedisStore`` keeping its sessions there.
- ``renderkit_platform``: a factory simulating Render, Heroku, Fly.io or a laptop (env vars
  and cgroup limit files under ``tmp_path``) and returning the detected ``Platform``.
- ``renderkit_health_probe``: runs a ``Health`` registry fresh and returns its report.
- ``renderkit_client``: a factory of httpx ``AsyncClient`` s over an ASGI app that keep cookies
  and run the app's lifespan.

Importing this module imports nothing heavy: fakeredis and testcontainers load when a fixture
is first used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from renderkit.config import ConfigError, Settings, env, parse_bool

if TYPE_CHECKING:
    import httpx
    import redis
    import redis.asyncio

    from renderkit.cache import AsyncCache, Cache
    from renderkit.health import Health, HealthReport
    from renderkit.platform import Platform
    from renderkit.ratelimit import RateLimiter
    from renderkit.sessions import RedisStore

__all__ = [
    "PLATFORM_ENV",
    "ClientFactory",
    "HealthProbe",
    "PlatformFactory",
    "renderkit_async_cache",
    "renderkit_async_fakeredis",
    "renderkit_cache",
    "renderkit_client",
    "renderkit_database_url",
    "renderkit_fakeredis",
    "renderkit_fakeredis_server",
    "renderkit_health_probe",
    "renderkit_limiter",
    "renderkit_platform",
    "renderkit_redis_url",
    "renderkit_session_store",
    "require_services",
]

REDIS_URL_VAR = "RENDERKIT_TEST_REDIS_URL"
DATABASE_URL_VAR = "RENDERKIT_TEST_DATABASE_URL"


class _TestingSettings(Settings):
    """The pytest plugin's own variables (renderkit.testing)."""

    ci: str | None = env("CI", default=None)
    """Set by CI systems; a true word (true, 1, yes) makes missing services fail integration tests
    instead of skipping them."""
    require_services: str | None = env("RENDERKIT_TEST_REQUIRE_SERVICES", default=None)
    """true: fail, not skip, integration tests when Redis/Postgres are missing."""
    redis_url: str | None = env(REDIS_URL_VAR, default=None, secret=True)
    """The Redis the renderkit_redis_url fixture hands to integration tests."""
    database_url: str | None = env(DATABASE_URL_VAR, default=None, secret=True)
    """The Postgres the renderkit_database_url fixture hands to integration tests."""
    docker_host: str | None = env("DOCKER_HOST", default=None)
    """Where testcontainers finds Docker when no service URL is set."""


def _settings() -> _TestingSettings:
    try:
        return _TestingSettings.load()
    except ConfigError:
        # Only a garbled APP_ENV fails here (every field is optional text), and the test that
        # set it is checking exactly that: build from the raw values, which ignores APP_ENV.
        raw = _TestingSettings.raw()
        values = {info.attribute: raw[info.variable] for info in _TestingSettings.describe()}
        return _TestingSettings(**values)


def _is_true(value: str | None) -> bool:
    """A CI marker holding another word (CI=woodpecker) is not an error: it is just not true."""
    try:
        return value is not None and parse_bool(value)
    except ValueError:
        return False


def require_services() -> bool:
    """True when a missing Redis/Postgres must fail tests instead of skipping them (CI)."""
    settings = _settings()
    return _is_true(settings.ci) or _is_true(settings.require_services)


def _unavailable(reason: str) -> None:
    if require_services():
        pytest.fail(f"{reason} (CI=true: integration tests must not skip)", pytrace=False)
    pytest.skip(reason)


def _docker_answers() -> bool:
    # Without DOCKER_HOST and without the default socket there is nothing to ask; asking
    # anyway leaks the docker client's socket (a ResourceWarning under filterwarnings=error).
    if not _settings().docker_host and not os.path.exists("/var/run/docker.sock"):
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
    settings = _settings()
    url = settings.redis_url if var == REDIS_URL_VAR else settings.database_url
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
    from renderkit._optional import require

    feature = "renderkit's fakeredis fixtures"
    fakeredis = require("fakeredis", extra="testing", feature=feature)
    # Sessions and the limiter run Lua scripts: without lupa fakeredis answers "unknown
    # command 'evalsha'" and the limiter would quietly count in memory, so fail here instead.
    require("lupa", extra="testing", feature=f"{feature} (Lua scripts: sessions, rate limits)")
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


# --- renderkit objects on fakeredis ---------------------------------------------------------


@pytest.fixture
def renderkit_cache(renderkit_fakeredis: redis.Redis) -> Iterator[Cache]:
    """A ``renderkit.cache.Cache`` over the test's fakeredis (``RedisBackend``), empty."""
    from renderkit.cache import Cache, RedisBackend

    cache = Cache(RedisBackend(renderkit_fakeredis))
    yield cache
    cache.close()


@pytest.fixture
async def renderkit_async_cache(
    renderkit_async_fakeredis: redis.asyncio.Redis,
) -> AsyncIterator[AsyncCache]:
    """A ``renderkit.cache.AsyncCache`` over the test's asyncio fakeredis, empty."""
    from renderkit.cache import AsyncCache, RedisBackend

    cache = AsyncCache(RedisBackend(renderkit_async_fakeredis))
    yield cache
    await cache.close()


@pytest.fixture
def renderkit_limiter(renderkit_fakeredis: redis.Redis) -> Iterator[RateLimiter]:
    """A ``renderkit.ratelimit.RateLimiter`` counting in the test's fakeredis.

    Default limit ``100/minute`` (pass per-route limits in your app as usual); the counters are
    visible with ``renderkit_fakeredis.keys()``.
    """
    from limits.storage import RedisStorage

    from renderkit.ratelimit import RateLimiter

    storage = RedisStorage("redis://fakeredis", connection_pool=renderkit_fakeredis.connection_pool)
    limiter = RateLimiter(storage, default="100/minute")
    yield limiter
    limiter.close()


@pytest.fixture
def renderkit_session_store(renderkit_fakeredis: redis.Redis) -> Iterator[RedisStore]:
    """A ``renderkit.sessions.RedisStore`` on the test's fakeredis (serves ASGI and WSGI).

    Pass it to ``SessionMiddleware(store=...)`` or ``RenderKit(session_store=...)``; the
    stored sessions are the ``session:*`` keys of ``renderkit_fakeredis``.
    """
    from renderkit.sessions import RedisStore

    store = RedisStore(renderkit_fakeredis)
    yield store
    store.close()


# --- a simulated platform -----------------------------------------------------------------

PLATFORM_ENV: dict[str, dict[str, str]] = {
    "render": {
        "RENDER": "true",
        "RENDER_SERVICE_NAME": "app",
        "RENDER_SERVICE_TYPE": "web",
        "RENDER_SERVICE_ID": "srv-test",
        "RENDER_INSTANCE_ID": "srv-test-abc12",
        "RENDER_EXTERNAL_URL": "https://app.onrender.com",
        "RENDER_GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567",
        "RENDER_GIT_BRANCH": "main",
        "PORT": "10000",
    },
    "heroku": {
        "DYNO": "web.1",
        "HEROKU_APP_NAME": "app",
        "HEROKU_APP_DEFAULT_DOMAIN_NAME": "app.herokuapp.com",
        "HEROKU_SLUG_COMMIT": "0123456789abcdef0123456789abcdef01234567",
        "PORT": "5000",
    },
    "fly": {
        "FLY_APP_NAME": "app",
        "FLY_ALLOC_ID": "alloc-test",
        "FLY_REGION": "ams",
        "FLY_PROCESS_GROUP": "app",
        "PORT": "8080",
    },
    "local": {},
}
"""The env vars each simulated provider sets (``renderkit_platform(provider)``)."""


def _platform_markers() -> tuple[str, ...]:
    from renderkit.config import ENVIRONMENT_VARIABLES
    from renderkit.platform import PROVIDER_MARKERS

    markers = [name for names in PROVIDER_MARKERS.values() for name in names]
    return (*markers, "IS_PULL_REQUEST", *ENVIRONMENT_VARIABLES, "PORT")


def _cpu_max(cpus: float | None) -> str:
    if cpus is None:
        return "max 100000"
    return f"{round(cpus * 100000)} 100000"


class PlatformFactory:
    """Simulate where the app runs; call it to get the ``Platform`` renderkit would detect.

    ``factory("render", memory=512 * 2**20, cpus=0.5, env={"IS_PULL_REQUEST": "true"})``
    writes cgroup v2 ``memory.max`` / ``cpu.max`` files under a fresh directory in
    ``tmp_path`` and, unless ``apply=False``, puts the provider's env vars into
    ``os.environ`` for the test (clearing other providers' markers and APP_ENV/ENV/PORT), so
    code calling ``detect()`` or ``environment()`` itself agrees. ``memory=None`` / ``cpus=None``
    write "max" (no limit). After a call, ``environ`` and ``cgroup_root`` hold what was used.
    """

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self._tmp = tmp_path
        self._monkeypatch = monkeypatch
        self._count = 0
        self.environ: dict[str, str] = {}
        self.cgroup_root: Path | None = None

    def __call__(
        self,
        provider: str = "render",
        *,
        memory: int | None = 512 * 1024 * 1024,
        cpus: float | None = 0.5,
        env: Mapping[str, str] | None = None,
        apply: bool = True,
    ) -> Platform:
        from renderkit.platform import detect

        if provider not in PLATFORM_ENV:
            raise ValueError(
                f"renderkit_platform({provider!r}): use one of {', '.join(PLATFORM_ENV)}"
            )
        if memory is not None and (isinstance(memory, bool) or memory <= 0):
            raise ValueError(f"renderkit_platform(memory={memory!r}): bytes > 0, or None")
        if cpus is not None and not cpus > 0:
            raise ValueError(f"renderkit_platform(cpus={cpus!r}): a CPU count > 0, or None")
        self._count += 1
        root = self._tmp / f"renderkit-cgroup-{self._count}"
        root.mkdir()
        (root / "cgroup.controllers").write_text("cpu memory\n")
        (root / "memory.max").write_text(f"{memory if memory is not None else 'max'}\n")
        (root / "cpu.max").write_text(_cpu_max(cpus) + "\n")
        environ = {**PLATFORM_ENV[provider], **(env or {})}
        if apply:
            for name in _platform_markers():
                self._monkeypatch.delenv(name, raising=False)
            for name in list(os.environ):
                if name.startswith(("RENDER_", "HEROKU_", "FLY_", "RAILWAY_")):
                    self._monkeypatch.delenv(name, raising=False)
            for name, value in environ.items():
                self._monkeypatch.setenv(name, value)
        self.environ = environ
        self.cgroup_root = root
        return detect(environ, root, proc_self_cgroup=None)


@pytest.fixture
def renderkit_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PlatformFactory:
    """A factory simulating Render/Heroku/Fly.io/local; returns the detected ``Platform``."""
    return PlatformFactory(tmp_path, monkeypatch)


# --- health -------------------------------------------------------------------------------


class HealthProbe:
    """Run a ``Health`` registry the way its endpoints do, bypassing the report cache.

    ``probe(health)`` from a sync test, ``await probe.run(health)`` from an async one; both
    return the ``HealthReport`` (``.status``, ``.http_status``, ``.checks[name].status``).
    ``probe.statuses(report)`` gives ``{check name: status}`` for one-line assertions.
    """

    def __call__(self, health: Health) -> HealthReport:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return health.run_sync(fresh=True)
        # Called from a running loop (a sync helper inside an async test): use a thread.
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["report"] = health.run_sync(fresh=True)
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=target, name="renderkit-health-probe", daemon=True)
        thread.start()
        thread.join(timeout=60)
        if "error" in box:
            raise box["error"]
        if "report" not in box:
            raise TimeoutError("the health run took over 60 s")
        report: HealthReport = box["report"]
        return report

    async def run(self, health: Health) -> HealthReport:
        """Run every check now (no cache) and return the report."""
        return await health.run(fresh=True)

    @staticmethod
    def statuses(report: HealthReport) -> dict[str, str]:
        """``{check name: "healthy" | "degraded" | "unhealthy"}``."""
        return {name: result.status for name, result in report.checks.items()}


@pytest.fixture
def renderkit_health_probe() -> HealthProbe:
    """A :class:`HealthProbe`: run a ``Health`` registry fresh and get its report."""
    return HealthProbe()


# --- an ASGI client that keeps cookies ------------------------------------------------------


class _Lifespan:
    """Drive an ASGI app's lifespan protocol: startup now, shutdown at close."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.supported = True

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        try:
            await self.app(scope, self.queue.get, self.sent.put)
        except Exception:
            # Apps without lifespan support raise on the unknown scope type; carry on.
            self.supported = False
            await self.sent.put({"type": "lifespan.unsupported"})

    async def startup(self, timeout: float) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        await self.queue.put({"type": "lifespan.startup"})
        message = await asyncio.wait_for(self.sent.get(), timeout)
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the app's lifespan startup failed: {message.get('message', '')}")

    async def shutdown(self, timeout: float) -> None:
        if self.task is None:
            return
        if self.supported and not self.task.done():
            await self.queue.put({"type": "lifespan.shutdown"})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.sent.get(), timeout)
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


class ClientFactory:
    """``await factory(app)`` returns an ``httpx.AsyncClient`` talking to ``app`` in-process.

    The client keeps cookies between requests (a session survives), does not follow
    redirects unless asked, and sends requests as ``http://testserver`` (``https=True``:
    ``https://testserver``, so ``Secure`` cookies come back). ``lifespan=True`` runs the
    app's startup before returning and its shutdown at the end of the test.
    """

    def __init__(self) -> None:
        self._clients: list[httpx.AsyncClient] = []
        self._lifespans: list[_Lifespan] = []

    async def __call__(
        self,
        app: Any,
        *,
        https: bool = False,
        lifespan: bool = True,
        headers: Mapping[str, str] | None = None,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        startup_timeout: float = 10.0,
    ) -> httpx.AsyncClient:
        import httpx

        if lifespan:
            runner = _Lifespan(app)
            await runner.startup(startup_timeout)
            self._lifespans.append(runner)
        transport = httpx.ASGITransport(app=app, client=client)
        base = "https://testserver" if https else "http://testserver"
        async_client = httpx.AsyncClient(
            transport=transport, base_url=base, headers=dict(headers or {})
        )
        self._clients.append(async_client)
        return async_client

    async def aclose(self) -> None:
        """Close every client, then run each app's lifespan shutdown (newest first)."""
        for async_client in reversed(self._clients):
            await async_client.aclose()
        for runner in reversed(self._lifespans):
            await runner.shutdown(10.0)
        self._clients.clear()
        self._lifespans.clear()


@pytest.fixture
async def renderkit_client() -> AsyncIterator[ClientFactory]:
    """A factory: ``client = await renderkit_client(app)`` (httpx over ASGI, keeps cookies)."""
    factory = ClientFactory()
    yield factory
    await factory.aclose()
