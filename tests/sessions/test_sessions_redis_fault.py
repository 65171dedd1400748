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
        after = client.get("/read")
        assert after.status_code == 200
        assert after.json() == {"after": "the kill", "user": "ada"}  # from the memory fallback
    assert store.stats()["fallback_active"] is True
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


def _outage_app(store: Any) -> Starlette:
    async def login(request: Any) -> JSONResponse:
        request.session["user"] = request.query_params.get("name", "ada")
        if "rotate" in request.query_params:
            request.session.regenerate()
        return JSONResponse({"user": request.session["user"]})

    async def logout(request: Any) -> JSONResponse:
        request.session.clear()
        return JSONResponse({})

    async def cart(request: Any) -> JSONResponse:
        if "put" in request.query_params:
            request.session["cart"] = request.query_params["put"]
        return JSONResponse(
            {"user": request.session.get("user"), "cart": request.session.get("cart")}
        )

    app = Starlette(routes=[Route("/login", login), Route("/logout", logout), Route("/cart", cart)])
    app.add_middleware(SessionMiddleware, store=store, secret_key=SECRET, https_only=False)
    return app


def _hung(process: subprocess.Popen[bytes]) -> Any:
    import contextlib
    import signal

    @contextlib.contextmanager
    def stopped() -> Iterator[None]:
        process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            process.send_signal(signal.SIGCONT)

    return stopped()


@pytest.mark.parametrize("action", ["logout", "regenerate", "write"])
def test_sigstop_outage_changes_survive_sigcont(
    own_redis: tuple[str, subprocess.Popen[bytes]], action: str
) -> None:
    """SIGSTOP the Redis (hung: its data stays), act, SIGCONT: the old copy must not win.

    logout: the stolen cookie stays dead; regenerate: the planted pre-login id stays dead;
    write: cart stays "during" (Redis still holds "before")."""
    url, process = own_redis
    store = FallbackStore(
        RedisStore.from_url(url, socket_timeout=0.3), MemoryStore(), recovery_timeout=0.3
    )
    with TestClient(_outage_app(store)) as client:
        client.get("/login?name=ada")
        client.get("/cart?put=before")
        stolen = dict(client.cookies)
        with _hung(process):
            if action == "logout":
                client.get("/cart")  # the outage is noticed (breaker opens after two)
                client.get("/logout")
            elif action == "regenerate":
                client.get("/login?name=ada&rotate=1")
            else:
                client.get("/cart?put=during")
                client.get("/cart?put=during")
        time.sleep(0.5)  # past recovery_timeout: Redis is tried again
        if action == "write":
            assert client.get("/cart").json()["cart"] == "during"
            assert client.get("/cart").json()["cart"] == "during"
        else:
            client.get("/cart")  # this worker notices the recovery and replays its journal
        thief = TestClient(_outage_app(store), cookies=stolen)
        seen = thief.get("/cart").json()
    if action != "write":
        assert seen == {"user": None, "cart": None}
    store.close()


@pytest.mark.integration
def test_sigstop_write_with_a_postgres_mirror_is_not_reverted(
    own_redis: tuple[str, subprocess.Popen[bytes]], renderkit_database_url: str
) -> None:
    """With a Postgres mirror the session is readable during the outage, so the write lands on
    the same id there; after SIGCONT Redis's older "before" must not come back."""
    import uuid

    from renderkit.sessions import PostgresStore

    url, process = own_redis
    pg = PostgresStore.from_url(renderkit_database_url, table="rk_stop_" + uuid.uuid4().hex[:8])
    pg.create_table()
    store = FallbackStore(RedisStore.from_url(url, socket_timeout=0.3), pg, recovery_timeout=0.3)
    try:
        with TestClient(_outage_app(store)) as client:
            client.get("/login?name=ada")
            client.get("/cart?put=before")
            with _hung(process):
                client.get("/cart?put=during")
                client.get("/cart?put=during")
            time.sleep(0.5)
            carts = [client.get("/cart").json()["cart"] for _ in range(3)]
        assert carts == ["during"] * 3
    finally:
        import psycopg

        with psycopg.connect(renderkit_database_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {pg.table}")
        store.close()
