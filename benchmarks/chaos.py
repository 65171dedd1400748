"""Chaos run: the chaos app under load while Redis and Postgres fail under it, then SIGTERM.

::

    .venv/bin/python benchmarks/chaos.py                  # 40 s, 16 clients (nox -s chaos)
    .venv/bin/python benchmarks/chaos.py --duration 20 --clients 8 --json out.json
    .venv/bin/python benchmarks/chaos.py --redis cluster  # nox -s chaos -- --redis cluster

``--redis cluster`` replaces the one redis-server by a Redis Cluster of 3 primaries and 3
replicas (``tests/_redis_topology.py``): the kill -9 hits one primary (its replica takes over,
the killed node rejoins as a replica at 35 %), the SIGSTOP another primary (hung past the
cluster's 2 s node timeout, so it fails over too, and rejoins as a replica on SIGCONT).

It starts its own ``redis-server`` and its own Postgres (``initdb`` into a temporary directory,
run as user ``postgres`` when started as root) on free ports, serves ``benchmarks/chaos_app.py``
with ``uvicorn --workers 2`` on 127.0.0.1, and runs for a fixed time:

- ``clients`` concurrent clients, each keeping its cookies, call ``GET /count`` in a loop and
  check that the counter in their session only goes up;
- a burst of ``3 x limit`` requests to ``/limited`` under a fresh key every ~2 s measures how
  far the two workers together overshoot the limit;
- a poller reads ``/health`` every 200 ms and records each status change;
- three log-out clients each log in while Redis is up, log out (or log in again:
  ``regenerate()``) once it is away, and replay each ended cookie afterwards: a replay that
  names the user is a resurrection;
- the fault script: kill -9 Redis at 15 % of the run, restart it at 35 %; terminate every app
  backend in Postgres at 45 %; restart Postgres at 60 %; SIGSTOP Redis at 70 % (hung, its
  data kept) and SIGCONT at 82 %; at the end start slow requests and send SIGTERM to uvicorn
  while they are in flight.

Every loop is bounded by the deadline; every process it starts is stopped by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Idle connections are dropped by the client before uvicorn's 5 s keep-alive timeout closes
# them: a request sent on a connection the server is closing that instant fails with a
# ReadError that says nothing about the app (seen when bursts were more than 5 s apart).
_LIMITS = httpx.Limits(keepalive_expiry=2.0)


# --- services ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class OwnCluster:
    """A 3-primary, 3-replica Redis Cluster; each fault hits one primary, found when it hits."""

    what = "a cluster primary"
    restarted = "the killed primary restarted (rejoins as a replica)"

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._dir = Path(tempfile.mkdtemp(prefix="rk-chaos-cluster-"))
        self.cluster: Any = None
        self._killed: Any = None
        self._paused: Any = None

    @property
    def url(self) -> str:
        return str(self.cluster.url)

    def start(self) -> None:
        sys.path.insert(0, str(ROOT / "tests"))
        from _redis_topology import redis_cluster, start_server

        if self.cluster is None:
            self.cluster = self._stack.enter_context(redis_cluster(self._dir))
            return
        dead = self._killed  # same port and nodes.conf: the node rejoins the cluster
        back = start_server(dead.directory, dead.port, "--cluster-enabled", "yes",
                            "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", "2000")  # fmt: skip
        self.cluster.servers[self.cluster.servers.index(dead)] = back

    def kill(self) -> None:
        self._killed = self.cluster.primaries()[0]
        self._killed.kill()

    def pause(self, on: bool) -> None:
        if on:
            self._paused = self.cluster.primaries()[0]
            self._paused.pause()
        elif self._paused is not None:
            self._paused.resume()

    def stop(self) -> None:
        self._stack.close()  # every node stopped by pid
        shutil.rmtree(self._dir, ignore_errors=True)


class OwnRedis:
    """A throwaway redis-server (no persistence) that can be killed and restarted on its port."""

    what = "redis"
    restarted = "redis restarted (empty)"

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_port(self.port, 10, self.process)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def pause(self, on: bool) -> None:
        """SIGSTOP (hung: connections stall, the data stays) or SIGCONT."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP if on else signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.pause(False)  # a stopped process does not act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    path = found[-1] if found else shutil.which(name)
    if path is None:
        raise RuntimeError(f"Postgres server binary {name} is not installed")
    return path


