"""Start real Redis topologies on free ports for tests: a cluster, a Sentinel set, one server.

Every server is a child ``redis-server`` with its own directory, stopped by pid; a server that
does not come up raises with the tail of its log, so a broken set-up fails loudly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REDIS_SERVER = "redis-server"
REDIS_CLI = "redis-cli"


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (a cluster also needs port + 10000 free for its bus)."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 50000 and port not in ports and _port_free(port + 10000):
            ports.append(port)
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cli(self, *args: str, timeout: float = 10) -> str:
        out = subprocess.run(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return out.stdout.strip()

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
            self.process.kill()
        self.process.wait(timeout=10)


def start_server(directory: Path, port: int, *extra: str) -> Server:
    """One redis-server on 127.0.0.1:``port``, nothing saved to disk, waited for."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "redis.log"
    process = subprocess.Popen(
        [
            REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory), "--logfile", str(log), *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = Server(port, process, directory)
    _wait(server, lambda: server.cli("ping") == "PONG", f"redis-server on port {port}", log)
    return server


def _wait(server: Server, ready: object, what: str, log: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.1)
    tail = log.read_text()[-1500:] if log.exists() else "(no log)"
    server.kill()
    raise RuntimeError(f"{what} did not come up:\n{tail}")


@dataclass
class Cluster:
    servers: list[Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{s.port}" for s in self.servers[:3])
        return f"redis+cluster://{nodes}"

    def primaries(self) -> list[Server]:
        return [s for s in self.servers if "role:master" in s.cli("info", "replication")]

    def stop(self) -> None:
        for server in self.servers:
            server.kill()


@contextlib.contextmanager
def redis_cluster(directory: Path, primaries: int = 3, replicas: int = 1) -> Iterator[Cluster]:
    """A Redis Cluster of ``primaries`` primaries with ``replicas`` replicas each."""
    cluster = Cluster()
    try:
        ports = free_ports(primaries * (1 + replicas))
        for port in ports:
            cluster.servers.append(
                start_server(
                    directory / str(port), port, "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                )
            )  # fmt: skip
        nodes = [f"127.0.0.1:{p}" for p in ports]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", str(replicas),
             "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        first = cluster.servers[0]
        _wait(
            first,
            lambda: (
                "cluster_state:ok" in first.cli("cluster", "info")
                and all("cluster_state:ok" in s.cli("cluster", "info") for s in cluster.servers)
            ),
            "the Redis Cluster",
            first.directory / "redis.log",
            seconds=30,
        )
        yield cluster
    finally:
        cluster.stop()


def _fields(reply: str) -> dict[str, str]:
    """redis-cli prints a flat reply one item a line: field, value, field, value..."""
    items = reply.splitlines()
    return dict(zip(items[::2], items[1::2], strict=False))


@dataclass
class SentinelSet:
    primary: Server
    replica: Server
    sentinels: list[Server]
    service: str = "rkprimary"

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def current_primary_port(self) -> int:
        reply = self.sentinels[0].cli("sentinel", "get-master-addr-by-name", self.service)
        return int(reply.split()[-1])

    def stop(self) -> None:
        for server in [*self.sentinels, self.replica, self.primary]:
            server.kill()


@contextlib.contextmanager
def redis_sentinel(directory: Path, quorum: int = 2) -> Iterator[SentinelSet]:
    """One primary, one replica and three sentinels watching them (down-after 1 s)."""
    started: list[Server] = []
    try:
        p_port, r_port, *s_ports = free_ports(5)
        primary = start_server(directory / "primary", p_port)
        started.append(primary)
        replica = start_server(
            directory / "replica", r_port, "--replicaof", "127.0.0.1", str(p_port)
        )
        started.append(replica)
        sentinels = []
        for port in s_ports:
            conf = directory / f"sentinel-{port}" / "sentinel.conf"
            conf.parent.mkdir(parents=True)
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nsentinel resolve-hostnames no\n"
                f"sentinel monitor rkprimary 127.0.0.1 {p_port} {quorum}\n"
                "sentinel down-after-milliseconds rkprimary 1000\n"
                "sentinel failover-timeout rkprimary 5000\n"
                "sentinel parallel-syncs rkprimary 1\n"
            )
            log = conf.parent / "redis.log"
            process = subprocess.Popen(
                [REDIS_SERVER, str(conf), "--sentinel", "--logfile", str(log)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            server = Server(port, process, conf.parent)
            started.append(server)
            _wait(server, lambda s=server: s.cli("ping") == "PONG", f"sentinel on {port}", log)
            sentinels.append(server)
        watched = SentinelSet(primary, replica, sentinels)
        _wait(
            sentinels[0],
            lambda: (
                all(
                    _fields(s.cli("sentinel", "master", "rkprimary")).get("num-other-sentinels")
                    == str(len(sentinels) - 1)
                    for s in sentinels
                )
                and "master_link_status:up" in replica.cli("info", "replication")
            ),
            "the Sentinel set",
            sentinels[0].directory / "redis.log",
            seconds=30,
        )
        yield watched
    finally:
        for server in started:
            server.kill()
