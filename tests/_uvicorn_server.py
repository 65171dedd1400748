"""Run an app module in a real uvicorn on 127.0.0.1 for end-to-end tests (private helper)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(source: str, directory: Path, *, module: str = "e2e_app") -> Iterator[str]:
    """Write ``source`` as ``module.py``, serve ``module:app`` and yield its base URL."""
    (directory / f"{module}.py").write_text(textwrap.dedent(source))
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(directory),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_listening(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


@contextlib.contextmanager
def serve_gunicorn(source: str, directory: Path, *, module: str = "e2e_wsgi_app") -> Iterator[str]:
    """Write ``source`` as ``module.py`` and serve ``module:app`` with threaded gunicorn."""
    (directory / f"{module}.py").write_text(textwrap.dedent(source))
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", f"{module}:app", "--chdir", str(directory),
            "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "8",
            "--log-level", "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_listening(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start listening within 15 s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    if process.stderr is not None:
        process.stderr.close()
