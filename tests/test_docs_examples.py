"""Every ```python block of docs/*.md (and the README) runs as written.

A page is read like a notebook: its blocks run in order in one namespace, so a later block may
use what an earlier one defined. Names a page leaves to the reader (``db``, ``app``, ``SECRET``,
``uid``...) come from the fakes below, never a library name or a stdlib module: a block that
forgets ``import os`` fails here as it would for a user. The opening example of each page also
runs alone, in a fresh namespace. Placeholders the reader fills in (``routes=[...]``) become
empty lists. Pages whose opening example talks to Postgres or Redis run under the
``integration`` marker with the test URLs substituted.

All blocks run in one child interpreter (one start-up for the whole file, and no global state
such as logging handlers leaks into the test process); each test then reads its page's result.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

# Names pages leave to the reader, built fresh for each namespace (plain code, run first).
FAKES = """
from types import SimpleNamespace as _NS
from renderkit.cache import Cache as _Cache
from renderkit.health import CheckResult as _CheckResult, Health as _Health
from renderkit.ratelimit import RateLimiter as _RateLimiter
from renderkit.sessions import MemoryStore as _MemoryStore
from renderkit.shutdown import ShutdownCoordinator as _Coordinator
from starlette.applications import Starlette as _Starlette

SECRET = "docs-example-secret-key-0123456789abcdef0123456789"
REDIS_URL = "redis://127.0.0.1:6379/15"      # stores connect lazily; nothing is sent here
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
uid = 42
def load_user(user_id): return {"id": user_id}
db = _NS(health_check=lambda: _CheckResult("healthy"), close=lambda: None)
pool = _NS(close=lambda: None)
cache = _Cache.from_url(None)
health = _Health()
limiter = _RateLimiter("memory://", default="100/hour")
store = _MemoryStore()
coordinator = _Coordinator(grace_period=25.0)
settings = _NS(cors_origins=["https://app.example"])
app = _Starlette()
async def consume_queue(): pass
async def run_schedule(): pass
async def ticks():
    yield b"data: tick\\n\\n"
def wsgi_app(environ, start_response):
    start_response("200 OK", [])
    return [b""]
"""

FLASK_APP = "import flask as _flask\napp = _flask.Flask('docs_example')\n"
FASTAPI_APP = "import fastapi as _fastapi\napp = _fastapi.FastAPI()\n"
HTTPX_RESPONSE = (
    "import httpx as _httpx\n"
    "response = _httpx.Response(200, headers={'content-security-policy': \"default-src 'self'\"})\n"
)

# Extra set-up before one block ("page:index"), for blocks written for another framework.
BEFORE: dict[str, str] = {
    "cli:0": HTTPX_RESPONSE,
    "ratelimit:2": FASTAPI_APP,
    "ratelimit:3": FLASK_APP,
    "sessions:4": FLASK_APP,
    "shutdown:2": FLASK_APP,
}

# Pages whose blocks need the real services; they run with the test URLs in the environment.
INTEGRATION_PAGES = {"db", "deploying-on-render", "running-several-instances"}
# The db page's literal URL stands for the reader's database: the test database replaces it.
DB_PAGE_URL = "postgres://app:secret@db.internal:5432/app"
# Tables the db page's SQL expects (they are the reader's own); made in a throw-away schema.
DB_TABLES = (
    "CREATE TABLE users (id int PRIMARY KEY, name text, team text, seen timestamptz)",
    "CREATE TABLE audit (event text)",
    "CREATE TABLE accounts (id int PRIMARY KEY, balance int)",
    "INSERT INTO accounts VALUES (1, 100), (2, 0)",
)

RUNNER = r"""
import ast, asyncio, inspect, json, sys, traceback

def run(source, namespace, name, loop):
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        loop.run_until_complete(result)

