"""Who sees health detail: forged forwarding headers never unlock it (ASGI and WSGI)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from werkzeug.test import Client

from renderkit._http import ProxyTrust
from renderkit.health import Health
from renderkit.wsgi import HealthApp

FORGED = [
    {"X-Forwarded-For": "127.0.0.1"},
    {"X-Forwarded-For": "::1, 198.51.100.7"},
    {"X-Forwarded-For": "::1"},
    {"X-Forwarded-For": "127.0.0.1, 127.0.0.1"},
    {"X-Forwarded-For": "::ffff:127.0.0.1, 198.51.100.7"},
]
NEIGHBOUR = "10.0.7.8"  # another service on Render's private network


def render_health(**options: Any) -> Health:
    health = Health(trust=ProxyTrust.render(), cache_ttl=0, **options)
    health.add("database", lambda: None)
    return health


@pytest.mark.parametrize("headers", FORGED)
async def test_forged_loopback_gets_no_detail_over_asgi(headers: dict[str, str]) -> None:
    """A private-network peer claiming to be loopback sees the public answer only."""
    app = Starlette(routes=render_health().routes())
    transport = httpx.ASGITransport(app=app, client=(NEIGHBOUR, 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/health", headers=headers)
        live = await client.get("/health/live", headers=headers)
    assert response.json() == {"status": "healthy"}
    assert live.json() == {"status": "healthy"}  # no uptime either


@pytest.mark.parametrize("headers", FORGED)
def test_forged_loopback_gets_no_detail_over_wsgi(headers: dict[str, str]) -> None:
    """The WSGI app applies the same rule to REMOTE_ADDR and the forwarded headers."""
    client = Client(HealthApp(render_health()))
    response = client.get("/health", headers=headers, environ_base={"REMOTE_ADDR": NEIGHBOUR})
    assert response.json == {"status": "healthy"}


async def test_real_loopback_and_real_client_through_the_proxy() -> None:
    """A real loopback peer sees detail; a client behind Render's proxy is judged by its
    own address, whatever it put in front of the chain."""
    health = render_health(trusted_networks=["198.51.100.0/24"])
    app = Starlette(routes=health.routes())
    proxied = {"X-Forwarded-For": "127.0.0.1, 198.51.100.7, 172.70.1.2"}
    transport = httpx.ASGITransport(app=app, client=(NEIGHBOUR, 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert "checks" in (await client.get("/health", headers=proxied)).json()
        outsider = {"X-Forwarded-For": "127.0.0.1, 203.0.113.9, 172.70.1.2"}
        assert (await client.get("/health", headers=outsider)).json() == {"status": "healthy"}
    local = render_health()
    transport = httpx.ASGITransport(app=Starlette(routes=local.routes()), client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert "checks" in (await client.get("/health")).json()


def test_token_still_unlocks_detail_from_anywhere() -> None:
    """The bearer token works whatever the peer; a wrong token does not."""
    client = Client(HealthApp(render_health(token="s3cret-token")))
    base = {"REMOTE_ADDR": "203.0.113.50"}
    token = {"Authorization": "Bearer s3cret-token"}
    good = client.get("/health", headers=token, environ_base=base)
    bad = client.get("/health", headers={"Authorization": "Bearer nope"}, environ_base=base)
    assert good.json is not None and "checks" in good.json
    assert bad.json == {"status": "healthy"}


E2E_APP = """
from starlette.applications import Starlette
from renderkit._http import ProxyTrust
from renderkit.health import Health

plain = Health()
behind_render = Health(trust=ProxyTrust.render())
for registry in (plain, behind_render):
    registry.add("database", lambda: None)
app = Starlette(routes=[*plain.routes("/plain"), *behind_render.routes("/render")])
"""


@pytest.mark.e2e
def test_uvicorn_rewriting_the_client_from_forged_headers_unlocks_nothing(tmp_path: Any) -> None:
    """Under uvicorn --proxy-headers --forwarded-allow-ips '*' a forged X-Forwarded-For becomes
    the peer; a loopback peer that came with forwarding headers still sees the public answer,
    and a plain local request still sees detail."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    from _uvicorn_server import _stop, _wait_listening, free_port

    root = Path(__file__).resolve().parent.parent
    (Path(tmp_path) / "access_app.py").write_text(textwrap.dedent(E2E_APP))
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "access_app:app", "--app-dir", str(tmp_path),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--proxy-headers", "--forwarded-allow-ips", "*",
        ],
        env={"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_listening(process, port)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=5) as client:
            for prefix in ("/plain", "/render"):
                assert "checks" in client.get(prefix).json()  # a real local caller
                for headers in FORGED:
                    assert client.get(prefix, headers=headers).json() == {"status": "healthy"}
    finally:
        _stop(process)
