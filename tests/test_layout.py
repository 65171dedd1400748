"""The rooms of src/renderkit stay readable (issue #12): no class over 400 lines, no function
over 60, no import cycle between modules, no private name imported from another subpackage.

A static scan of the source (the generated ``*_sync.py`` twins are checked through their
``*_async.py`` sources); each rule has a test that shows the scan catches a violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_CLASS = 400
MAX_FUNCTION = 60


def _sources(root: Path = SRC) -> dict[str, Path]:
    """``{dotted module name: path}`` of every hand-written module under ``root``."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        if (
            path.name.endswith("_sync.py")
            and path.with_name(path.name.replace("_sync.py", "_async.py")).exists()
        ):
            continue  # generated from its *_async.py source
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _too_large(path: Path) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        size = (node.end_lineno or node.lineno) - node.lineno + 1
        if isinstance(node, ast.ClassDef) and size > MAX_CLASS:
            problems.append(f"{path.name}: class {node.name} is {size} lines (max {MAX_CLASS})")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and size > MAX_FUNCTION:
            problems.append(
                f"{path.name}: function {node.name} is {size} lines (max {MAX_FUNCTION})"
            )
    return problems


def _import_source(statement: ast.ImportFrom, package: str) -> str:
    """The dotted module a ``from ... import`` reads, relative imports resolved."""
    if not statement.level:
        return statement.module or ""
    base = package
    for _ in range(statement.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{statement.module}" if statement.module else base


def _module_imports(name: str, path: Path, modules: dict[str, Path]) -> tuple[set[str], list[str]]:
    """Modules imported when ``name`` is imported (module level, outside TYPE_CHECKING), and
    the private names it takes from a module of another subpackage."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported: set[str] = set()
    private: list[str] = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        statements = node.body if isinstance(node, ast.Try) else [node]
        for statement in statements:
            if isinstance(statement, ast.Import):
                imported.update(a.name for a in statement.names if a.name in modules)
            elif isinstance(statement, ast.ImportFrom):
                source = _import_source(statement, package)
                for alias in statement.names:
                    target = f"{source}.{alias.name}"
                    if target in modules:
                        imported.add(target)
                        continue
                    if source in modules:
                        imported.add(source)
                        if alias.name.startswith("_") and (
                            source.split(".")[:2] != name.split(".")[:2]
                        ):
                            private.append(f"{name} imports {alias.name} from {source}")
    imported.discard(name)
    return imported, private


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def _scan(root: Path) -> tuple[list[str], list[list[str]], list[str]]:
    modules = _sources(root)
    sizes = [problem for path in modules.values() for problem in _too_large(path)]
    graph: dict[str, set[str]] = {}
    private: list[str] = []
    for name, path in modules.items():
        graph[name], taken = _module_imports(name, path, modules)
        private += taken
    return sizes, _cycles(graph), private


def test_no_class_over_400_and_no_function_over_60_lines() -> None:
    sizes, _cycles_found, _private = _scan(SRC)
    assert sizes == []


def test_no_import_cycle_between_modules() -> None:
    _sizes, cycles, _private = _scan(SRC)
    assert cycles == [], [" -> ".join(c) for c in cycles]


def test_no_private_name_is_imported_from_another_subpackage() -> None:
    _sizes, _cycles_found, private = _scan(SRC)
    assert private == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pkg/__init__.py": "", "pkg/a.py": "def f():\n" + "    x = 1\n" * 61}, "sizes"),
        ({"pkg/__init__.py": "", "pkg/a.py": "from pkg import b\n", "pkg/b.py": "import pkg.a\n"},
         "cycles"),
        ({"pkg/__init__.py": "", "pkg/x/__init__.py": "", "pkg/x/a.py": "_hidden = 1\n",
          "pkg/y/__init__.py": "", "pkg/y/b.py": "from pkg.x.a import _hidden\n"}, "private"),
    ],
)  # fmt: skip
def test_the_scan_catches_each_violation(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    sizes, cycles, private = _scan(tmp_path)
    found = {"sizes": sizes, "cycles": cycles, "private": private}
    assert found[expected], found
    assert not any(v for k, v in found.items() if k != expected), found
