"""Each module imports alone in a fresh interpreter, starts nothing, and pulls in no extras."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("redis", "psycopg", "psycopg_pool", "limits", "flask", "cryptography", "fakeredis")

# module -> third-party packages it must NOT import at import time.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "renderkit": (*HEAVY, "starlette", "structlog", "psutil", "tenacity"),
    "renderkit.errors": (*HEAVY, "starlette", "structlog", "psutil"),
    "renderkit._http": (*HEAVY, "starlette", "structlog", "psutil"),
    "renderkit.proxy": (*HEAVY, "starlette", "structlog", "psutil"),
    "renderkit._redis": (*HEAVY, "starlette", "structlog", "psutil"),
    "renderkit.platform": (*HEAVY, "starlette", "structlog", "psutil"),
    "renderkit.config": (*HEAVY, "starlette", "structlog", "psutil"),
    "renderkit.logging": (*HEAVY, "starlette", "psutil"),
    "renderkit.health": (*HEAVY, "psutil"),
    "renderkit.resilience": (*HEAVY, "psutil"),
    "renderkit.shutdown": (*HEAVY, "psutil"),
    "renderkit.testing": HEAVY,
    "renderkit.cli": (*HEAVY, "starlette", "psutil"),
    "renderkit.wsgi": HEAVY,
    "renderkit.correlation": (*HEAVY, "starlette", "httpx", "psutil", "sentry_sdk", "celery"),
    "renderkit.security": (*HEAVY, "starlette", "structlog", "psutil"),
    "renderkit.metrics": (*HEAVY, "starlette", "structlog", "psutil"),
    "renderkit.flask": HEAVY,
    "renderkit.ratelimit": HEAVY,
    "renderkit.db": (*HEAVY, "tenacity", "starlette", "structlog", "psutil"),
    "renderkit.cache": (*HEAVY, "tenacity", "starlette", "structlog", "psutil"),
    "renderkit.sessions": (*HEAVY, "tenacity", "starlette", "structlog", "psutil"),
}

PROBE = """
import json, sys, threading, signal
before_threads = threading.active_count()
before_handlers = {{s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}}
import importlib
importlib.import_module({module!r})
print(json.dumps({{
    "modules": sorted(sys.modules),
    "threads": threading.active_count() - before_threads,
    "handlers_changed": any(signal.getsignal(s) != h for s, h in before_handlers.items()),
}}))
"""


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_module_imports_alone_and_starts_nothing(module: str) -> None:
    """Importing the module loads none of the forbidden packages, starts no thread and installs
    no signal handler."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    loaded = {name.split(".")[0] for name in facts["modules"]}
    leaked = sorted(set(FORBIDDEN[module]) & loaded)
    assert leaked == [], f"import {module} also imported {leaked}"
    assert facts["threads"] == 0
    assert facts["handlers_changed"] is False
