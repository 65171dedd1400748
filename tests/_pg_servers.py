"""Postgres servers the db tests start themselves: a cluster, a streaming replica, PgBouncer.

Each runs on a free port, as the ``postgres`` user when the tests run as root, and is stopped
by pid. A server that does not come up fails the test loudly with the tail of its log (CI
must never pass by skipping), unless the binaries are missing outside CI.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from renderkit.testing import require_services


def pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _missing(what: str) -> None:
    if require_services():
        pytest.fail(f"{what} is not installed; CI installs it in .ci/run")
    pytest.skip(f"{what} is not installed")


def _as_postgres() -> dict[str, Any]:
    """Popen arguments that drop root to the postgres user (Postgres and PgBouncer refuse root)."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def _tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-15:])
    except OSError:
        return "(no log)"


def wait_until_up(url: str, log: str, what: str, timeout: float = 30.0) -> None:
    """Connect until it works; fail loudly naming the server and its log tail otherwise."""
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            psycopg.connect(url, connect_timeout=2, autocommit=True).close()
            return
        except psycopg.OperationalError as exc:
            error = exc
            time.sleep(0.1)
    pytest.fail(f"{what} did not come up within {timeout}s ({error}); log:\n{_tail(log)}")


def _own_dir(prefix: str) -> str:
    root = tempfile.mkdtemp(prefix=prefix)
    os.chmod(root, 0o777)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    return root


