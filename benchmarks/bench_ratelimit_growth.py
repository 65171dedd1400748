"""Rate-limit cost as the work grows: rules 1 -> 1,000, clients 1 -> 100,000, memory per client.

1. Rules: one policy decision (memory storage) for a request whose path varies on every call
   (ids in URLs), against 1, 10, 100 and 1,000 exact rules, and 1,000 prefix rules. Exact
   paths are a dict lookup and prefixes one lookup per path segment, so the cost stays flat.
   Target: 1,000 rules within 1.2x of one rule.
2. Clients: ``RateLimiter("memory://").hit(key)`` cycling over 1, 1,000, 10,000 and 100,000
   distinct keys. Expiry is bucketed (no timer walking every key), so the cost stays flat.
   Target: 100,000 clients within 1.2x of one client.
3. Memory: bytes per client in the memory store (tracemalloc), and the number of counters
   after 200,000 distinct clients with ``max_keys=100_000``: the cap holds.

Run: ``.venv/bin/python benchmarks/bench_ratelimit_growth.py``.
"""

from __future__ import annotations

import itertools
import tracemalloc

from _harness import Result, Target, Variant, measure, report

from renderkit.ratelimit import RateLimiter, RateLimitPolicy, RequestInfo, Rule

LIMIT = "1000000000/minute"


def _decide(rules: list[Rule]) -> object:
    limiter = RateLimiter("memory://", default=LIMIT, strategy="fixed-window")
    policy = RateLimitPolicy(limiter, rules=rules, environ={})
    ids = itertools.count()

    def call() -> None:
        # A new path every call: /items/<id>/detail under the rules' prefixes.
        policy.decide(RequestInfo("GET", f"/p0/items/{next(ids) % 50_000}", [], "203.0.113.7"))

    return call


def rules() -> Result:
    variants = {}
    for count in (1, 10, 100, 1000):
        exact = [Rule(f"/exact/{n}", "1000000000/minute") for n in range(count - 1)]
        variants[f"{count} exact rules"] = _decide([*exact, Rule("/p0/*", LIMIT)])
    prefix = [Rule(f"/p{n}/*", LIMIT) for n in range(1000)]
    variants["1000 prefix rules"] = _decide(list(reversed(prefix)))
    result = measure(
        "Policy decision, path varying per request, by number of rules",
        variants,
        baseline="1 exact rules",
        rounds=11,
        number=2000,
    )
    for name in ("1000 exact rules", "1000 prefix rules"):
        result.check(
            Target(f"{name} ≤ 1.2x one rule", name, "1 exact rules", max_ratio=1.2),
            result.ratio(name, "1 exact rules"),
        )
    return result


def _hits(clients: int) -> object:
    limiter = RateLimiter("memory://", default=LIMIT, strategy="sliding-window-counter")
    keys = itertools.cycle(
        [f"ip:10.{n // 65536}.{n // 256 % 256}.{n % 256}" for n in range(clients)]
    )
    for _ in range(clients):  # every client is known before timing starts
        limiter.hit(next(keys))

    def call() -> None:
        limiter.hit(next(keys))

    return call


def clients() -> Result:
    result = measure(
        "RateLimiter('memory://').hit(), by number of distinct clients",
        {f"{n} clients": _hits(n) for n in (1, 1000, 10_000, 100_000)},
        baseline="1 clients",
        rounds=11,
        number=3000,
    )
    result.check(
        Target("100,000 clients ≤ 1.2x one client", "100000 clients", "1 clients", max_ratio=1.2),
        result.ratio("100000 clients", "1 clients"),
    )
    return result


def memory() -> Result:
    tracemalloc.start()
    limiter = RateLimiter("memory://", default="100/minute")
    before = tracemalloc.get_traced_memory()[0]
    for n in range(100_000):
        limiter.hit(f"ip:10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    per_client = (tracemalloc.get_traced_memory()[0] - before) / 100_000
    tracemalloc.stop()
    capped = RateLimiter("memory://", default="100/minute", max_keys=100_000)
    for n in range(200_000):
        capped.hit(f"ip:{n}")
    kept = capped.stats()["memory_keys"]
    result = Result(
        "Memory store: bytes per client, counters kept under a cap",
        "bytes per client",
        [
            Variant("bytes per client", round(per_client, 1), 1.0, 1),
            Variant("counters after 200,000 clients, max_keys=100,000", float(kept), 1.0, 1),
        ],
        note="Rows hold bytes and a count, not µs. The cap drops the oldest counters first.",
    )
    result.check(
        Target("counters ≤ max_keys", "counters", "max_keys", max_ratio=1.0),
        kept / 100_000,
    )
    return result


def run() -> list[Result]:
    return [rules(), clients(), memory()]


if __name__ == "__main__":
    report(run(), "ratelimit_growth")
