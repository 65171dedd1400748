"""Edge cases of the app-facing fixtures in renderkit.testing (platform, client, probe)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from renderkit.health import Health
from renderkit.testing import PLATFORM_ENV, ClientFactory, HealthProbe, PlatformFactory


def test_every_provider_is_detected_as_itself(renderkit_platform: PlatformFactory) -> None:
    """Each simulated provider is what detect() reports, with its port."""
    ports = {"render": 10000, "heroku": 5000, "fly": 8080, "local": 8000}
    for provider in PLATFORM_ENV:
        platform = renderkit_platform(provider)
        assert platform.provider == provider
        assert platform.port == ports[provider]
        assert platform.memory_limit_source != "host"


def test_switching_provider_clears_the_previous_one(renderkit_platform: PlatformFactory) -> None:
    """A second call removes the first provider's markers from os.environ."""
    renderkit_platform("render")
    assert os.environ["RENDER"] == "true"
    renderkit_platform("heroku")
    assert "RENDER" not in os.environ
    assert "RENDER_SERVICE_NAME" not in os.environ
    assert os.environ["DYNO"] == "web.1"


def test_apply_false_leaves_the_environment_alone(
    renderkit_platform: PlatformFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply=False returns the Platform without touching os.environ."""
    monkeypatch.delenv("RENDER", raising=False)
    platform = renderkit_platform("render", apply=False, memory=2**30, cpus=2)
    assert platform.provider == "render"
    assert platform.memory_limit == 2**30
    assert platform.cpu_limit == 2
    assert "RENDER" not in os.environ
    assert renderkit_platform.environ["RENDER"] == "true"
    assert renderkit_platform.cgroup_root is not None
    assert (renderkit_platform.cgroup_root / "memory.max").read_text().strip() == str(2**30)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"provider": "aws"}, "use one of render, heroku, fly, local"),
        ({"memory": 0}, "bytes > 0"),
        ({"memory": -5}, "bytes > 0"),
        ({"cpus": 0}, "a CPU count > 0"),
    ],
)
def test_platform_bad_input(
    renderkit_platform: PlatformFactory, kwargs: dict[str, object], message: str
) -> None:
    """Unknown providers and impossible limits are refused with what to use instead."""
    with pytest.raises(ValueError, match=message):
        renderkit_platform(**kwargs)  # type: ignore[arg-type]


async def counter(request: Request) -> Response:
    visits = int(request.cookies.get("visits", "0")) + 1
    response = JSONResponse({"visits": visits, "scheme": request.url.scheme})
    response.set_cookie("visits", str(visits), secure=request.url.scheme == "https")
    return response


async def test_client_keeps_cookies(renderkit_client: ClientFactory) -> None:
    """Cookies set by one response are sent with the next request."""
    client = await renderkit_client(Starlette(routes=[Route("/", counter)]))
    assert (await client.get("/")).json()["visits"] == 1
    assert (await client.get("/")).json()["visits"] == 2


async def test_https_client_gets_secure_cookies_back(renderkit_client: ClientFactory) -> None:
    """With https=True the app sees https and Secure cookies come back."""
    client = await renderkit_client(Starlette(routes=[Route("/", counter)]), https=True)
    first = (await client.get("/")).json()
    assert first["scheme"] == "https"
    assert (await client.get("/")).json()["visits"] == 2


async def test_client_runs_startup_and_shutdown() -> None:
    """The lifespan's startup runs before the client is returned, shutdown at aclose()."""
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    factory = ClientFactory()
    client = await factory(Starlette(routes=[Route("/", counter)], lifespan=lifespan))
    assert events == ["startup"]
    assert (await client.get("/")).status_code == 200
    await factory.aclose()
    assert events == ["startup", "shutdown"]


async def test_failing_startup_is_reported() -> None:
    """A lifespan that raises at startup makes the factory raise, naming the failure."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("DATABASE_URL is not set")
        yield

    factory = ClientFactory()
    with pytest.raises(RuntimeError, match="DATABASE_URL is not set"):
        await factory(Starlette(lifespan=lifespan))
    await factory.aclose()


async def test_app_without_lifespan_support(renderkit_client: ClientFactory) -> None:
    """A bare ASGI callable that rejects lifespan scopes still gets a working client."""

    async def bare(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            raise RuntimeError("http only")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client = await renderkit_client(bare)
    assert (await client.get("/")).status_code == 204


async def test_probe_works_from_async_tests_too(renderkit_health_probe: HealthProbe) -> None:
    """The sync probe call also works inside a running event loop (in a thread)."""
    health = Health()
    health.add("ok", lambda: True)
    report = renderkit_health_probe(health)
    assert report.status == "healthy"
    assert renderkit_health_probe.statuses(report) == {"ok": "healthy"}
