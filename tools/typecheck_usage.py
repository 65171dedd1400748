"""mypy --strict on what users copy: examples/, tests/typing/ and every ```python block of
docs/*.md and README.md.

Each docs page becomes one module: the imports and names pages leave to the reader (``app``,
``db``, ``SECRET``...), then the page's blocks in order, as tests/test_docs_examples.py runs
them. Errors are reported against the page and the line inside it.

Files in ``PENDING`` are known not to pass yet: their errors are shown but do not fail the run,
and a pending file that passes fails it (take it off the list). Everything else must be clean.

    python tools/typecheck_usage.py            # everything (nox -s typecheck runs this)
    python tools/typecheck_usage.py security   # some docs pages only
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from glob import glob
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

# What a page may use without defining it (tests/test_docs_examples.py builds the same names):
# each is declared only on pages that use it and do not assign it themselves.
IMPORTS = """\
from typing import Any
from starlette.applications import Starlette
from renderkit.cache import Cache
from renderkit.health import Health
from renderkit.ratelimit import RateLimiter
from renderkit.sessions import MemoryStore
from renderkit.shutdown import ShutdownCoordinator
"""
NAMES = {
    "SECRET": 'SECRET = "docs-example-secret-key-0123456789abcdef0123456789"',
    "REDIS_URL": 'REDIS_URL = "redis://127.0.0.1:6379/15"',
    "DATABASE_URL": 'DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"',
    "uid": "uid = 42",
    "load_user": "def load_user(user_id: int) -> dict[str, Any]:\n    return {'id': user_id}",
    "db": "db: Any = None",
    "pool": "pool: Any = None",
    "settings": "settings: Any = None",
    "cache": "cache = Cache.from_url(None)",
    "health": "health = Health()",
    "limiter": 'limiter = RateLimiter("memory://", default="100/hour")',
    "store": "store = MemoryStore()",
    "coordinator": "coordinator = ShutdownCoordinator(grace_period=25.0)",
    "app": "app = Starlette()",
    "consume_queue": "async def consume_queue() -> None:\n    pass",
    "run_schedule": "async def run_schedule() -> None:\n    pass",
    "wsgi_app": "def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:\n    return []",
}
# Notebook-style pages: top-level await (the docs runner awaits it), one name reused by
# blocks written for different frameworks (a Starlette then a Flask ``app``).
MYPY_FLAGS = (
    "--strict",
    "--allow-redefinition",
    "--disable-error-code=top-level-await",
    "--disable-error-code=no-redef",
)


def prelude(code: str) -> str:
    """The imports and the reader's names this page uses without assigning them."""
    lines = [IMPORTS]
    for name, declaration in NAMES.items():
        used = re.search(rf"\b{name}\b", code)
        assigned = re.search(rf"^(?:{name}\s*(?::[^=]+)?=|(?:async )?def {name}\b)", code, re.M)
        if used and not assigned:
            lines.append(declaration)
    return "\n".join(lines) + "\n"


# path -> why it does not pass yet (the owner's fix named); shrink this, never grow it.
PENDING: dict[str, str] = {}


def pages(names: list[str]) -> list[Path]:
    found = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    return [p for p in found if not names or p.stem in names]


def build(page: Path, out: Path) -> tuple[Path, list[tuple[int, int]]] | None:
    """Write the page's module; return it and (module line, page line) starts of each block."""
    text = page.read_text()
    blocks = [(m, placeholders(m.group(1))) for m in BLOCK.finditer(text)]
    if not blocks:
        return None
    lines = prelude("\n".join(code for _, code in blocks)).splitlines()
    starts: list[tuple[int, int]] = []
    for match, code in blocks:
        starts.append((len(lines) + 1, text.count("\n", 0, match.start(1)) + 1))
        lines.extend(code.splitlines())
    module = out / f"docs_{page.stem.replace('-', '_')}.py"
    module.write_text("\n".join(lines) + "\n")
    return module, starts


def placeholders(code: str) -> str:
    """``routes=[...]`` and ``[a, ...]`` are left to the reader: empty them (as the runner does)."""
    return code.replace("[...]", "[]").replace(", ...]", "]").replace(", ...)", ")")


def page_line(starts: list[tuple[int, int]], line: int) -> int:
    for module_line, doc_line in reversed(starts):
        if line >= module_line:
            return doc_line + line - module_line
    return 0


def report(
    lines: list[str], where: dict[str, tuple[Path, list[tuple[int, int]]]]
) -> dict[str, list[str]]:
    """mypy's output lines grouped by the user-facing file they belong to."""
    errors: dict[str, list[str]] = {}
    for raw in lines:
        m = re.match(r"(.*?):(\d+): (error|note): (.*)", raw)
        if m is None:
            continue
        name = Path(m.group(1)).name
        if name in where:
            page, starts = where[name]
            path = str(page.relative_to(ROOT))
            line = page_line(starts, int(m.group(2)))
        else:
            path, line = str(Path(m.group(1)).resolve().relative_to(ROOT)), int(m.group(2))
        errors.setdefault(path, []).append(f"{path}:{line}: {m.group(3)}: {m.group(4)}")
    return errors


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        built = {}
        for page in pages(argv):
            result = build(page, out)
            if result is not None:
                built[result[0].name] = (page, result[1])
        checked = [str(out / name) for name in sorted(built)]
        code = [] if argv else [*sorted(glob("examples/*.py")), *sorted(glob("tests/typing/*.py"))]
        command = [
            sys.executable, "-m", "mypy", *MYPY_FLAGS, "--no-error-summary",
            "--config-file", str(ROOT / "pyproject.toml"), *checked, *code,
        ]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if run.returncode not in (0, 1):
        print(run.stdout, run.stderr)
        return 2
    found = report(run.stdout.splitlines(), built)
    failed = 0
    for path, lines in sorted(found.items()):
        errors = sum(": error: " in line for line in lines)
        label = "pending" if path in PENDING else "error"
        print("\n".join(lines) if label == "error" else f"{path}: {errors} error(s), pending")
        failed += errors if label == "error" else 0
    names = {str(p.relative_to(ROOT)) for p, _ in built.values()} | set(code)
    cleared = sorted(p for p in PENDING if p in names and p not in found)
    for path in cleared:
        print(f"{path}: passes now; remove it from PENDING in tools/typecheck_usage.py")
    print(f"mypy --strict on {len(names)} user-facing files: {failed} error(s) outside PENDING")
    return 1 if failed or cleared else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
