"""Failover with an app that uses all three: a cluster primary and the Sentinel primary killed.

An ASGI app (cache, sessions, rate limits, each on the same Redis URL) runs in uvicorn with
two workers on 127.0.0.1. The test logs users in, waits until the replica holds what the
primary holds (Redis replicates asynchronously: a session written in the last replication lag
can be lost, which is Redis's guarantee, not renderkit's), kills the primary by pid while
requests keep arriving, and checks: no 5xx, every session written before is still there
afterwards, and a route limit counts exactly across both workers before and after.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e]

httpx = pytest.importorskip("httpx")

APP = """
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from renderkit.cache import AsyncCache
from renderkit.ratelimit import RateLimiter, RateLimitMiddleware, limit
from renderkit.sessions import FallbackStore, MemoryStore, RedisStore, SessionMiddleware

URL = os.environ["RK_FAILOVER_URL"]
cache = AsyncCache.from_url(URL)
store = FallbackStore(RedisStore.from_url(URL), MemoryStore(), recovery_timeout=0.5)
limiter = RateLimiter(URL, default="100000/minute", recovery_timeout=0.5, processes=2)


async def login(request):
    request.session["user"] = request.query_params["user"]
    return JSONResponse({"pid": os.getpid()})


async def me(request):
    return JSONResponse({"pid": os.getpid(), "user": request.session.get("user")})


async def work(request):
    n = (await cache.get("hits")) or 0
    await cache.set("hits", n + 1, ttl=60)
    request.session["n"] = request.session.get("n", 0) + 1
    return JSONResponse({"pid": os.getpid()})


def trial(request):
    return "trial:" + (request.header("x-trial") or "none")


@limit("10/minute", limiter=limiter, key=trial)
async def before(request):
    return PlainTextResponse(str(os.getpid()))


@limit("10/minute", limiter=limiter, key=trial)
async def after(request):
    return PlainTextResponse(str(os.getpid()))


async def health(request):
    checks = {
        "cache": (await cache.health_check()).status,
        "sessions": (await store.ahealth_check()).status,
        "ratelimit": limiter.health_check().status,
    }
    return JSONResponse({"pid": os.getpid(), **checks})


