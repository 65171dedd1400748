"""A tiny benchmark harness: variants run interleaved, medians and ratios from one run.

Each benchmark defines variants (zero-argument callables, sync or async, each doing one
operation) and names one of them the baseline. ``measure`` runs them round-robin
(A B C A B C ...) so drift on a shared 2-core machine hits every variant alike, takes the
median of the per-round timings, and reports each variant as a ratio to the baseline measured
in the same run. Targets are checked on those ratios, never on absolute times.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"

Op = Callable[[], Any] | Callable[[], Awaitable[Any]]


@dataclass
class Variant:
    name: str
    median_us: float
    ratio: float
    samples: int


@dataclass
class Target:
    """A promise about one ratio: ``variant`` / ``against`` must be at most ``max_ratio``
    (or at least ``min_ratio``)."""

    description: str
    variant: str
    against: str
    max_ratio: float | None = None
    min_ratio: float | None = None
    measured: float | None = None
    met: bool | None = None


@dataclass
class Result:
    benchmark: str
    baseline: str
    variants: list[Variant]
    targets: list[Target] = field(default_factory=list)
    note: str = ""

    def ratio(self, a: str, b: str) -> float:
        by_name = {v.name: v for v in self.variants}
        return by_name[a].median_us / by_name[b].median_us

    def overhead_ratio(self, a: str, b: str, bare: str) -> float:
        """(a - bare) / (b - bare): how much of b's added cost a adds."""
        by_name = {v.name: v.median_us for v in self.variants}
        return (by_name[a] - by_name[bare]) / max(by_name[b] - by_name[bare], 1e-9)

    def check(self, target: Target, measured: float) -> None:
        target.measured = round(measured, 3)
        ok = True
        if target.max_ratio is not None:
            ok = ok and measured <= target.max_ratio
        if target.min_ratio is not None:
            ok = ok and measured >= target.min_ratio
        target.met = ok
        self.targets.append(target)


def _time_batch(op: Op, number: int, loop: asyncio.AbstractEventLoop | None) -> float:
    if loop is not None:

        async def run() -> float:
            start = time.perf_counter()
            for _ in range(number):
                await op()  # type: ignore[misc]
            return time.perf_counter() - start

        return loop.run_until_complete(run())
    start = time.perf_counter()
    for _ in range(number):
        op()
    return time.perf_counter() - start


def measure(
    benchmark: str,
    variants: dict[str, Op],
    *,
    baseline: str,
    rounds: int = 15,
    number: int = 200,
    warmup: int = 2,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Result:
    """Run every variant ``rounds`` times, interleaved, ``number`` calls per round."""
    is_async = {name: inspect.iscoroutinefunction(op) for name, op in variants.items()}
    if any(is_async.values()) and loop is None:
        loop = asyncio.new_event_loop()
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for round_no in range(warmup + rounds):
        for name, op in variants.items():
            elapsed = _time_batch(op, number, loop if is_async[name] else None)
            if round_no >= warmup:
                timings[name].append(elapsed / number * 1e6)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    base = medians[baseline]
    return Result(
        benchmark=benchmark,
        baseline=baseline,
        variants=[
            Variant(name, round(m, 3), round(m / base, 3), len(timings[name]))
            for name, m in medians.items()
        ],
    )


def machine() -> dict[str, Any]:
    """Facts that make a figure reproducible: where, when, with what."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def table(result: Result) -> str:
    """Render a result as a Markdown table (plus its targets)."""
    lines = [
        f"### {result.benchmark}",
        "",
        f"Baseline: `{result.baseline}`. Medians of interleaved rounds.",
        "",
        "| variant | median (µs) | ratio to baseline |",
        "|---|---:|---:|",
    ]
    lines += [f"| {v.name} | {v.median_us:.2f} | {v.ratio:.2f}x |" for v in result.variants]
    if result.targets:
        lines += ["", "| target | measured | met |", "|---|---:|:---:|"]
        for t in result.targets:
            lines.append(f"| {t.description} | {t.measured} | {'yes' if t.met else '**no**'} |")
    if result.note:
        lines += ["", result.note]
    return "\n".join(lines) + "\n"


def report(results: list[Result], name: str) -> str:
    """Print tables and write ``benchmarks/results/<name>.json``; returns the Markdown."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    facts = machine()
    payload = {"machine": facts, "results": [asdict(r) for r in results]}
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(payload, indent=2))
    header = (
        f"Machine: {facts['platform']}, {facts['cpus']} CPUs, Python {facts['python']}; "
        f"{facts['date']}; `{facts['command']}`\n"
    )
    text = header + "\n" + "\n".join(table(r) for r in results)
    print(text)
    return text


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def asgi_caller(
    app: Any,
    path: str = "/",
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    client: tuple[str, int] = ("203.0.113.7", 51000),
    scheme: str = "http",
    keep_cookie: bool = False,
    cookie: bytes | None = None,
    expect_status: int | None = None,
) -> Any:
    """Return ``async call()`` sending one GET through ``app`` in-process, as a server would.

    A fresh scope per call (servers build one per request, so its cost is in every variant
    alike). ``keep_cookie`` replays the last ``Set-Cookie`` like a browser; ``cookie`` sends a
    fixed one; ``expect_status`` fails the benchmark when the app answers anything else.
    ``call.set_cookie`` lists every ``Set-Cookie`` value seen.
    """
    base_headers = list(headers if headers is not None else [(b"host", b"example.com")])
    if cookie is not None:
        base_headers.append((b"cookie", cookie))
    kept: list[bytes] = []
    set_cookie: list[bytes] = []
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
            for name, value in message.get("headers", ()):
                if name.lower() == b"set-cookie":
                    set_cookie.append(value)
                    kept[:] = [value.split(b";", 1)[0]]

    async def call() -> None:
        request_headers = list(base_headers)
        if keep_cookie and kept:
            request_headers.append((b"cookie", kept[0]))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": scheme,
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": request_headers,
            "client": client,
            "server": ("127.0.0.1", 8000),
            "state": {},
            "app": app,
        }
        await app(scope, _receive, send)
        if expect_status is not None and statuses[-1] != expect_status:
            raise RuntimeError(f"the benchmark app answered {statuses[-1]}, not {expect_status}")
        if len(statuses) > 64:
            del statuses[:-1], set_cookie[:-1]

    call.set_cookie = set_cookie  # type: ignore[attr-defined]
    return call
