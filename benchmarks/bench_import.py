"""Import cost of renderkit and its modules, as added milliseconds over ``python -c pass``.

Targets (issue 2): ``import renderkit`` adds at most 10 ms to interpreter start-up;
``renderkit.platform`` and ``renderkit.config`` at most 30 ms each.
"""

from __future__ import annotations

import os
import subprocess
import sys

from _harness import Result, Target, measure, report

MODULES = [
    "renderkit",
    "renderkit.platform",
    "renderkit.config",
    "renderkit.logging",
    "renderkit.health",
    "renderkit.resilience",
]

TARGETS_MS = {"renderkit": 10.0, "renderkit.platform": 30.0, "renderkit.config": 30.0}


# Measure imports as a deployed app sees them: with bytecode cached.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _start(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)


def run() -> list[Result]:
    for module in MODULES:  # write the bytecode once, outside the timings
        _start(f"import {module}")
    variants = {"python -c pass": lambda: _start("pass")}
    for module in MODULES:
        variants[f"import {module}"] = lambda m=module: _start(f"import {m}")
    result = measure("Import cost", variants, baseline="python -c pass", rounds=9, number=3)
    by_name = {v.name: v.median_us for v in result.variants}
    base = by_name["python -c pass"]
    for module, limit in TARGETS_MS.items():
        added_ms = (by_name[f"import {module}"] - base) / 1000
        target = Target(
            f"`import {module}` adds ≤ {limit:.0f} ms",
            f"import {module}",
            "python -c pass",
            max_ratio=limit,
        )
        result.check(target, added_ms)
    result.note = "Measured values for targets are added milliseconds (median minus baseline)."
    return [result]


if __name__ == "__main__":
    report(run(), "import")
