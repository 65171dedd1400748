"""Run every ``benchmarks/bench_*.py`` and write the tables to docs/benchmarks.md.

A section's ``### Dated notes`` block, written by hand under its tables, is kept.

A benchmark module exposes ``run() -> list[Result]``; one without it is run as a script and its
printed Markdown is included as it is. ``python benchmarks/run_all.py import cache`` runs only
the named ones.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from _harness import machine, table  # noqa: E402

DOCS = HERE.parent / "docs" / "benchmarks.md"

INTRO = """# Benchmarks

Every figure on this page comes from `nox -s bench` (`python benchmarks/run_all.py`), which
runs each benchmark's variants interleaved (A B A B ...) on the same machine in the same run
and reports medians and ratios to a baseline measured alongside. Targets are ratios, so the
figures transfer between machines better than absolute times; absolute microseconds are shown
for orientation only. A target marked **no** is a shortfall, stated as measured.
"""


NOTES = "### Dated notes"


def dated_notes(page: str) -> dict[str, str]:
    """Each section's hand-kept ``### Dated notes`` block (a before/after measured on a given
    day), so a regenerated page keeps it under its section."""
    kept: dict[str, str] = {}
    for section in page.split("\n## ")[1:]:
        name, _, text = section.partition("\n")
        if NOTES in text:
            kept[name.strip()] = "\n" + NOTES + text.split(NOTES, 1)[1].rstrip() + "\n"
    return kept


def main(selected: list[str]) -> int:
    kept = dated_notes(DOCS.read_text()) if DOCS.exists() else {}
    sections: list[str] = []
    failed: list[str] = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if selected and name not in selected:
            continue
        print(f"== {path.name}", flush=True)
        module = importlib.import_module(path.stem)
        if hasattr(module, "run"):
            try:
                results = module.run()
            except Exception as exc:  # a broken benchmark must not hide the others
                failed.append(f"{path.name}: {type(exc).__name__}: {exc}")
                continue
            body = "\n".join(table(r) for r in results)
        else:
            proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True)
            if proc.returncode != 0:
                failed.append(f"{path.name}: exit {proc.returncode}: {proc.stderr[-500:]}")
                continue
            body = proc.stdout
        print(body, flush=True)
        sections.append(f"## {name}\n\n{body}{kept.get(name, '')}")
    facts = machine()
    header = (
        f"{INTRO}\nLast run: {facts['date']} on {facts['platform']}, {facts['cpus']} CPUs, "
        f"Python {facts['python']}, command `nox -s bench`.\n\n"
    )
    if not selected:
        DOCS.write_text(header + "\n".join(sections))
        print(f"wrote {DOCS}")
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
