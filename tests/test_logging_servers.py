"""Real uvicorn and gunicorn, several workers: every line they print is one JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from _uvicorn_server import _wait_listening, free_port
from renderkit.logging import server_log_config

pytestmark = [pytest.mark.e2e]

ASGI_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from renderkit.correlation import CorrelationIdMiddleware
from renderkit.logging import configure_logging, get_logger

configure_logging()
log = get_logger("app")


async def ok(request):
    log.info("served", item=request.path_params["item"])
    return PlainTextResponse("ok")


async def boom(request):
    raise RuntimeError("kaput")


app = Starlette(routes=[Route("/items/{item}", ok), Route("/boom/{item}", boom)])
app.add_middleware(CorrelationIdMiddleware)
"""

WSGI_APP = """
from flask import Flask

from renderkit.flask import RenderKit
from renderkit.logging import configure_logging

configure_logging()
app = Flask(__name__)
RenderKit(app)


@app.get("/items/<item>")
def ok(item):
    return "ok"


@app.get("/boom")
def boom():
    raise RuntimeError("kaput")
"""


def run_server(command: list[str], port: int, tmp_path: Path, requests: list[str]) -> list[str]:
    """Start the server, send ``requests``, stop it with SIGTERM; return every output line."""
    env = {**os.environ, "APP_ENV": "production", "LOG_FORMAT": "json", "FORCE_HTTPS": "false"}
    env.pop("RENDER", None)
    out = tmp_path / "server.log"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            _wait_listening(process, port)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                for path in requests:
                    client.get(path, headers={"X-Request-ID": f"req-{path.strip('/')}"})
            time.sleep(0.3)
        finally:
            process.terminate()
            process.wait(timeout=20)
    return [line for line in out.read_text().splitlines() if line.strip()]


def parse(lines: list[str]) -> list[dict[str, Any]]:
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a line is not JSON: {line[:300]!r}")
    return parsed


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "log-config.json"
    path.write_text(json.dumps(server_log_config()))
    return path


def test_uvicorn_with_two_workers_prints_only_json(tmp_path: Path) -> None:
    """Supervisor, workers, access lines and a 500's traceback: each line parses as JSON."""
    (tmp_path / "asgi_app.py").write_text(textwrap.dedent(ASGI_APP))
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "asgi_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "2", "--log-config", str(write_config(tmp_path)),
    ]  # fmt: skip
    lines = parse(run_server(command, port, tmp_path, ["/items/1", "/items/2", "/boom/3"]))
    events = [line["event"] for line in lines]
    assert any("Started parent process" in e for e in events), events
    assert sum("Started server process" in e for e in events) == 2
    access = [line for line in lines if line.get("logger") == "uvicorn.access"]
    assert {(a["method"], a["path"], a["status"]) for a in access} == {
        ("GET", "/items/1", 200),
        ("GET", "/items/2", 200),
        ("GET", "/boom/3", 500),
    }
    assert {a["request_id"] for a in access} == {"req-items/1", "req-items/2", "req-boom/3"}
    (crash,) = [line for line in lines if "exception" in line]
    assert "RuntimeError: kaput" in crash["exception"]
    assert crash["request_id"] == "req-boom/3"
    assert crash["route"] == "/boom/{item}"
    assert crash["method"] == "GET"
    served = [line for line in lines if line.get("event") == "served"]
    assert {s["request_id"] for s in served} == {"req-items/1", "req-items/2"}


def test_gunicorn_with_two_workers_prints_only_json(tmp_path: Path) -> None:
    """gunicorn's master and workers, its access lines (with duration) and a Flask 500."""
    (tmp_path / "wsgi_app.py").write_text(textwrap.dedent(WSGI_APP))
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "wsgi_app:app", "--bind", f"127.0.0.1:{port}",
        "--workers", "2", "--log-config-json", str(write_config(tmp_path)),
    ]  # fmt: skip
    lines = parse(run_server(command, port, tmp_path, ["/items/1", "/boom"]))
    events = [line["event"] for line in lines]
    assert sum("Booting worker" in e for e in events) == 2, events
    access = [line for line in lines if line.get("logger") == "gunicorn.access"]
    assert {(a["method"], a["path"], a["status"]) for a in access} == {
        ("GET", "/items/1", 200),
        ("GET", "/boom", 500),
    }
    assert all(isinstance(a["duration_ms"], float) for a in access)
    (crash,) = [line for line in lines if "exception" in line]
    assert "RuntimeError: kaput" in crash["exception"]
    assert crash["request_id"] == "req-boom"


def test_log_format_console_is_honoured(tmp_path: Path) -> None:
    """LOG_FORMAT=console wins over production's JSON default (Kirby-Gen sets LOG_FORMAT)."""
    import io

    from renderkit.logging import configure_logging, get_logger

    stream = io.StringIO()
    configure_logging(environ={"APP_ENV": "production", "LOG_FORMAT": "console"}, stream=stream)
    get_logger("app").info("hello")
    assert not stream.getvalue().lstrip().startswith("{")
    assert "hello" in stream.getvalue()
    with pytest.raises(Exception, match="LOG_FORMAT"):
        configure_logging(environ={"LOG_FORMAT": "xml"}, stream=stream)