def _as_postgres(*cmd: str) -> list[str]:
    if os.geteuid() != 0:
        return list(cmd)
    return ["runuser", "-u", "postgres", "--", *cmd]


class OwnPostgres:
    """A throwaway Postgres cluster in a temporary directory on a free port."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="rk-chaos-pg-")
        os.chmod(self.root, 0o777)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres(_pg_bin("pg_ctl"), "-D", self.data, "-w", "-t", "30", *args),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def init(self) -> None:
        subprocess.run(
            _as_postgres(_pg_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                         "--no-sync"),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )  # fmt: skip

    def start(self) -> None:
        self._pg_ctl(
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "-l",
            os.path.join(self.root, "log"),
            "start",
        )

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "stop")
        self.start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._pg_ctl("-m", "fast", "stop")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)

    def terminate_backends(self, application_name: str) -> int:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application_name,),
            ).fetchall()
        return len(rows)


class Server:
    """``uvicorn chaos_app:app --workers N`` on a free 127.0.0.1 port."""

    def __init__(self, env: dict[str, str], workers: int = 2) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # WEB_CONCURRENCY as a PaaS sets it: the limiter's memory fallback allows each worker
        # limit // workers while Redis is down, so the service's overshoot stays bounded.
        self.env = {**os.environ, "WEB_CONCURRENCY": str(workers), **env,
                    "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT / 'src'}"}  # fmt: skip
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="rk-chaos-uvicorn-", suffix=".log")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "chaos_app:app", "--app-dir", str(HERE),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
             "--log-level", "warning", "--timeout-graceful-shutdown", "20"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait_port(self.port, 30, self.process)

    def sigterm(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            if self.wait(15) is None:
                self.process.kill()
                self.process.wait(timeout=10)

    def tail(self, chars: int = 3000) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-chars:]


# --- the report -------------------------------------------------------------------------------


@dataclass
class ChaosReport:
    duration_s: float
    clients: int
    wired: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    requests_sent: int = 0
    status_codes: dict[str, int] = field(default_factory=dict)
    connection_errors: int = 0
    connection_errors_after_sigterm: int = 0
    sessions_lost: int = 0
    writes_lost: int = 0
    sessions_resurrected: int = 0
    logouts_during_outage: int = 0
    logins_during_outage: int = 0
    stolen_replays: int = 0
    session_checks: int = 0
    counter_jumps: int = 0
    rate_bursts_redis_up: int = 0
    rate_overshoot_redis_up: int = 0
    rate_bursts_before_faults: int = 0
    rate_overshoot_before_faults: int = 0
    rate_bursts_recovering: int = 0
    rate_overshoot_recovering: int = 0
    rate_bursts_redis_down: int = 0
    rate_overshoot_redis_down: int = 0
    rate_bursts: list[str] = field(default_factory=list)
    limit: int = 0
    degraded_s: float = 0.0
    unhealthy_s: float = 0.0
    health_transitions: list[str] = field(default_factory=list)
    in_flight_at_sigterm: int = 0
    in_flight_completed: int = 0
    in_flight_dropped: int = 0
    exit_code: int | None = None
    server_errors: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    server_log_tail: str = ""

    @property
    def errors_500(self) -> int:
        return sum(
            n for code, n in self.status_codes.items() if code.startswith("5") and code != "503"
        )

    def goals(self) -> dict[str, bool]:
        return {
            "zero 500s": self.errors_500 == 0,
            "zero in-flight requests dropped at shutdown": self.in_flight_dropped == 0,
            "zero sessions lost": self.sessions_lost == 0,
            "zero writes lost": self.writes_lost == 0,
            "zero sessions resurrected": self.sessions_resurrected == 0,
            "zero rate-limit overshoot with Redis up": self.rate_overshoot_redis_up == 0,
        }

    def markdown(self) -> str:
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(self.status_codes.items()))
        rows = [
            ("modules wired", ", ".join(self.wired)),
            ("modules missing (skipped)", ", ".join(self.missing) or "none"),
            ("run", f"{self.duration_s:.0f} s, {self.clients} clients, uvicorn --workers 2"),
            ("requests sent", str(self.requests_sent)),
            ("answered, by status", codes),
            ("5xx other than 503", str(self.errors_500)),
            ("connection errors before SIGTERM", str(self.connection_errors)),
            ("connection errors after SIGTERM (listener closed)",
             str(self.connection_errors_after_sigterm)),
            ("session checks / sessions lost (counter back to 1) / writes lost (went back)",
             f"{self.session_checks} / {self.sessions_lost} / {self.writes_lost}"),
            ("log-outs / log-ins (regenerate) during an outage",
             f"{self.logouts_during_outage} / {self.logins_during_outage}"),
            ("replays of their old cookies / sessions resurrected",
             f"{self.stolen_replays} / {self.sessions_resurrected}"),
            ("counter jumped ahead (a retried write counted twice)", str(self.counter_jumps)),
            ("rate-limit bursts with Redis up / overshoot",
             f"{self.rate_bursts_redis_up} / {self.rate_overshoot_redis_up} (limit {self.limit})"),
            ("of which before any fault / overshoot",
             f"{self.rate_bursts_before_faults} / {self.rate_overshoot_before_faults}"),
            ("rate-limit bursts in the 5 s after Redis restarted / overshoot",
             f"{self.rate_bursts_recovering} / {self.rate_overshoot_recovering}"),
            ("rate-limit bursts with Redis down / overshoot",
             f"{self.rate_bursts_redis_down} / {self.rate_overshoot_redis_down}"),
            ("time reported degraded / unhealthy",
             f"{self.degraded_s:.1f} s / {self.unhealthy_s:.1f} s"),
            ("health transitions", " → ".join(self.health_transitions) or "none"),
            ("in flight at SIGTERM / completed / dropped",
             f"{self.in_flight_at_sigterm} / {self.in_flight_completed} / "
             f"{self.in_flight_dropped}"),
            ("uvicorn exit code", str(self.exit_code)),
        ]  # fmt: skip
        lines = ["| measure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in rows]
        lines += ["", "| goal | met |", "|---|:---:|"]
        lines += [f"| {g} | {'yes' if ok else '**no**'} |" for g, ok in self.goals().items()]
        lines += ["", "Fault timeline: " + "; ".join(self.faults)]
        if self.server_errors:
            lines += ["", "First 5xx answers, connection errors: " + "; ".join(self.server_errors)]
        if self.rate_bursts:
            lines += ["", f"Rate-limit bursts (limit {self.limit}): " + "; ".join(self.rate_bursts)]
        return "\n".join(lines) + "\n"


# --- the run ----------------------------------------------------------------------------------


class _State:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.started = time.monotonic()
        self.redis_up = True
        self.redis_back_at = 0.0
        self.sigterm_sent = False
        self.codes: Counter[str] = Counter()
        self.sent = 0
        self.conn_errors = 0
        self.conn_errors_after = 0


async def _client_loop(base: str, state: _State, report: ChaosReport, client_no: int) -> None:
    last = 0
    async with httpx.AsyncClient(base_url=base, timeout=10.0, limits=_LIMITS) as client:
        while time.monotonic() < state.deadline and not state.sigterm_sent:
            state.sent += 1
            try:
                response = await client.get("/count")
            except httpx.HTTPError as exc:
                if state.sigterm_sent:
                    state.conn_errors_after += 1
                else:
                    state.conn_errors += 1
                    if len(report.server_errors) < 20:
                        report.server_errors.append(
                            f"{time.monotonic() - state.started:.1f}s client {client_no}: "
                            f"{type(exc).__name__}"
                        )
                await asyncio.sleep(0.05)
                continue
            state.codes[str(response.status_code)] += 1
            if response.status_code >= 500 and response.status_code != 503:
                if len(report.server_errors) < 20:
                    report.server_errors.append(
                        f"{time.monotonic() - state.started:.1f}s client {client_no} "
                        f"after count {last}: {response.status_code}"
                    )
            if response.status_code == 200:
                value = int(response.json()["count"])
                report.session_checks += 1
                if value <= last and value == 1:
                    report.sessions_lost += 1  # the session's data is gone
                    if len(report.server_errors) < 20:
                        report.server_errors.append(
                            f"{time.monotonic() - state.started:.1f}s client {client_no}: "
                            f"session lost at count {last}"
                        )
                elif value <= last:
                    report.writes_lost += last + 1 - value  # an older state came back
                    if len(report.server_errors) < 20:
                        report.server_errors.append(
                            f"{time.monotonic() - state.started:.1f}s client {client_no}: "
                            f"count went back from {last} to {value} (pid {response.json()['pid']})"
                        )
                elif value > last + 1 and last:
                    report.counter_jumps += 1
                last = value
            else:
                await asyncio.sleep(0.05)


async def _logout_client(base: str, state: _State, report: ChaosReport) -> None:
    """Log in while Redis is up; once it is away, log that session out (or log in again:
    ``regenerate()``), keeping its cookie; then replay every ended cookie, as a thief would:
    it must never name the user again (Redis still holds its copy after a SIGSTOP)."""
    ended: dict[str, bool] = {}  # cookie value -> resurrection already counted
    held: str | None = None  # a session logged in while Redis was up
    async with httpx.AsyncClient(base_url=base, timeout=10.0, limits=_LIMITS) as client:
        while time.monotonic() < state.deadline - 0.5 and not state.sigterm_sent:
            try:
                if state.redis_up and held is None:
                    client.cookies.clear()
                    await client.get("/login", params={"name": "ada"})
                    held = client.cookies.get("session")
                elif not state.redis_up and held is not None:
                    if len(ended) % 2:
                        await client.get("/login", params={"name": "ada"})  # regenerate
                        report.logins_during_outage += 1
                    else:
                        await client.get("/logout")
                        report.logouts_during_outage += 1
                    ended.setdefault(held, False)
                    held = None
                for value, counted in list(ended.items()):
                    async with httpx.AsyncClient(
                        base_url=base, timeout=10.0, cookies={"session": value}, limits=_LIMITS
                    ) as thief:
                        seen = (await thief.get("/whoami")).json().get("user")
                    report.stolen_replays += 1
                    if seen is not None and not counted:
                        ended[value] = True
                        report.sessions_resurrected += 1
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.15)


async def _rate_bursts(base: str, state: _State, report: ChaosReport, limit: int) -> None:
    burst = 0
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=10.0, limits=_LIMITS) as client:
        while time.monotonic() < state.deadline - 1 and not state.sigterm_sent:
            burst += 1
            key = f"burst-{burst}-{os.getpid()}-{time.monotonic_ns()}"
            began = time.monotonic()
            up_before = state.redis_up
            results = await asyncio.gather(
                *(client.get("/limited", headers={"X-Chaos-Key": key}) for _ in range(3 * limit)),
                return_exceptions=True,
            )
            allowed = 0
            for result in results:
                if isinstance(result, BaseException):
                    state.conn_errors += 1
                    if len(report.server_errors) < 20:
                        report.server_errors.append(
                            f"{time.monotonic() - state.started:.1f}s /limited burst: "
                            f"{type(result).__name__}"
                        )
                    continue
                state.sent += 1
                state.codes[str(result.status_code)] += 1
                allowed += result.status_code == 200
            overshoot = max(0, allowed - limit)
            if not (up_before and state.redis_up):
                kind = "down"
                report.rate_bursts_redis_down += 1
                report.rate_overshoot_redis_down += overshoot
            elif state.redis_back_at and began - state.redis_back_at < 5.0:
                kind = "recovering"
                report.rate_bursts_recovering += 1
                report.rate_overshoot_recovering += overshoot
            else:
                kind = "up"
                report.rate_bursts_redis_up += 1
                report.rate_overshoot_redis_up += overshoot
                if not state.redis_back_at:
                    report.rate_bursts_before_faults += 1
                    report.rate_overshoot_before_faults += overshoot
            report.rate_bursts.append(f"{began - started:.1f}s {kind}: {allowed} allowed")
            await asyncio.sleep(2.0)


async def _health_poller(base: str, state: _State, report: ChaosReport) -> None:
    current: str | None = None
    since = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=5.0, limits=_LIMITS) as client:
        while time.monotonic() < state.deadline and not state.sigterm_sent:
            try:
                response = await client.get("/health")
                status = str(response.json().get("status", response.status_code))
            except (httpx.HTTPError, ValueError):
                status = "no answer"
            now = time.monotonic()
            if current in ("degraded", "unhealthy", "fail", "warn"):
                if current in ("unhealthy", "fail"):
                    report.unhealthy_s += now - since
                else:
                    report.degraded_s += now - since
            since = now
            if status != current:
                report.health_transitions.append(status)
                current = status
            await asyncio.sleep(0.2)


async def _faults(
    state: _State, report: ChaosReport, redis: OwnRedis, pg: OwnPostgres, started: float
) -> None:
    duration = state.deadline - started

    async def at(fraction: float) -> None:
        await asyncio.sleep(max(0.0, started + fraction * duration - time.monotonic()))

    def note(what: str) -> None:
        report.faults.append(f"{time.monotonic() - started:.1f}s {what}")

    await at(0.15)
    state.redis_up = False
    redis.kill()
    note(f"kill -9 {redis.what}")
    await at(0.35)
    await asyncio.to_thread(redis.start)
    note(redis.restarted)
    state.redis_back_at = time.monotonic()
    state.redis_up = True
    await at(0.45)
    killed = await asyncio.to_thread(pg.terminate_backends, "rk-chaos")
    note(f"pg_terminate_backend x{killed}")
    await at(0.60)
    note("postgres restart begins")
    await asyncio.to_thread(pg.restart)
    note("postgres back")
    await at(0.70)
    state.redis_up = False
    redis.pause(True)
    note(f"SIGSTOP {redis.what} (hung, data kept)")
    await at(0.82)
    redis.pause(False)
    note(f"SIGCONT {redis.what}")
    state.redis_back_at = time.monotonic()
    state.redis_up = True


async def _shutdown(server: Server, state: _State, report: ChaosReport, slow: int) -> None:
    """Start ``slow`` 1.5 s requests, SIGTERM uvicorn while they run, count the answered ones."""
    async with httpx.AsyncClient(base_url=server.base, timeout=30.0) as client:
        tasks = [asyncio.create_task(client.get("/slow", params={"ms": 1500})) for _ in range(slow)]
        await asyncio.sleep(0.5)
        report.in_flight_at_sigterm = slow
        state.sigterm_sent = True
        server.sigterm()
        report.faults.append("SIGTERM to uvicorn")
        for done in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(done, httpx.Response) and done.status_code == 200:
                report.in_flight_completed += 1
            else:
                report.in_flight_dropped += 1
    report.exit_code = await asyncio.to_thread(server.wait, 30)


async def _run(
    server: Server, redis: OwnRedis, pg: OwnPostgres, duration: float, clients: int, limit: int
) -> ChaosReport:
    report = ChaosReport(duration_s=duration, clients=clients, limit=limit)
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as client:
        info = (await client.get("/modules")).json()
    report.wired, report.missing = info["wired"], info["missing"]
    if "ratelimit" in report.wired:
        # Cold start: the first concurrent burst opens each worker's Redis connections. Measured
        # and shown, but kept out of the "Redis up" figure, which is about a warm app.
        # A third burst, warm, is the "before any fault" figure: measured here, before the
        # fault clock starts, so a slow machine cannot push it past the first fault.
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as client:
            for round_no in range(3):
                replies = await asyncio.gather(
                    *(
                        client.get("/limited", headers={"X-Chaos-Key": f"warmup-{round_no}"})
                        for _ in range(3 * limit)
                    ),
                    return_exceptions=True,
                )
                allowed = sum(
                    1 for r in replies if isinstance(r, httpx.Response) and r.status_code == 200
                )
                if round_no < 2:
                    report.rate_bursts.append(f"warm-up {round_no + 1}: {allowed} allowed")
                    continue
                report.rate_bursts.append(f"before the faults: {allowed} allowed")
                report.rate_bursts_before_faults += 1
                report.rate_overshoot_before_faults += max(0, allowed - limit)
                report.rate_bursts_redis_up += 1
                report.rate_overshoot_redis_up += max(0, allowed - limit)
    started = time.monotonic()
    state = _State(started + duration)
    tasks = [
        asyncio.create_task(_client_loop(server.base, state, report, n)) for n in range(clients)
    ]
    tasks.append(asyncio.create_task(_health_poller(server.base, state, report)))
    if "sessions" in report.wired:
        for _ in range(3):
            tasks.append(asyncio.create_task(_logout_client(server.base, state, report)))
    if "ratelimit" in report.wired:
        tasks.append(asyncio.create_task(_rate_bursts(server.base, state, report, limit)))
    faults = asyncio.create_task(_faults(state, report, redis, pg, started))
    await asyncio.sleep(max(0.0, state.deadline - time.monotonic()))
    await faults
    await _shutdown(server, state, report, slow=8)
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    report.requests_sent = state.sent + report.in_flight_at_sigterm
    report.status_codes = dict(state.codes)
    report.connection_errors = state.conn_errors
    report.connection_errors_after_sigterm = state.conn_errors_after
    report.degraded_s = round(report.degraded_s, 1)
    report.unhealthy_s = round(report.unhealthy_s, 1)
    return report


def _create_session_table(url: str) -> None:
    """Create renderkit.sessions' table in the run's Postgres (when the module exists)."""
    try:
        from renderkit.db import Database
        from renderkit.sessions import PostgresStore
    except ImportError:
        return
    db = Database(url, min_size=0, max_size=1, ssl="off")
    db.open()
    try:
        PostgresStore(db).create_table()
    finally:
        db.close()


def run_chaos(
    duration: float = 40.0, clients: int = 16, limit: int = 20, topology: str = "single"
) -> ChaosReport:
    """Start the services and the app, run the faults under load, stop everything."""
    redis: OwnRedis | OwnCluster = OwnCluster() if topology == "cluster" else OwnRedis()
    pg = OwnPostgres()
    server: Server | None = None
    try:
        redis.start()
        pg.init()
        pg.start()
        pg.sql("CREATE TABLE chaos_counter (sid text PRIMARY KEY, n integer NOT NULL)")
        _create_session_table(pg.url)
        server = Server(
            {
                "CHAOS_REDIS_URL": redis.url,
                "CHAOS_DATABASE_URL": pg.url,
                "CHAOS_LIMIT": f"{limit}/10 seconds",
                "APP_ENV": "development",
            }
        )
        server.start()
        report = asyncio.run(_run(server, redis, pg, duration, clients, limit))
        report.server_log_tail = server.tail()
        keep = os.environ.get("CHAOS_SERVER_LOG")
        if keep:
            shutil.copyfile(server.log.name, keep)
        return report
    finally:
        if server is not None:
            server.stop()
        redis.stop()
        pg.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of load (40)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--limit", type=int, default=20, help="requests per 10 s on /limited")
    parser.add_argument("--json", help="also write the report as JSON to this path")
    parser.add_argument(
        "--redis", choices=("single", "cluster"), default="single",
        help="one redis-server (single) or a 3+3 Redis Cluster (cluster)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    report = run_chaos(args.duration, args.clients, args.limit, args.redis)
    print(report.markdown())
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(report), indent=2))
    if report.server_log_tail.strip():
        print("--- server log (tail) ---\n" + report.server_log_tail, file=sys.stderr)
    return 0 if all(report.goals().values()) else 1


if __name__ == "__main__":
    sys.exit(main())
