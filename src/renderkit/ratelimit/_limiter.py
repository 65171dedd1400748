"""The rate limiter: where counts live, and what happens while that storage is down.

Counting is done by one of three stores, chosen from ``storage``:

- ``memory://``: :class:`~renderkit.ratelimit._counting.MemoryCounts` (bucketed expiry, a cap
  on keys);
- a Redis URL (``redis://``, ``rediss://``, ``unix://``, ``valkey://``, Sentinel, Cluster):
  renderkit's one Lua script, one round trip per request whatever the number of limits;
- any other ``limits`` storage object: ``limits``' own strategies.

A shared storage that fails is handled by :class:`renderkit.resilience.Degrader`: one log line
per outage and per recovery, a background probe, ``degraded`` health. Its fallback is an
in-process memory store where each process allows ``limit / processes`` (so the whole service
overshoots by at most rounding) or, for limits marked ``fail_closed`` and with
``fail_open=False``, a 503.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from renderkit._optional import require
from renderkit._redis import PerLoop, redis_client
from renderkit.config import RedisUrl, Seconds, Settings, env
from renderkit.errors import ConfigError, ConfigProblem
from renderkit.health import CheckResult
from renderkit.ratelimit._counting import (
    DEFAULT_MAX_KEYS,
    Charge,
    MemoryCounts,
    RateLimitResult,
    Strategy,
    Tally,
    result_of,
)
from renderkit.resilience import Degrader

if TYPE_CHECKING:
    from limits import RateLimitItem

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_TIMEOUT",
    "RateLimitResult",
    "RateLimitSettings",
    "RateLimiter",
    "Strategy",
    "parse_limits",
]

logger = logging.getLogger("renderkit.ratelimit")

_STRATEGIES: dict[str, Strategy] = {
    "fixed-window": "fixed-window",
    "fixed_window": "fixed-window",
    "moving-window": "moving-window",
    "moving_window": "moving-window",
    "sliding-window-counter": "sliding-window-counter",
    "sliding_window_counter": "sliding-window-counter",
    "sliding-window": "sliding-window-counter",
}
DEFAULT_LIMIT = "100/hour"
DEFAULT_TIMEOUT = 0.1
"""Seconds Redis may take to answer (connect and reply) before the call counts as failed."""

Limit: TypeAlias = "str | Sequence[str] | list[RateLimitItem] | None"
_REDIS_SCHEMES: tuple[str, ...] = ("redis", "rediss", "redis+unix", "unix", "valkey", "valkeys")
_REDIS_SCHEMES += ("redis+sentinel", "redis+cluster")


def _require_limits() -> Any:
    return require("limits", extra="ratelimit", feature="renderkit.ratelimit")


def _problem(option: str, message: str, found: str = "") -> ConfigError:
    return ConfigError(
        ConfigProblem(option, message, "code", expected="a limit such as 100/hour", found=found)
    )


def parse_limits(value: str | Sequence[str], *, option: str = "limit") -> list[RateLimitItem]:
    """Parse ``"100/hour"``, ``"10/minute;1000/day"`` or a list of those into ``limits`` items.

    Raises :class:`ConfigError` naming ``option`` for an empty or malformed value, so bad
    configuration fails at start-up rather than at the first request.
    """
    limits = _require_limits()
    given: object = value  # anything may arrive at run time: say what is wrong with it
    texts: list[object]
    if isinstance(given, str):
        texts = [given]
    elif isinstance(given, Sequence):
        texts = list(given)
    elif callable(given):  # slowapi and flask-limiter take a function that returns the limit
        raise _problem(
            option,
            "got a function; give the limit itself ('100/hour'). For limits that depend on "
            "the caller, give one per tier ({'free': '10/minute', 'pro': '100/minute'}) and "
            "the policy tier=<function of the request that returns the tier's name> "
            "(docs/ratelimit.md, 'Tiers, rules, exemptions')",
            repr(given)[:80],
        )
    else:
        raise _problem(
            option,
            f"a limit is a string such as '100/hour' or a list of them, not {type(given).__name__}",
            repr(given)[:80],
        )
    items: list[RateLimitItem] = []
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise _problem(
                option,
                "a rate limit is empty; use a value such as '100/hour' or '10/minute;1000/day'",
                repr(text)[:80],
            )
        try:
            items.extend(limits.parse_many(text))
        except ValueError:
            raise _problem(
                option,
                f"{text[:80]!r} is not a rate limit; write '<count>/<period>' such as "
                "'100/hour', '5 per minute' or several joined by ';'",
                text[:80],
            ) from None
    if not items:
        raise _problem(option, "no rate limit given; use a value such as '100/hour'", "[]")
    for item in items:
        if item.amount < 1:
            raise _problem(option, f"{item} allows nothing; the count must be 1 or more")
    return items


def most_restrictive(results: Sequence[RateLimitResult]) -> RateLimitResult:
    """The result that speaks for a request: the refusal with the longest wait, else the
    limit with the smallest share left."""
    if len(results) == 1:
        return results[0]
    denied = [r for r in results if not r.allowed]
    if denied:
        return max(denied, key=lambda r: (r.unavailable, r.retry_after))
    return min(results, key=lambda r: (r.remaining / r.limit, -r.reset_after))


def _valid_limit(value: str) -> str:
    try:
        parse_limits(value, option="RATELIMIT_DEFAULT")
    except ConfigError:
        raise ValueError(
            "not a rate limit; write '<count>/<period>' such as 100/hour, or several joined "
            "by ';' (10/minute;1000/day)"
        ) from None
    return value


def _strategy(value: str) -> Strategy:
    chosen = _STRATEGIES.get(str(value).strip().lower())
    if chosen is None:
        raise ValueError("use sliding-window-counter, fixed-window or moving-window")
    return chosen


def _window_text(ms: int) -> str:
    seconds = max(1, math.ceil(ms / 1000))
    return f"{seconds} second" if seconds == 1 else f"{seconds} seconds"


class RateLimitSettings(Settings):
    """The variables ``RateLimiter.from_env()`` reads."""

    storage_url: RedisUrl | None = env(
        "RATELIMIT_STORAGE_URL", default=None, secret=True, aliases=("REDIS_URL",)
    )
    """Where rate-limit counts live (a Redis URL); unset: REDIS_URL, else process memory."""
    default: str | None = env(
        "RATELIMIT_DEFAULT", default=None, validate=lambda value: _valid_limit(value)
    )
    """The app-wide default limit per client and route, e.g. 100/hour or 10/minute;1000/day. Unset:
    RATE_LIMIT_MAX_REQUESTS per RATE_LIMIT_WINDOW_MS, else 100/hour."""
    max_requests: int | None = env("RATE_LIMIT_MAX_REQUESTS", default=None, minimum=1)
    """Requests per RATE_LIMIT_WINDOW_MS (the express-rate-limit names); used when RATELIMIT_DEFAULT
    is unset."""
    window_ms: int = env("RATE_LIMIT_WINDOW_MS", default=60_000, minimum=1)
    """Window of RATE_LIMIT_MAX_REQUESTS, in milliseconds (rounded up to seconds)."""
    strategy: str = env(
        "RATELIMIT_STRATEGY",
        default="sliding-window-counter",
        validate=lambda value: _strategy(value),
    )
    """sliding-window-counter (smooth), fixed-window (cheapest) or moving-window (exact)."""
    fail_open: bool = env("RATELIMIT_FAIL_OPEN", default=True)
    """While Redis is down: true counts in process memory; false answers 503."""
    timeout: Seconds = env("RATELIMIT_TIMEOUT", default="100ms", minimum="1ms", maximum="60s")
    """How long Redis may take to answer before the call counts as failed."""
    key_prefix: str = env("RATELIMIT_KEY_PREFIX", default="renderkit-rl")
    """Namespace of the Redis keys."""
    max_keys: int = env("RATELIMIT_MEMORY_MAX_KEYS", default=DEFAULT_MAX_KEYS, minimum=1)
    """Counters the in-process memory store keeps (about 250 bytes each); the oldest go first."""

    def default_limit(self) -> str:
        """``RATELIMIT_DEFAULT``, else the Kirby-Gen pair, else ``100/hour``."""
        if self.default:
            return self.default
        if self.max_requests:
            return f"{self.max_requests} per {_window_text(self.window_ms)}"
        return DEFAULT_LIMIT


class RateLimitProcessSettings(Settings):
    """How many processes share a quota: what the memory fallback divides each limit by."""

    processes: int = env("RATELIMIT_PROCESSES", default=1, minimum=1, aliases=("WEB_CONCURRENCY",))
    """Processes sharing one quota (instances x workers). While Redis is down each allows
    limit/processes from memory. Unset: WEB_CONCURRENCY, else 1."""


def _classify(storage: Any, limits: Any) -> tuple[str, Any]:
    """(kind, value): memory, url, redis (a sync limits RedisStorage), sync, aio, or bad."""
    if isinstance(storage, str):
        scheme = storage.split("://", 1)[0].lower() if "://" in storage else ""
        if scheme == "memory":
            return "memory", None
        if scheme in _REDIS_SCHEMES:
            return "url", ("unix://" + storage[13:] if scheme == "redis+unix" else storage)
        shown = f"'{scheme}://'" if scheme else "no scheme"
        return "bad", (
            f"the storage URL has {shown}; use memory://, redis://, rediss://, unix:// "
            "(or valkey://, redis+sentinel://, redis+cluster://), or pass a limits storage"
        )
    if isinstance(storage, limits.storage.RedisStorage):
        return "redis", storage
    if isinstance(storage, limits.storage.Storage):
        return "sync", storage
    if isinstance(storage, limits.aio.storage.Storage):
        return "aio", storage
    if callable(getattr(storage, "execute_command", None)):
        return "client", storage  # a redis-py client: Redis, RedisCluster, sync or asyncio
    return "bad", (
        f"got a {type(storage).__name__}; pass a URL string, a redis-py client or a limits storage"
    )


class RateLimiter:
    """Count requests per key; answer from memory while a shared storage is down.

    ``storage``: ``memory://``, a Redis URL, or a ``limits`` storage object (sync, or
    ``limits.aio`` for async use only). ``default``: the limit :meth:`hit` and the policies'
    app-wide default use (``"100/hour"``, ``"10/minute;1000/day"``). ``strategy``:
    ``"sliding-window-counter"`` (default), ``"fixed-window"`` or ``"moving-window"``.
    ``fail_open``: while the storage is down, count in process memory (True) or refuse
    limited requests with 503 (False). ``timeout``: seconds Redis may take to answer (on
    asyncio, time the event loop was busy does not count). ``failure_threshold`` /
    ``recovery_timeout``: the breaker (failures in a row; seconds between background probes;
    short by default, since until its own probe answers a process keeps counting its share
    in memory while the others already count in Redis again).
    ``max_keys``: counters the memory store keeps. ``processes``: how many processes share a
    quota; while degraded each allows ``limit // processes`` (default: ``RATELIMIT_PROCESSES``,
    else ``WEB_CONCURRENCY`` from ``environ``, else 1).

    One object serves sync code (:meth:`hit`, :meth:`peek`, :meth:`acquire`) and async code
    (:meth:`ahit`, :meth:`apeek`, :meth:`aacquire`); for a Redis URL each side (and each
    event loop) has its own client of the same server, so they share counts.
    """

    def __init__(
        self,
        storage: str | Any = "memory://",
        *,
        default: str | Sequence[str] = DEFAULT_LIMIT,
        strategy: str = "sliding-window-counter",
        fail_open: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        key_prefix: str = "renderkit-rl",
        failure_threshold: int = 3,
        recovery_timeout: float = 1.0,
        environ: Mapping[str, str] | None = None,
        max_keys: int = DEFAULT_MAX_KEYS,
        processes: int | None = None,
    ) -> None:
        self.strategy, self.default, kind, value = _validated(storage, default, strategy, timeout)
        self.fail_open = fail_open
        self.timeout = timeout
        self.key_prefix = key_prefix
        self.processes = processes or RateLimitProcessSettings.load(environ).processes
        self.storage_url: str | None = value if kind == "url" else None
        self._kind = kind
        self._storage = value
        self._lock = threading.Lock()
        memory = MemoryCounts(self.strategy, max_keys=max_keys)
        self._memory = memory if kind == "memory" else None
        self._fallback = memory  # the memory store itself, or the shared storage's fallback
        self._sync_store: Any = None
        self._async_loops: PerLoop[Any] | None = None
        self._aio_store: Any = None
        self._counts = {"allowed": 0, "denied": 0, "unavailable": 0}
        # How the last call was answered when the shared storage failed: "memory" or "503";
        # None once it answers again. Health reads it before the breaker has opened.
        self._fell_back: str | None = None
        self.degrader = Degrader(
            "rate limiting",
            primary="redis" if kind in ("url", "redis", "client") else "the limits storage",
            fallback="process memory" if fail_open else "503 answers",
            logger=logger,
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            probe=self._probe,
            aprobe=self._aprobe,
        )
        self.breaker = self.degrader.breaker
        if kind == "memory" and self.processes > 1:
            _warn_memory(self.processes)
        if kind == "url":
            self._sync()  # imports redis now: a missing extra fails at start-up

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> RateLimiter:
        """Build from :class:`RateLimitSettings` (``RATELIMIT_*``, ``REDIS_URL``, and the
        ``RATE_LIMIT_WINDOW_MS`` / ``RATE_LIMIT_MAX_REQUESTS`` pair); every bad variable is
        reported at once. ``options`` override what the environment says."""
        settings = RateLimitSettings.load(environ)
        default = settings.default_limit()
        values: dict[str, Any] = {
            "default": default,
            "strategy": settings.strategy,
            "fail_open": settings.fail_open,
            "timeout": float(settings.timeout),
            "key_prefix": settings.key_prefix or "renderkit-rl",
            "max_keys": settings.max_keys,
            "environ": environ,
        }
        return cls(str(settings.storage_url or "memory://"), **{**values, **options})

    # -- stores ---------------------------------------------------------------------------
    def _sync(self) -> Any:
        store = self._sync_store
        if store is not None:
            return store
        with self._lock:
            if self._sync_store is None:
                self._sync_store = self._new_sync_store()
        return self._sync_store

    def _new_sync_store(self) -> Any:
        from renderkit.ratelimit._store_sync import LimitsCounts, RedisCounts

        if self._kind == "memory":
            return self._memory
        if self._kind == "url":
            client = _client(
                self._storage, self.timeout, asyncio=False, socket_timeout=self.timeout
            )
            return RedisCounts(client, self.strategy, prefix=self.key_prefix, timeout=self.timeout)
        if self._kind == "redis":
            client = self._storage.get_connection()
            return RedisCounts(client, self.strategy, prefix=self.key_prefix, timeout=self.timeout)
        if self._kind == "client" and not _is_async(self._storage):
            return RedisCounts(
                self._storage, self.strategy, prefix=self.key_prefix, timeout=self.timeout
            )
        if self._kind == "sync":
            return LimitsCounts(
                _strategy_of(self.strategy, self._storage, sync=True), self.strategy
            )
        raise TypeError(
            "RateLimiter.hit() is sync but the storage is a limits.aio storage; use "
            "'await limiter.ahit(...)' or a sync storage"
        )

    def _async(self) -> Any:
        """The async store of the running loop; None when sync calls serve async callers."""
        if self._kind == "url":
            loops = self._async_loops
            if loops is None:
                loops = self._async_loops = PerLoop(self._new_async_store, client=_client_of)
            return loops.get()
        if self._kind == "client" and _is_async(self._storage):
            if self._aio_store is None:
                from renderkit.ratelimit._store_async import AsyncRedisCounts

                self._aio_store = AsyncRedisCounts(
                    self._storage, self.strategy, prefix=self.key_prefix, timeout=self.timeout
                )
            return self._aio_store
        if self._kind == "aio":
            if self._aio_store is None:
                from renderkit.ratelimit._store_async import AsyncLimitsCounts

                strategy = _strategy_of(self.strategy, self._storage, sync=False)
                self._aio_store = AsyncLimitsCounts(strategy, self.strategy)
            return self._aio_store
        return None

    def _new_async_store(self) -> Any:
        from renderkit.ratelimit._store_async import AsyncRedisCounts

        # No socket timeout: renderkit's own deadline (``Deadlines``) bounds every call and
        # measures the server's answer, not time queued behind the event loop.
        client = _client(self._storage, self.timeout, asyncio=True)
        return AsyncRedisCounts(client, self.strategy, prefix=self.key_prefix, timeout=self.timeout)

    def _probe(self) -> None:
        self._sync().ping()

    async def _aprobe(self) -> None:
        store = self._async()
        await (store.ping() if store is not None else _to_thread(self._probe))

    # -- counting -------------------------------------------------------------------------
    def charges(self, key: str, items: Sequence[RateLimitItem], cost: int = 1) -> list[Charge]:
        """The :class:`Charge` list for ``key`` under ``items`` (one counter per item)."""
        return [
            Charge(key + suffix, amount, window, cost, name)
            for suffix, amount, window, name in shapes(items)
        ]

    def acquire(self, charges: Sequence[Charge]) -> list[RateLimitResult]:
        """Charge all of ``charges`` or none (sync); one result per charge."""
        memory = self._memory
        if memory is not None:
            return self._results(charges, *memory.acquire(charges), False)
        store = self._sync()
        results: list[RateLimitResult] = self.degrader.call(
            self._primary, self._degraded, store, charges
        )
        return results

    async def aacquire(self, charges: Sequence[Charge]) -> list[RateLimitResult]:
        """Charge all of ``charges`` or none; the event loop never waits on blocking I/O."""
        memory = self._memory
        if memory is not None:
            return self._results(charges, *memory.acquire(charges), False)
        store = self._async()
        if store is None:  # a sync non-memory limits storage: keep its I/O off the loop
            results: list[RateLimitResult] = await _to_thread(self.acquire, charges)
            return results
        results = await self.degrader.acall(self._aprimary, self._adegraded, store, charges)
        return results

    def _primary(self, store: Any, charges: Sequence[Charge]) -> list[RateLimitResult]:
        allowed, tallies = store.acquire(charges)
        self._fell_back = None
        return self._results(charges, allowed, tallies, False)

    async def _aprimary(self, store: Any, charges: Sequence[Charge]) -> list[RateLimitResult]:
        allowed, tallies = await store.acquire(charges)
        self._fell_back = None
        return self._results(charges, allowed, tallies, False)

    async def _adegraded(self, store: Any, charges: Sequence[Charge]) -> list[RateLimitResult]:
        return self._degraded(store, charges)

    def _degraded(self, store: Any, charges: Sequence[Charge]) -> list[RateLimitResult]:
        """The fallback: a share of each limit in memory, or a 503 for each when closed."""
        if not self.fail_open or any(c.fail_closed for c in charges):
            self._fell_back = "503"
            return self._results(charges, False, None, True)
        self._fell_back = "memory"
        share = self.processes
        if share > 1:
            charges = [c._replace(amount=max(1, c.amount // share)) for c in charges]
        return self._results(charges, *self._fallback.acquire(charges), True)

    def _results(
        self,
        charges: Sequence[Charge],
        allowed: bool,
        tallies: list[Tally] | None,
        fallback: bool,
        *,
        count: bool = True,
    ) -> list[RateLimitResult]:
        counts = self._counts
        if tallies is None:
            counts["unavailable"] += 1
            wait = max(1.0, self.breaker.retry_after())
            return [
                RateLimitResult(False, c.amount, 0, wait, c.window, c.name, True, True, wait)
                for c in charges
            ]
        if count:  # one counter per call: "checks" is their sum (see stats())
            counts["allowed" if allowed else "denied"] += 1
        strategy = self.strategy
        return [
            result_of(strategy, c, t, allowed, fallback)
            for c, t in zip(charges, tallies, strict=True)
        ]

    def _items(self, limit: Limit) -> list[RateLimitItem]:
        if limit is None:
            return self.default
        if isinstance(limit, list) and limit and not isinstance(limit[0], str):
            return limit  # already parsed
        return parse_limits(limit)  # type: ignore[arg-type]

    # -- the one-key API ------------------------------------------------------------------
    def hit(self, key: str, limit: Limit = None, cost: int = 1) -> RateLimitResult:
        """Consume ``cost`` from ``key``'s quota(s), all or none, and return the decision
        (never raises for a storage outage: see ``fail_open``)."""
        if cost < 1:
            raise ValueError(f"RateLimiter.hit(cost={cost}): cost must be 1 or more")
        return most_restrictive(self.acquire(self.charges(key, self._items(limit), cost)))

    def inspect(self, charges: Sequence[Charge]) -> list[RateLimitResult]:
        """What :meth:`acquire` would answer for ``charges``, charging nothing."""
        store = self._memory if self._memory is not None else self._sync()
        try:
            _allowed, tallies = store.peek(charges)
        except Exception:  # a storage outage: what the fallback knows
            _allowed, tallies = self._fallback.peek(charges)
        return self._results(charges, False, tallies, False, count=False)

    async def ainspect(self, charges: Sequence[Charge]) -> list[RateLimitResult]:
        """Async :meth:`inspect`."""
        store = self._async()
        if store is None:
            results: list[RateLimitResult] = await _to_thread(self.inspect, charges)
            return results
        try:
            _allowed, tallies = await store.peek(charges)
        except Exception:  # a storage outage: what the fallback knows
            _allowed, tallies = self._fallback.peek(charges)
        return self._results(charges, False, tallies, False, count=False)

    def peek(self, key: str, limit: Limit = None) -> RateLimitResult:
        """``key``'s quota without consuming it (``allowed``: would one more request pass)."""
        return most_restrictive(self.inspect(self.charges(key, self._items(limit), 1)))

    async def ahit(self, key: str, limit: Limit = None, cost: int = 1) -> RateLimitResult:
        """Async :meth:`hit`."""
        if cost < 1:
            raise ValueError(f"RateLimiter.ahit(cost={cost}): cost must be 1 or more")
        items = self.default if limit is None else self._items(limit)
        return most_restrictive(await self.aacquire(self.charges(key, items, cost)))

    async def apeek(self, key: str, limit: Limit = None) -> RateLimitResult:
        """Async :meth:`peek`."""
        return most_restrictive(await self.ainspect(self.charges(key, self._items(limit), 1)))

    def reset(self, key: str, limit: Limit = None) -> None:
        """Forget ``key``'s counts for ``limit`` (default: the default limits), sync storages."""
        store = self._memory if self._memory is not None else self._sync()
        for charge in self.charges(key, self._items(limit)):
            self._fallback.clear(charge.key)
            store.clear(charge.key)

    # -- observability --------------------------------------------------------------------
    @property
    def fallback_active(self) -> bool:
        """True while the shared storage is considered down (memory or 503 answers)."""
        return self._memory is None and (self.degrader.active or self._fell_back is not None)

    def stats(self) -> dict[str, Any]:
        """Counters since start, the storage, and the memory store's size."""
        degrader = self.degrader.stats()
        counts = self._counts
        return {
            "checks": counts["allowed"] + counts["denied"] + counts["unavailable"],
            **counts,
            "fallback": degrader["fallback_served"],
            "errors": degrader["primary_errors"],
            "storage": _STORAGE_NAMES[self._kind],
            "strategy": self.strategy,
            "fail_open": self.fail_open,
            "fallback_active": self.fallback_active,
            "circuit": self.breaker.state,
            "memory_keys": len(self._fallback),
            "memory_evicted": self._fallback.evicted,
        }

    def health_check(self) -> CheckResult:
        """Healthy on shared storage; degraded while counting in memory; unhealthy when failing
        closed with the storage down. Never touches Redis (the breaker already knows)."""
        if self._memory is not None:
            return CheckResult.healthy("in-process memory storage", storage="memory")
        if self._memory is None and self._fell_back == "503":
            return CheckResult.unhealthy(
                "shared storage is down; limited requests are refused (fail closed)",
                error=self.degrader.last_error,
            )
        if self._fell_back == "memory" and not self.degrader.active:
            return CheckResult.degraded(
                "shared storage failed; counting per process in memory",
                error=self.degrader.last_error,
                fallback_active=True,
            )
        return self.degrader.health_check()

    def close(self) -> None:
        """Stop the probe and close the sync Redis client (async ones close with their loop)."""
        self.degrader.close()
        store = self._sync_store
        if store is not None and self._kind == "url":
            from renderkit._redis import close_client

            try:
                close_client(store.client)
            except Exception:  # closing a broken client must not fail shutdown
                logger.debug("closing the rate-limit Redis client failed", exc_info=True)

    async def aclose(self) -> None:
        """Close the sync client and the asyncio client of the running loop."""
        self.close()
        if self._async_loops is not None:
            try:
                await self._async_loops.aclose()
            except Exception:  # closing a broken client must not fail shutdown
                logger.debug("closing the async rate-limit Redis client failed", exc_info=True)

    def __repr__(self) -> str:
        default = ";".join(str(i) for i in self.default)
        storage = _STORAGE_NAMES[self._kind]
        return f"RateLimiter(storage={storage}, default={default!r}, strategy={self.strategy!r})"