class OwnPostgres:
    """One Postgres cluster in a temporary directory, started and stopped with pg_ctl."""

    def __init__(self, root: str, data: str, port: int) -> None:
        self.root = root
        self.data = data
        self.port = port
        self.log = os.path.join(root, f"postgres-{port}.log")
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    @classmethod
    def create(cls) -> OwnPostgres:
        initdb = pg_bin("initdb")
        if initdb is None or pg_bin("pg_ctl") is None:
            _missing("the Postgres server binaries (initdb, pg_ctl)")
        root = _own_dir("rk-pg-")
        pg = cls(root, os.path.join(root, "data"), free_port())
        subprocess.run(
            [str(initdb), "-D", pg.data, "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
            **_as_postgres(),
        )
        return pg

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [str(pg_bin("pg_ctl")), "-D", self.data, "-w", "-t", "30", *args],
            check=True,
            capture_output=True,
            timeout=60,
            **_as_postgres(),
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        try:
            self._pg_ctl("-o", options, "-l", self.log, "start")
        except subprocess.CalledProcessError:
            pytest.fail(f"Postgres on port {self.port} did not start; log:\n{_tail(self.log)}")
        wait_until_up(self.url, self.log, f"Postgres on port {self.port}")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def reload(self) -> None:
        self._pg_ctl("reload")

    def running(self) -> bool:
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def replica(self) -> OwnPostgres:
        """A streaming replica of this (running) cluster, made with pg_basebackup, started."""
        basebackup = pg_bin("pg_basebackup")
        if basebackup is None:
            _missing("pg_basebackup")
        root = _own_dir("rk-pg-replica-")
        replica = OwnPostgres(root, os.path.join(root, "data"), free_port())
        source = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        subprocess.run(
            [str(basebackup), *source, "-D", replica.data, "-R", "-X", "stream", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
            **_as_postgres(),
        )
        replica.start()
        return replica

    def destroy(self) -> None:
        if self.running():
            try:
                self.stop()
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres.create()
    try:
        yield pg
    finally:
        pg.destroy()


class PgBouncer:
    """PgBouncer from the Debian package, in transaction mode, in front of ``server_url``."""

    def __init__(self, server_url: str, *, pool_size: int = 2) -> None:
        binary = shutil.which("pgbouncer") or (
            "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
        )
        if binary is None:
            _missing("pgbouncer (apt-get install pgbouncer)")
        info = psycopg.conninfo.conninfo_to_dict(server_url)
        self.root = _own_dir("rk-pgbouncer-")
        self.port = free_port()
        self.log = os.path.join(self.root, "pgbouncer.log")
        dbname = info.get("dbname", "postgres")
        self.url = f"postgresql://{info.get('user', 'postgres')}@127.0.0.1:{self.port}/{dbname}"
        users = os.path.join(self.root, "users.txt")
        with open(users, "w") as fh:
            fh.write(f'"{info.get("user", "postgres")}" ""\n')
        ini = os.path.join(self.root, "pgbouncer.ini")
        with open(ini, "w") as fh:
            fh.write(
                "[databases]\n"
                f"* = host={info.get('host', '127.0.0.1')} port={info.get('port', 5432)}\n"
                "[pgbouncer]\n"
                f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
                f"auth_type = trust\nauth_file = {users}\n"
                f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
                "max_client_conn = 200\nserver_reset_query =\n"
                # Postgres down: PgBouncer holds each query this long (default 120 s), and
                # waits this long after a failed server login before the next (default 15 s).
                "query_wait_timeout = 1\nserver_login_retry = 1\n"
                f"logfile = {self.log}\npidfile = {os.path.join(self.root, 'pgbouncer.pid')}\n"
            )
        for path in (users, ini):
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        self.process = subprocess.Popen(
            [binary, ini],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **_as_postgres(),
        )
        wait_until_up(self.url, self.log, f"PgBouncer on port {self.port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # SIGINT: PgBouncer's "exit now"
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


class Side:
    """Drives the sync ``Database`` (in a worker thread) or the ``AsyncDatabase`` alike.

    Every db test takes a ``side`` and runs once per twin: one contract, two drivers.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __repr__(self) -> str:
        return self.mode

    def make(self, url: str, **options: Any) -> Any:
        from renderkit.db import AsyncDatabase, Database

        return (AsyncDatabase if self.mode == "async" else Database)(url, **options)

    @property
    def cls(self) -> Any:
        from renderkit.db import AsyncDatabase, Database

        return AsyncDatabase if self.mode == "async" else Database

    async def call(self, db: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(db, name)
        if self.mode == "async":
            return await method(*args, **kwargs)
        import asyncio

        return await asyncio.to_thread(method, *args, **kwargs)

    def work(
        self, attempts: list[int], sql: str, *, first: str | None = None, every: str | None = None
    ) -> Any:
        """A ``fn(conn)`` for ``run()``: counts attempts, runs ``first`` on the first attempt
        only and ``every`` on each, then returns the first column of ``sql``."""

        def before() -> list[str]:
            attempts.append(1)
            return [s for s in ((first if len(attempts) == 1 else None), every) if s]

        if self.mode == "async":

            async def afn(conn: Any) -> Any:
                for statement in before():
                    await conn.execute(statement)
                row = await (await conn.execute(sql)).fetchone()
                return row[0]

            return afn

        def fn(conn: Any) -> Any:
            for statement in before():
                conn.execute(statement)
            return conn.execute(sql).fetchone()[0]

        return fn

    async def in_transaction(
        self, db: Any, statements: list[str], *, fail: bool = False, read_only: bool = False
    ) -> list[Any]:
        """Run ``statements`` in ``db.transaction()``; raise RuntimeError at the end if ``fail``."""
        rows: list[Any] = []
        if self.mode == "async":
            async with db.transaction(read_only=read_only) as conn:
                for statement in statements:
                    cur = await conn.execute(statement)
                    rows.append(await cur.fetchone() if cur.description else None)
                if fail:
                    raise RuntimeError("abort")
            return rows

        def body() -> None:
            with db.transaction(read_only=read_only) as conn:
                for statement in statements:
                    cur = conn.execute(statement)
                    rows.append(cur.fetchone() if cur.description else None)
                if fail:
                    raise RuntimeError("abort")

        import asyncio

        await asyncio.to_thread(body)
        return rows


def backends(url: str, app_name: str) -> int:
    """How many server connections carry ``application_name`` (leak checks)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app_name,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def backends_after_close(url: str, app_name: str) -> int:
    """``backends()`` once the server has reaped closed connections (bounded: 5 s); a backend
    process outlives its client's close by a moment on a loaded machine."""
    for _ in range(100):
        count = backends(url, app_name)
        if count == 0:
            return 0
        time.sleep(0.05)
    return count


def terminate(url: str, app_name: str) -> int:
    """pg_terminate_backend every connection carrying ``application_name``."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (app_name,),
        ).fetchall()
    return len(rows)
