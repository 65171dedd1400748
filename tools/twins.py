"""Generate the sync twin of each async source module (the async code is the source).

Every file under ``src/renderkit`` whose name contains ``_async`` and whose first line is
``# twins: source`` is turned into the file of the same name with ``_async`` replaced by
``_sync``: ``async``/``await`` go away and names are mapped (see :data:`NAMES` and the rules
in :func:`rename`). The output carries a DO-NOT-EDIT header naming its source and is
formatted with ruff, so ``--check`` can compare it byte for byte.

Escape hatches, one line each, for the few places where the two sides really differ:

- ``x = await thing()  # twins: async-only`` is left out of the sync file;
- ``x = await thing()  # twins: sync: x = other()`` becomes ``x = other()`` there;
- a second line ``# twins: rename aload=load asave=save`` lists names only this file maps
  (more ``# twins: rename`` lines may follow it, so each stays within the line length).

Primitives that differ (sleep, locks, events, timeouts) live in ``renderkit._compat_async``
and ``renderkit._compat_sync``, which are hand-written and mapped onto each other.

The generated files are not kept in git (``.gitignore``): ``hatch_build.py`` runs this script
in every build, so ``pip install -e .``, a wheel and an sdist all carry current twins. After
editing an async source, run it again (or reinstall); ``tests/test_twins.py`` fails while a
twin on disk is stale.

    python tools/twins.py            # regenerate every sync twin
    python tools/twins.py --check    # exit 1 naming each stale or missing twin (CI)
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tokenize
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "renderkit"
MARKER = "# twins: source"
RENAME = "# twins: rename"

NAMES = {
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "asynccontextmanager": "contextmanager",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "AsyncExitStack": "ExitStack",
    "StopAsyncIteration": "StopIteration",
    "aclosing": "closing",
}

_ASYNC_CLASS = re.compile(r"\bAsync(?=[A-Z])")
_PRAGMA = re.compile(r"\s*#\s*twins:\s*(async-only|sync:\s*(?P<code>.*))\s*$")


def rename(name: str, extra: dict[str, str]) -> str:
    """Map one identifier: the file's own map, then :data:`NAMES`, then the naming rules.

    ``AsyncDatabase`` -> ``Database`` (any ``Async`` + capital), ``_async`` -> ``_sync``
    anywhere in a name (``_compat_async`` -> ``_compat_sync``, ``self._async()`` ->
    ``self._sync()``).
    """
    if name in extra:
        return extra[name]
    if name in NAMES:
        return NAMES[name]
    name = _ASYNC_CLASS.sub("", name)
    return name.replace("_async", "_sync")


def _rename_words(text: str, extra: dict[str, str]) -> str:
    """Apply :func:`rename` to the identifiers inside a docstring or comment."""
    return re.sub(r"\b[A-Za-z_][A-Za-z0-9_]*\b", lambda m: rename(m.group(0), extra), text)


def _apply_pragmas(source: str) -> str:
    out: list[str] = []
    for line in source.splitlines(keepends=True):
        match = _PRAGMA.search(line)
        if match is None or line.lstrip().startswith("#"):
            out.append(line)
            continue
        if match.group("code") is None:
            continue  # async-only
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}{match.group('code').rstrip()}\n")
    return "".join(out)


def _offsets(text: str) -> list[int]:
    """Absolute offset of the start of each line (1-based rows, as tokenize counts)."""
    starts = [0, 0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _edits(tokens: list[tokenize.TokenInfo], extra: dict[str, str]) -> list[tuple[int, int, str]]:
    """(row, col) spans to replace, as (start token index, end token index, text) triples."""
    edits: list[tuple[int, int, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == tokenize.NAME and tok.string in ("async", "await"):
            edits.append((i, i + 1, ""))  # the space after it goes with it, see transform()
        elif tok.type == tokenize.NAME and tok.string in ("Awaitable", "Coroutine"):
            close, last_arg = _subscript(tokens, i + 1)
            if close is not None:
                edits.append((i, last_arg, ""))  # "Awaitable[" or "Coroutine[Any, Any, "
                edits.append((close, close + 1, ""))  # the matching "]"
                i = last_arg
                continue
        elif tok.type == tokenize.NAME:
            new = rename(tok.string, extra)
            if new != tok.string:
                edits.append((i, i + 1, new))
        elif tok.type in (tokenize.STRING, tokenize.COMMENT):
            new = _rename_words(tok.string, extra)
            if new != tok.string:
                edits.append((i, i + 1, new))
        i += 1
    return edits


def _subscript(tokens: list[tokenize.TokenInfo], i: int) -> tuple[int | None, int]:
    """For ``[a, b, c]`` starting at ``i``: the index of ``]`` and of the last argument."""
    if i >= len(tokens) or tokens[i].string != "[":
        return None, i
    depth, last = 0, i + 1
    for j in range(i, len(tokens)):
        s = tokens[j].string
        if tokens[j].type != tokenize.OP:
            continue
        if s in "([{":
            depth += 1
        elif s in ")]}":
            depth -= 1
            if depth == 0:
                return j, last
        elif s == "," and depth == 1:
            last = j + 1
    return None, i


def transform(source: str) -> str:
    """The sync module text for one async ``source`` (before ruff formats it)."""
    lines = source.splitlines(keepends=True)
    extra: dict[str, str] = {}
    body = lines[1:]
    while body and body[0].startswith(RENAME):  # one or more lines, to keep each short
        for pair in body[0][len(RENAME) :].split():
            old, _, new = pair.partition("=")
            extra[old] = new
        body = body[1:]
    text = _apply_pragmas("".join(body))
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    starts = _offsets(text)

    def at(pos: tuple[int, int]) -> int:
        return starts[pos[0]] + pos[1]

    out = text
    for first, stop, new in sorted(_edits(tokens, extra), reverse=True):
        begin, end = at(tokens[first].start), at(tokens[stop - 1].end)
        if new == "" and tokens[first].string in ("async", "await"):
            while end < len(out) and out[end] == " ":
                end += 1
        elif new == "":
            end = at(tokens[stop].start) if stop < len(tokens) else end
        out = out[:begin] + new + out[end:]
    return out


def _dedupe_imports(text: str) -> str:
    """``from x import Iterator, Iterator`` (two names mapped onto one) keeps one of each."""

    def fix(match: re.Match[str]) -> str:
        names = [n.strip() for n in match.group(2).replace("\n", " ").split(",") if n.strip()]
        seen: list[str] = []
        for name in names:
            if name not in seen:
                seen.append(name)
        joined = ", ".join(seen)
        return f"{match.group(1)}({joined})" if "(" in match.group(0) else match.group(1) + joined

    text = re.sub(r"^(from [\w.]+ import )\(([^)]*)\)", fix, text, flags=re.M)
    return re.sub(r"^(from [\w.]+ import )([^(\n]+)$", fix, text, flags=re.M)


def _ruff_command() -> list[str]:
    """The ruff executable of this environment (a build's isolated one included)."""
    try:
        from ruff.__main__ import find_ruff_bin
    except ImportError:
        raise SystemExit(
            "tools/twins.py formats the sync modules it generates with ruff, which "
            f"{sys.executable} cannot import: pip install {_ruff_pin()} (the pin in "
            "pyproject.toml), or pip install -e '.[dev]'"
        ) from None
    return [str(find_ruff_bin())]


def _ruff_pin() -> str:
    """The ruff requirement the build pins (pyproject.toml's build-system), kept in one place."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    return next((r for r in requires if r.startswith("ruff")), "ruff")


def _ruff(text: str, target: Path) -> str:
    """Drop imports the transform made unused, sort the rest and format like the repo."""
    name, ruff = str(target), _ruff_command()
    fixed = subprocess.run(
        [*ruff, "check", "--quiet", "--fix", "--select", "F401,I", "--exit-zero",
         "--stdin-filename", name, "-"],
        input=text, capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    return subprocess.run(
        [*ruff, "format", "--quiet", "--stdin-filename", name, "-"],
        input=fixed, capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip


def header(source: Path) -> str:
    rel = source.relative_to(ROOT).as_posix()
    return (
        f"# DO NOT EDIT: generated from {rel} by tools/twins.py.\n"
        "# Edit the async source, then run `nox -s twins` (or reinstall: builds regenerate it).\n"
    )


def render(source: Path) -> tuple[Path, str]:
    """The target path and the full generated text for one async source file."""
    target = source.with_name(source.name.replace("_async", "_sync"))
    text = source.read_text(encoding="utf-8")
    body = transform(text)
    return target, _ruff(header(source) + _dedupe_imports(body), target)


def sources(root: Path | None = None) -> list[Path]:
    """Every async source file: ``_async`` in its name and the marker on its first line."""
    found = []
    for path in sorted((SRC if root is None else root).rglob("*_async*.py")):
        with path.open(encoding="utf-8") as fh:
            if fh.readline().strip() == MARKER:
                found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a twin is stale")
    args = parser.parse_args(argv)
    stale = []
    for source in sources():
        target, text = render(source)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(f"{target.relative_to(ROOT)} is stale: edit {source.name}, then run "
                         "`nox -s twins` and commit the result")  # fmt: skip
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(ROOT)}")
    for line in stale:
        print(line, file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
