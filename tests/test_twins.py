"""The sync-twin generator (tools/twins.py) maps async sources faithfully and catches drift."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("twins", ROOT / "tools" / "twins.py")
assert _spec is not None and _spec.loader is not None
twins = importlib.util.module_from_spec(_spec)
sys.modules["twins"] = twins
_spec.loader.exec_module(twins)

SOURCE = '''# twins: source
# twins: rename aget=get
"""AsyncThing reads through _async clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from renderkit import _compat_async as compat


class AsyncThing:
    async def __aenter__(self) -> AsyncThing:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await compat.sleep(0)

    async def aget(self, fn: Callable[[], Awaitable[int]]) -> int:
        await compat.sleep(1)  # twins: async-only
        got = await compat.wait_for(fn(), 3)  # twins: sync: got = fn()
        async with self._async() as conn:
            async for _row in conn:
                pass
        return got

    @asynccontextmanager
    async def rows(self) -> AsyncIterator[int]:
        yield 1
'''


def render(tmp_path: Path, text: str = SOURCE) -> str:
    body = twins.transform(text)
    return twins._ruff(twins._dedupe_imports(body), tmp_path / "thing_sync.py")


def test_async_keywords_and_names_are_mapped(tmp_path: Path) -> None:
    """async/await vanish; Async* classes, dunders, context managers and _async names map."""
    out = render(tmp_path)
    assert "async" not in out.replace('"""Thing reads', "")
    assert "await" not in out
    assert "class Thing:" in out
    assert "def __enter__(self) -> Thing:" in out
    assert "def __exit__" in out
    assert "def get(self, fn: Callable[[], int]) -> int:" in out
    assert "with self._sync() as conn:" in out
    assert "for _row in conn:" in out
    assert "@contextmanager" in out and "-> Iterator[int]:" in out
    assert "_compat_sync as compat" in out


def test_pragmas_drop_or_replace_a_line(tmp_path: Path) -> None:
    """``# twins: async-only`` lines are left out; ``# twins: sync: ...`` lines are replaced."""
    out = render(tmp_path)
    assert "compat.sleep(1)" not in out
    assert "got = fn()" in out
    assert "wait_for" not in out


def test_unused_imports_are_dropped(tmp_path: Path) -> None:
    """Awaitable is gone from the imports once no annotation uses it."""
    out = render(tmp_path)
    assert "Awaitable" not in out


def test_generated_output_compiles(tmp_path: Path) -> None:
    """The sync text is valid Python."""
    compile(render(tmp_path), "thing_sync.py", "exec")


def test_only_marked_files_are_sources(tmp_path: Path) -> None:
    """A file needs ``_async`` in its name and the marker on line 1 to count as a source."""
    (tmp_path / "a_async.py").write_text(SOURCE)
    (tmp_path / "b_async.py").write_text("# not a source\n")
    (tmp_path / "c.py").write_text(SOURCE)
    assert [p.name for p in twins.sources(tmp_path)] == ["a_async.py"]


def test_every_twin_in_the_repo_is_current() -> None:
    """What CI's ``nox -s twins -- --check`` asserts: no generated file is stale."""
    stale = []
    for source in twins.sources():
        target, text = twins.render(source)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            stale.append(str(target))
    assert stale == [], f"run `nox -s twins`: stale {stale}"


def test_check_mode_fails_on_a_stale_twin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check exits 1 and names the stale file instead of rewriting it."""
    pkg = tmp_path / "src" / "renderkit"
    pkg.mkdir(parents=True)
    (pkg / "thing_async.py").write_text(SOURCE)
    (pkg / "thing_sync.py").write_text("# hand-edited\n")
    monkeypatch.setattr(twins, "ROOT", tmp_path)
    monkeypatch.setattr(twins, "SRC", pkg)
    assert twins.main(["--check"]) == 1
    assert "thing_sync.py is stale" in capsys.readouterr().err
    assert (pkg / "thing_sync.py").read_text() == "# hand-edited\n"
    assert twins.main([]) == 0
    assert twins.main(["--check"]) == 0
    assert (pkg / "thing_sync.py").read_text().startswith("# DO NOT EDIT: generated from")


def test_rename_may_span_several_lines() -> None:
    """Consecutive ``# twins: rename`` lines all count, so a long map stays within 100 columns."""
    source = (
        "# twins: source\n"
        "# twins: rename aget=get\n"
        "# twins: rename aset=set\n"
        "async def f(c):\n"
        "    await c.aget()\n"
        "    await c.aset()\n"
    )
    out = twins.transform(source)
    assert "c.get()" in out and "c.set()" in out
    assert "twins: rename" not in out


def test_compat_sync_defines_every_name_of_compat_async() -> None:
    """A generated twin imports ``_compat_sync`` under the async names: each one must exist."""
    from renderkit import _compat_async, _compat_sync

    missing = [name for name in _compat_async.__all__ if not hasattr(_compat_sync, name)]
    assert missing == []


def test_a_missing_ruff_is_named_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without ruff the generator stops with what to install, not a CalledProcessError from a
    `python -m ruff` subprocess (a contributor's fresh venv)."""
    monkeypatch.setitem(sys.modules, "ruff.__main__", None)  # import now raises ImportError
    with pytest.raises(SystemExit, match=r"pip install ruff==0\.17\.6"):
        twins._ruff_command()
