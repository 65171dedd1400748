"""tools/typecheck_usage.py builds what mypy checks from the docs pages the way users read them."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("typecheck_usage", ROOT / "tools/typecheck_usage.py")
assert spec is not None and spec.loader is not None
usage = importlib.util.module_from_spec(spec)
sys.modules["typecheck_usage"] = usage
spec.loader.exec_module(usage)


def test_a_page_becomes_one_module_with_only_the_reader_names_it_uses(tmp_path: Path) -> None:
    """Blocks run in order; names the page assigns itself are not predeclared; placeholders
    empty; mypy's line numbers map back to the page."""
    page = tmp_path / "demo.md"
    page.write_text(
        "# Demo\n\ntext\n\n```python\napp = make()\nroutes = [...]\n```\n\n"
        "more\n\n```python\ncache.get(SECRET, [a, ...])\n```\n"
    )
    module, starts = usage.build(page, tmp_path)
    code = module.read_text()
    assert "SECRET = " in code and "cache = " in code
    assert "app = Starlette()" not in code  # the page assigns app itself
    assert "routes = []" in code and "[a]" in code
    first_block_line = code.splitlines().index("app = make()") + 1
    assert usage.page_line(starts, first_block_line) == 6  # "app = make()" on the page
    assert usage.page_line(starts, first_block_line + 1) == 7


def test_pending_entries_name_existing_files_and_a_reason() -> None:
    """Every PENDING entry is a real file and says what its owner has to fix."""
    for path, reason in usage.PENDING.items():
        assert (ROOT / path).is_file(), path
        assert len(reason) > 10, path


def _public_asgi_middleware() -> set[str]:
    """Every ``*Middleware`` class a public renderkit module exports with an async ``__call__``
    (the WSGI ones in ``renderkit.wsgi`` are not Starlette middleware)."""
    import importlib
    import inspect
    import pkgutil

    import renderkit

    found = set()
    for info in pkgutil.walk_packages(renderkit.__path__, "renderkit."):
        parts = info.name.split(".")[1:]
        if parts[0] in ("wsgi", "flask") or any(part.startswith("_") for part in parts):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            call = getattr(obj, "__call__", None)
            if name.endswith("Middleware") and inspect.iscoroutinefunction(call):
                found.add(name)
    return found


def test_the_typed_stack_holds_every_public_asgi_middleware() -> None:
    """tests/typing/middleware_stack.py puts each public ASGI middleware in ``Middleware(...)``
    and in ``app.add_middleware(...)``, so a new one whose options are untyped fails mypy."""
    stack = (ROOT / "tests/typing/middleware_stack.py").read_text()
    middleware = _public_asgi_middleware()
    assert {"CorrelationIdMiddleware", "RateLimitMiddleware", "SessionMiddleware"} <= middleware
    missing = {
        name
        for name in middleware
        if not re.search(rf"(?<!add_)\bMiddleware\({name}\b", stack)
        or not re.search(rf"\badd_middleware\({name}\b", stack)
    }
    assert not missing, f"add these to tests/typing/middleware_stack.py: {sorted(missing)}"