jobs = json.loads(sys.stdin.read())
results = {}
for job in jobs:
    namespace = {"__name__": "docs_example"}
    # One loop per page, as one app has: a block's top-level await runs on it, and what an
    # earlier block started there (a supervisor) is still there for the next block.
    loop = asyncio.new_event_loop()
    try:
        for name, source in job["steps"]:
            run(source, namespace, name, loop)
        results[job["id"]] = None
    except BaseException:
        results[job["id"]] = traceback.format_exc()
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump(results, out)
"""


def _placeholders(source: str) -> str:
    """Turn the reader's ``[...]`` / ``routes=...`` placeholders into empty lists."""
    source = re.sub(r"routes=\.\.\.", "routes=[]", source)
    source = re.sub(r"\[\s*\.\.\.\s*\]", "[]", source)
    return re.sub(r",\s*\.\.\.\s*\]", "]", source)


def _path(page: str) -> Path:
    return ROOT / "README.md" if page == "README" else DOCS / f"{page}.md"


def _blocks(page: str) -> list[str]:
    return BLOCK.findall(_path(page).read_text(encoding="utf-8"))


def _pages() -> list[str]:
    """Every docs page with a python block, and the README (the first example users see)."""
    return sorted(["README", *(p.stem for p in DOCS.glob("*.md") if _blocks(p.stem))])


def _steps(page: str, *, opening_only: bool, env: dict[str, str]) -> list[tuple[str, str]]:
    steps = [("<fakes>", FAKES)]
    blocks = _blocks(page)[:1] if opening_only else _blocks(page)
    for index, block in enumerate(blocks):
        source = _placeholders(block)
        if env.get("DATABASE_URL"):
            source = source.replace(DB_PAGE_URL, env["DATABASE_URL"])
        before = BEFORE.get(f"{page}:{index}")
        if before:
            steps.append((f"<set-up {page}:{index}>", before))
        steps.append((f"{_path(page).relative_to(ROOT)} block {index}", source))
    # Starlette builds the middleware stack at the first request, so a wrong add_middleware()
    # keyword only shows then: send one request to whatever app the page built.
    steps.append(("<one request to app>", _SMOKE))
    if page == "platform" and not opening_only:
        # Its second block is a test an app team would write; call it like pytest would.
        steps.append(("<call test_half_cpu>", _CALL_TESTS))
    return steps


_SMOKE = """
_app = globals().get("app")
if _app is not None:
    import flask as _flask
    from starlette.applications import Starlette as _St
    from starlette.testclient import TestClient as _TC

    if isinstance(_app, _St):
        with _TC(_app, base_url="https://testserver") as _client:
            _status = _client.get("/", follow_redirects=False).status_code
    elif isinstance(_app, _flask.Flask):
        _status = _app.test_client().get("/", base_url="https://localhost").status_code
    else:
        raise TypeError(f"app is a {type(_app).__name__}, not an ASGI/Flask app")
    assert _status < 500, f"GET / answered {_status}"
"""

_CALL_TESTS = """
import tempfile as _tempfile, pathlib as _pathlib
from renderkit.platform import detect
for _name, _fn in list(globals().items()):
    if _name.startswith("test_") and callable(_fn):
        with _tempfile.TemporaryDirectory() as _d:
            _fn(_pathlib.Path(_d))
"""


def _run(jobs: list[dict[str, Any]], env: dict[str, str]) -> dict[str, str | None]:
    child_env = {**os.environ, **env, "APP_ENV": "development"}
    child_env.pop("FORCE_HTTPS", None)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        completed = subprocess.run(
            [sys.executable, "-c", RUNNER, str(out)],
            input=json.dumps(jobs),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp,
            env=child_env,
            check=False,
        )
        assert out.exists(), (
            f"the docs runner crashed:\n{completed.stdout[-2000:]}\n{completed.stderr}"
        )
        results: dict[str, str | None] = json.loads(out.read_text(encoding="utf-8"))
    return results


