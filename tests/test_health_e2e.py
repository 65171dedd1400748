"""End to end: the example app's health against its own Redis and Postgres, stopped and started.

Redis down -> degraded (200); Postgres down -> unhealthy (503) while the restart-gating
``/health/instance`` stays 200; both back -> healthy. The servers are started here on free
ports and stopped by pid (never the shared ones).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on port {port} after 20 s")
        time.sleep(0.05)


class OwnRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_listening(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class OwnPostgres:
    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="rk-health-pg-", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        shutil.chown(self.dir, "postgres", "postgres")
        self.bin = PG_BIN[-1]
        self._as_postgres(
            [f"{self.bin}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync"]
        )

    def _as_postgres(self, command: list[str]) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            [f"{self.bin}/pg_ctl", "-D", self.data, "-o", options, "-l",
             os.path.join(self.dir, "log"), "-w", "-t", "30", "start"]
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres([f"{self.bin}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"])

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def services() -> Iterator[tuple[OwnRedis, OwnPostgres]]:
    if not PG_BIN or shutil.which("redis-server") is None or os.geteuid() != 0:
        pytest.skip("needs redis-server, Postgres binaries and root (runuser) to start own servers")
    redis = OwnRedis(free_port())
    postgres = OwnPostgres(free_port())
    try:
        redis.start()
        postgres.start()
        yield redis, postgres
    finally:
        redis.stop()
        postgres.cleanup()


def get(url: str) -> tuple[int, dict[str, object]]:
    response = httpx.get(url, timeout=10)
    return response.status_code, response.json()


def test_health_follows_redis_and_postgres(
    services: tuple[OwnRedis, OwnPostgres], tmp_path: Path
) -> None:
    """healthy -> Redis down: degraded 200 -> Postgres down: 503 -> both back: healthy."""
    redis, postgres = services
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres",
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "HEALTH_CACHE_TTL": "0s",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "health_shutdown_example:app", "--app-dir",
         str(ROOT / "examples"), "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_listening(port, process)
        base = f"http://127.0.0.1:{port}"
        code, body = get(f"{base}/health")
        assert (code, body["status"]) == (200, "healthy"), body

        redis.stop()
        code, body = get(f"{base}/health")
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert (code, body["status"], checks["redis"]["status"]) == (200, "degraded", "unhealthy")

        postgres.stop()
        code, body = get(f"{base}/health")
        assert (code, body["status"]) == (503, "unhealthy")
        # Render's restart-gating path: a shared outage after start-up must not restart us.
        code, body = get(f"{base}/health/instance")
        assert (code, body["status"]) == (200, "degraded")

        redis.start()
        postgres.start()
        code, body = get(f"{base}/health")
        assert (code, body["status"]) == (200, "healthy"), body
    finally:
        process.terminate()
        process.wait(timeout=10)