_STORAGE_NAMES = {"memory": "memory", "url": "redis", "redis": "redis", "sync": "custom"}
_STORAGE_NAMES["aio"] = "custom"
_STORAGE_NAMES["client"] = "redis"


def _is_async(client: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(getattr(client, "execute_command", None))


_SHAPES: dict[tuple[int, int], tuple[str, int, int, str]] = {}


def shapes(items: Sequence[RateLimitItem]) -> list[tuple[str, int, int, str]]:
    """Per item: the key suffix, amount, window and header name (built once per quota)."""
    shapes = []
    for item in items:
        amount, window = item.amount, item.get_expiry()
        shape = _SHAPES.get((amount, window))
        if shape is None:
            shape = (f":{amount}/{window}", amount, window, f"{amount}-per-{window}s")
            if len(_SHAPES) < 4096:
                _SHAPES[(amount, window)] = shape
        shapes.append(shape)
    return shapes


def _client(url: str, timeout: float, *, asyncio: bool, **options: Any) -> Any:
    """A redis-py client for the storage URL (sync or asyncio)."""
    options["socket_connect_timeout"] = max(1.0, timeout) if asyncio else timeout
    # One server: a plain pool, as limits uses. A burst opens connections instead of
    # queueing on a pool lock (whose wait would count against the deadline).
    return redis_client(url, asyncio=asyncio, extra="ratelimit", feature="RateLimiter",
                        blocking_pool=False, **options)  # fmt: skip


def _strategy_of(strategy: Strategy, storage: Any, *, sync: bool) -> Any:
    """``limits``' own strategy object over ``storage``."""
    module = require(
        "limits.strategies" if sync else "limits.aio.strategies",
        extra="ratelimit",
        feature="renderkit.ratelimit",
    )
    names = {
        "fixed-window": "FixedWindowRateLimiter",
        "moving-window": "MovingWindowRateLimiter",
        "sliding-window-counter": "SlidingWindowCounterRateLimiter",
    }
    return getattr(module, names[strategy])(storage)


def _validated(
    storage: Any, default: str | Sequence[str], strategy: str, timeout: float
) -> tuple[Strategy, list[RateLimitItem], str, Any]:
    """Check the constructor's options; every problem in one :class:`ConfigError`."""
    limits = _require_limits()
    problems: list[ConfigProblem] = []
    chosen: Strategy = "sliding-window-counter"
    try:
        chosen = _strategy(strategy)
    except ValueError:
        problems.append(ConfigProblem("strategy", f"unknown strategy {strategy!r}; use "
                                      "'sliding-window-counter', 'fixed-window' or "
                                      "'moving-window'", "code"))  # fmt: skip
    items: list[RateLimitItem] = []
    try:
        items = parse_limits(default, option="default")
    except ConfigError as exc:
        problems.extend(exc.errors)
    if not (0 < timeout <= 60):
        problems.append(
            ConfigProblem("timeout", f"{timeout!r} must be between 0 and 60 seconds", "code")
        )
    kind, value = _classify(storage, limits)
    if kind == "bad":
        problems.append(ConfigProblem("storage", value, "code"))
    if problems:
        raise ConfigError(problems)
    return chosen, items, kind, value


def _warn_memory(processes: int) -> None:
    logger.warning(
        "rate limiter uses memory:// under %d processes: each counts alone, so clients get up "
        "to %d times the limit; set RATELIMIT_STORAGE_URL or REDIS_URL to a Redis to share "
        "counts",
        processes,
        processes,
    )


def _client_of(store: Any) -> Any:
    return store.client


async def _to_thread(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args)
