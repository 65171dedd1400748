"""Redis killed mid-request: the request still succeeds (own redis-server on a free port)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _sessions_helpers import SECRET
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from renderkit.sessions import FallbackStore, MemoryStore, RedisStore, SessionMiddleware

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)


def _app(store: Any, process: subprocess.Popen[bytes]) -> Starlette:
    async def login(request: Any) -> JSONResponse:
        request.session["user"] = "ada"
        return JSONResponse({"ok": True})

    async def kill_then_write(request: Any) -> JSONResponse:
        user = request.session.get("user")  # loaded from the live Redis
        process.kill()
        process.wait(timeout=5)
        request.session["after"] = "the kill"
        return JSONResponse({"user": user})

    async def read(request: Any) -> JSONResponse:
        return JSONResponse(dict(request.session))

    app = Starlette(
        routes=[Route("/login", login), Route("/kill", kill_then_write), Route("/read", read)]
    )
    app.add_middleware(SessionMiddleware, store=store, secret_key=SECRET, https_only=False)
    return app


def test_redis_killed_mid_request_falls_back(own_redis: Any) -> None:
    """With FallbackStore the write during the outage lands in memory; health is degraded."""
    url, process = own_redis
    store = FallbackStore(RedisStore.from_url(url), MemoryStore(), recovery_timeout=60)
    with TestClient(_app(store, process)) as client:
        assert client.get("/login").status_code == 200
        response = client.get("/kill")
        assert response.status_code == 200
        assert response.json() == {"user": "ada"}
        started = time.perf_counter()
        after = client.get("/read")
        assert after.status_code == 200
        assert after.json() == {"after": "the kill", "user": "ada"}
        assert time.perf_counter() - started < 2.0
    assert store.health_check().status == "degraded"


def test_redis_killed_mid_request_without_fallback_still_answers(own_redis: Any) -> None:
    """A plain RedisStore: the request succeeds (the write is lost and logged), no 500."""
    url, process = own_redis
    store = RedisStore.from_url(url)
    app = _app(store, process)
    with TestClient(app) as client:
        client.get("/login")
        assert client.get("/kill").status_code == 200
        assert client.get("/read").status_code == 200
        assert client.get("/read").json() == {}
    assert store.health_check().status == "unhealthy"