app = Starlette(routes=[
    Route("/login", login), Route("/me", me), Route("/work", work),
    Route("/before", before), Route("/after", after), Route("/health", health),
])
app.add_middleware(SessionMiddleware, store=store, secret_key="x" * 32, https_only=False)
app.add_middleware(RateLimitMiddleware, limiter=limiter)
"""


@contextlib.contextmanager
def two_workers(directory: Path, url: str) -> Iterator[str]:
    """uvicorn --workers 2 serving APP on a free 127.0.0.1 port; stopped by pid."""
    from _uvicorn_server import _stop, _wait_listening, free_port

    (directory / "failover_app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    env = {**__import__("os").environ, "RK_FAILOVER_URL": url}
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "failover_app:app", "--app-dir", str(directory),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
            "--log-level", "warning",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        _wait_listening(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


def fresh(base: str, path: str, headers: dict[str, str] | None = None) -> Any:
    """One request on a new connection (so the kernel spreads them over both workers)."""
    with httpx.Client(base_url=base, timeout=5) as client:
        return client.get(path, headers={"connection": "close", **(headers or {})})


def wait_until(what: str, ok: Callable[[], bool], seconds: float = 30) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if ok():
                return time.monotonic() - started
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} within {seconds} s")


def all_healthy(base: str) -> bool:
    """Both workers report all three healthy (20 answers on fresh connections)."""
    seen: dict[int, bool] = {}
    for _ in range(20):
        body = fresh(base, "/health").json()
        pid = body.pop("pid")
        seen[pid] = seen.get(pid, True) and set(body.values()) == {"healthy"}
    return len(seen) == 2 and all(seen.values())


def counted_exactly(base: str, path: str) -> tuple[Counter[int], set[str]]:
    """Trials of 15 concurrent requests to a 10/minute route, each on a fresh connection and
    each trial under a fresh key: every trial must answer exactly 10 x 200 and 5 x 429. Up to
    5 trials, until one has been answered by both workers (the kernel may hand one worker
    every connection of a trial, which would not show that the count is shared)."""
    from concurrent.futures import ThreadPoolExecutor

    statuses: Counter[int] = Counter()
    pids: set[str] = set()
    for number in range(5):
        key = {"x-trial": f"{path}-{number}-{time.monotonic_ns()}"}
        with ThreadPoolExecutor(15) as pool:
            responses = list(pool.map(lambda _: fresh(base, path, key), range(15)))
        statuses = Counter(response.status_code for response in responses)
        pids = {response.text for response in responses if response.status_code == 200}
        if statuses != {200: 10, 429: 5} or len(pids) == 2:
            break
    return statuses, pids


class Load:
    """Requests from 4 threads (each its own session) until stopped: statuses counted."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.statuses: Counter[int | str] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(4)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=5) as client:
            for _ in range(5000):  # bounded: a few seconds at most at loopback speed
                if self._stop.is_set():
                    return
                try:
                    status: int | str = client.get("/work").status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.statuses[status] += 1
                time.sleep(0.005)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def run_failover(base: str, kill: Callable[[], None], replicated: Callable[[], bool]) -> dict:
    """The scenario; returns the figures (statuses, seconds to recovery)."""
    wait_until("both workers healthy before the failover", lambda: all_healthy(base))
    statuses, pids = counted_exactly(base, "/before")
    assert statuses == {200: 10, 429: 5}, statuses
    assert len(pids) == 2, "the limit must have been shared by both workers"

    users = {}
    for i in range(20):
        client = httpx.Client(base_url=base, timeout=5)
        assert client.get("/login", params={"user": f"u{i}"}).status_code == 200
        users[f"u{i}"] = client
    wait_until("the replica caught up with the primary", replicated, seconds=10)

    with Load(base) as load:
        time.sleep(0.5)
        killed_at = time.monotonic()
        kill()
        recovery = wait_until("all three healthy again", lambda: all_healthy(base), seconds=60)
        time.sleep(0.5)
    assert not [s for s in load.statuses if isinstance(s, str) or s >= 500], load.statuses

    lost = [u for u, c in users.items() if c.get("/me").json()["user"] != u]
    for client in users.values():
        client.close()
    assert not lost, f"sessions written before the failover are gone: {lost}"
    statuses, pids = counted_exactly(base, "/after")
    assert statuses == {200: 10, 429: 5}, statuses
    assert len(pids) == 2
    return {
        "requests": sum(load.statuses.values()),
        "statuses": dict(load.statuses),
        "healthy_after_s": round(recovery, 2),
        "killed_to_end_s": round(time.monotonic() - killed_at, 2),
    }


def _replication(server: Any) -> dict[str, str]:
    lines = server.cli("info", "replication").splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def _offsets_match(primary: Any, replica: Any) -> bool:
    """The replica has applied everything the primary has written (what WAIT waits for)."""
    offset = _replication(primary).get("master_repl_offset")
    return offset is not None and offset == _replication(replica).get("slave_repl_offset")


def _replica_of(servers: list[Any], node_id: str) -> Any:
    """The server whose own line in CLUSTER NODES says it replicates ``node_id``."""
    for server in servers:
        for line in server.cli("cluster", "nodes").splitlines():
            fields = line.split()
            if "myself" in fields[2] and "slave" in fields[2] and fields[3] == node_id:
                return server
    raise AssertionError(f"no replica of {node_id}")


def test_cluster_primary_killed_under_load(tmp_path: Path) -> None:
    """A primary of a 3+3 cluster (of its own: the shared one is never killed) dies by pid."""
    from _redis_topology import redis_cluster

    with redis_cluster(tmp_path / "cluster") as cluster, two_workers(tmp_path, cluster.url) as base:
        primary = cluster.primaries()[0]
        node_id = primary.cli("cluster", "myid")
        replica = _replica_of(cluster.servers, node_id)
        figures = run_failover(base, primary.kill, lambda: _offsets_match(primary, replica))
        print("cluster failover:", figures)


def test_sentinel_primary_killed_under_load(tmp_path: Path, redis_sentinel: Any) -> None:
    """The Sentinel-managed primary dies by pid; the app follows the promoted replica."""
    with two_workers(tmp_path, redis_sentinel.url) as base:
        figures = run_failover(
            base,
            redis_sentinel.primary.kill,
            lambda: _offsets_match(redis_sentinel.primary, redis_sentinel.replica),
        )
        assert redis_sentinel.current_primary_port() == redis_sentinel.replica.port
        print("sentinel failover:", figures)
