"""How the cache's cost grows with the value: 100 B to 1 MB, ratios against the smallest case.

Issue 18's growth curve for the cache. Every variant of one table runs interleaved with the
others (``_harness.measure``). What each curve shows:

- ``memory Cache.get``: a str value in a plain ``Cache(MemoryBackend())``. The work per read is
  constant (a dictionary lookup; the decoded string is kept next to its bytes), so the row for
  1 MB should cost what the row for 100 B costs. Ratios are to the 100 B row.
- ``Redis Cache.get / redis-py GET`` and ``Redis Cache.set / redis-py SET``: incompressible
  bytes (random), through ``Cache.from_url`` (memory fallback, key check, codec, counters)
  against a raw redis-py call with the same bytes on the same Redis. What renderkit adds is
  constant per call (a one-byte header, a 256-byte look at the bytes, one copy of the value
  behind the header), so the ratio of the two should stay near the 100 B row's ratio; each
  target divides a size's ratio by the 100 B one. For ``set`` a third row sends a freshly
  copied value with redis-py, to show what that one copy costs by itself at each size.
- ``compressible JSON``: a list of dicts, which renderkit compresses (zlib level 1) between
  1 KiB and 1 MiB. Compression is real extra work per byte, paid for the bytes it saves on the
  wire and in Redis, so this curve is not expected to be flat; it is shown for what it costs.

Redis: ``RENDERKIT_BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/15).
Run: ``cd benchmarks && python bench_cache_growth.py``.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from _harness import Result, Target, Variant, measure, report

from renderkit.cache import Cache, MemoryBackend

URL = os.environ.get("RENDERKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
SIZES = [100, 1_000, 10_000, 100_000, 1_000_000]
LIMIT = 1.2  # issue 18: each constant-work curve within 1.2x of its smallest case


def _label(size: int) -> str:
    return f"{size // 1000} KB" if size >= 1000 else f"{size} B"


def _compressible(size: int) -> list[dict[str, Any]]:
    """Rows of a user table, about ``size`` bytes of JSON."""
    rows: list[dict[str, Any]] = []
    length = 2
    while length < size:
        i = len(rows)
        row = {"id": i, "name": f"user {i}", "email": f"user{i}@example.com"}
        rows.append(row)
        length += len(json.dumps(row)) + 2
    return rows


def _flat_curve(name: str, result: Result, base: str, variants: list[str]) -> None:
    for variant in variants[1:]:
        result.check(
            Target(f"{name}: {variant} within {LIMIT}x of {base}", variant, base, max_ratio=LIMIT),
            result.ratio(variant, base),
        )


def _memory_get() -> Result:
    cache = Cache(MemoryBackend(max_bytes=256 * 1024 * 1024))
    variants = {}
    for size in SIZES:
        key = f"s{size}"
        cache.set(key, "x" * size)
        assert cache.get(key) == "x" * size
        variants[f"memory Cache.get, {_label(size)} str"] = lambda key=key: cache.get(key)
    result = measure(
        "memory Cache.get by value size",
        variants,
        baseline=next(iter(variants)),
        rounds=31,
        number=5000,
    )
    names = list(variants)
    _flat_curve("memory get", result, names[0], names)
    result.note = "A constant-work read: each row should cost what the 100 B row costs."
    return result


def _against_raw(op: str) -> Result:
    """``Cache.<op>`` and redis-py's command with the same random bytes, size by size.

    Each size is its own interleaved pair (a loaded machine drifts less within a pair), and
    the figure that counts is the pair's ratio, compared with the 100 B pair's.
    """
    import redis

    raw = redis.Redis.from_url(URL)
    cache = Cache.from_url(URL, namespace="growth")
    rng = random.Random(18)
    command = "GET" if op == "get" else "SET"
    variants: list[Variant] = []
    overheads: list[tuple[int, float]] = []
    copies: list[tuple[int, float]] = []
    for size in SIZES:
        value = rng.randbytes(size)
        key, raw_key = f"b{size}", f"raw:{size}"
        cache.set(key, value)
        raw.set(raw_key, value)
        assert cache.get(key) == value
        theirs, ours = f"redis-py {command}, {_label(size)}", f"Cache.{op}, {_label(size)}"
        if op == "get":
            pair = {theirs: lambda k=raw_key: raw.get(k), ours: lambda k=key: cache.get(k)}
        else:
            copied = f"redis-py SET of a fresh copy, {_label(size)}"
            pair = {
                theirs: lambda k=raw_key, v=value: raw.set(k, v, px=600_000),
                # What any header costs: the value copied once into a new buffer, then sent.
                copied: lambda k=raw_key, v=value: raw.set(k, b"b" + v, px=600_000),
                ours: lambda k=key, v=value: cache.set(k, v, 600),
            }
        number = 100 if size <= 10_000 else 20 if size <= 100_000 else 5
        measured = measure(f"{op} {size}", pair, baseline=theirs, rounds=21, number=number)
        variants.extend(measured.variants)
        overheads.append((size, measured.ratio(ours, theirs)))
        if op == "set":
            copies.append((size, measured.ratio(ours, copied)))
    base = variants[0].median_us
    for variant in variants:
        variant.ratio = round(variant.median_us / base, 3)
    result = Result(
        f"Redis Cache.{op} against redis-py {command} by value size (random bytes)",
        variants[0].name,
        variants,
    )
    smallest = overheads[0][1]
    for size, ratio in overheads[1:]:
        result.check(
            Target(
                f"Cache.{op} / redis-py at {_label(size)} within {LIMIT}x of the 100 B ratio "
                f"({smallest:.2f}x)",
                f"Cache.{op}, {_label(size)}",
                f"Cache.{op}, 100 B",
                max_ratio=LIMIT,
            ),
            ratio / smallest,
        )
    rows = ", ".join(f"{_label(size)} {ratio:.2f}x" for size, ratio in overheads)
    result.note = (
        f"Cache.{op} / redis-py {command} at each size, each size's variants interleaved: "
        f"{rows}. Ratios to baseline in the table are to the 100 B redis-py row."
    )
    if copies:
        copied_rows = ", ".join(f"{_label(size)} {ratio:.2f}x" for size, ratio in copies)
        result.note += (
            " Cache.set / redis-py SET of a freshly copied value (the one copy a header byte "
            f"needs): {copied_rows}."
        )
    cache.clear()
    raw.delete(*[f"raw:{size}" for size in SIZES])
    return result


def _compressible_on_redis() -> Result:
    import redis

    raw = redis.Redis.from_url(URL)
    cache = Cache.from_url(URL, namespace="growth")
    variants: dict[str, Any] = {}
    sizes: dict[int, tuple[int, int]] = {}
    for size in SIZES:
        value = _compressible(size)
        key = f"j{size}"
        cache.set(key, value)
        stored = raw.get(f"growth:{key}")
        assert stored is not None
        assert cache.get(key) == value
        sizes[size] = (len(json.dumps(value)), len(stored))
        variants[f"Cache.set, {_label(size)} JSON"] = lambda k=key, v=value: cache.set(k, v, 600)
        variants[f"Cache.get, {_label(size)} JSON"] = lambda k=key: cache.get(k)
    result = measure(
        "Redis Cache.set/get of compressible JSON by size",
        variants,
        baseline=next(iter(variants)),
        rounds=7,
        number=10,
    )
    stored = ", ".join(f"{_label(s)} -> {b / 1000:.1f} KB" for s, (_, b) in sizes.items())
    result.note = f"Bytes stored in Redis per value (JSON, then zlib level 1): {stored}."
    cache.clear()
    return result


def run() -> list[Result]:
    return [_memory_get(), _against_raw("get"), _against_raw("set"), _compressible_on_redis()]


if __name__ == "__main__":
    report(run(), "cache_growth")