def _jobs(pages: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    jobs = []
    for page in pages:
        jobs.append({"id": f"{page}:opening", "steps": _steps(page, opening_only=True, env=env)})
        jobs.append({"id": f"{page}:all", "steps": _steps(page, opening_only=False, env=env)})
    return jobs


@pytest.fixture(scope="module")
def unit_results() -> dict[str, str | None]:
    """Run every page that needs no service, once, in one child interpreter."""
    pages = [p for p in _pages() if p not in INTEGRATION_PAGES]
    env = {"REDIS_URL": "", "DATABASE_URL": ""}
    return _run(_jobs(pages, env), env)


UNIT_PAGES = [p for p in _pages() if p not in INTEGRATION_PAGES]


def test_every_page_with_code_is_covered() -> None:
    """A new docs page with a python block is picked up (and the known ones still have one)."""
    assert {"README", "cache", "config", "security", "sessions", "health"} <= set(_pages())
    assert INTEGRATION_PAGES <= set(_pages())


@pytest.mark.parametrize("scope", ["opening", "all"])
@pytest.mark.parametrize("page", UNIT_PAGES)
def test_docs_page_runs(page: str, scope: str, unit_results: dict[str, str | None]) -> None:
    """The page's opening example alone, then all its blocks in order, run without error."""
    error = unit_results[f"{page}:{scope}"]
    assert error is None, f"{_path(page).relative_to(ROOT)} ({scope}) failed:\n{error}"


@pytest.fixture
def docs_database_url(renderkit_database_url: str) -> Iterator[str]:
    """The test database with the db page's tables, in a schema dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    schema = f"docs_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(renderkit_database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path TO {schema}")
        for statement in DB_TABLES:
            conn.execute(statement)
    separator = "&" if "?" in renderkit_database_url else "?"
    try:
        yield f"{renderkit_database_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(renderkit_database_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.integration
@pytest.mark.parametrize("scope", ["opening", "all"])
@pytest.mark.parametrize("page", sorted(INTEGRATION_PAGES))
def test_docs_page_runs_against_real_services(
    page: str, scope: str, renderkit_redis_url: str, docs_database_url: str
) -> None:
    """Pages that talk to Postgres/Redis run with the test services' URLs."""
    env = {"REDIS_URL": renderkit_redis_url, "DATABASE_URL": docs_database_url}
    results = _run(_jobs([page], env), env)
    error = results[f"{page}:{scope}"]
    assert error is None, f"{_path(page).relative_to(ROOT)} ({scope}) failed:\n{error}"


def test_placeholders_become_empty_lists() -> None:
    """The reader's placeholders are the only rewriting done to a block."""
    assert _placeholders("Starlette(routes=...)") == "Starlette(routes=[])"
    assert _placeholders("routes=[*health.routes(), ...]") == "routes=[*health.routes()]"
    assert _placeholders("routes=[...]") == "routes=[]"
    assert _placeholders("def f(): ...") == "def f(): ..."


# An import of, or a call into, a private module (``renderkit._http``, ``renderkit.cli._x``).
PRIVATE_USE = re.compile(
    r"(?:from|import)\s+renderkit(?:\.\w+)*\._\w+|renderkit(?:\.\w+)*\._\w+\.\w+\("
)


def test_docs_and_examples_use_public_modules_only() -> None:
    """Every name a docs page, the README or an example imports (or calls by its full path)
    comes from a public module: users copy these lines, and private modules move."""
    files = [
        *sorted(DOCS.glob("*.md")),
        ROOT / "README.md",
        *sorted((ROOT / "examples").glob("*.py")),
    ]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE_USE.search(line)
    ]
    assert not found, "private modules used in docs/examples:\n" + "\n".join(found)


def test_readme_quick_start_is_the_two_set_up_commands() -> None:
    """The README's Quick start stays two commands on a fresh machine: the demo and the tests."""
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```bash\n(.*?)^```", quick, re.DOTALL | re.MULTILINE)
    assert [c.strip() for c in commands] == [
        "python3 -m pip install nox && python3 -m nox -s demo",
        "python3 -m pip install nox && python3 -m nox -s tests",
    ]
