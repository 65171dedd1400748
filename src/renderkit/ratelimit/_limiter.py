"""The rate limiter: ``limits`` storages and strategies behind one fail-open facade.

Counting is ``limits``' job. This module chooses storages, bounds Redis with short socket
timeouts and a circuit breaker, falls back to an in-process memory storage while Redis is
down, and turns ``limits``' answers into :class:`RateLimitResult` values.

For Redis the decision and the window statistics travel in ONE pipelined round trip: the
``limits`` Lua script that consumes the hit, then the ``limits`` script that reads the window,
both by ``EVALSHA``; ``limits``' own strategy code computes remaining/reset from what the
second script returned. Storages without that shape use ``hit()`` + ``get_window_stats()``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from renderkit._optional import require
from renderkit._redis import PerLoop, reconnect_once
from renderkit.errors import ConfigError, ConfigProblem
from renderkit.health import CheckResult
from renderkit.resilience import CircuitBreaker

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.aio.storage import Storage as AsyncStorage
    from limits.aio.strategies import RateLimiter as AsyncStrategy
    from limits.storage import Storage as SyncStorage
    from limits.strategies import RateLimiter as SyncStrategy

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_TIMEOUT",
    "RateLimitResult",
    "RateLimiter",
    "Strategy",
    "parse_limits",
]

logger = logging.getLogger("renderkit.ratelimit")

Strategy = Literal["fixed-window", "moving-window", "sliding-window-counter"]
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
"""Seconds a Redis call may take (connect and read) before it counts as a failure."""

Limit: TypeAlias = "str | Sequence[str] | list[RateLimitItem] | None"
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix", "unix", "valkey", "valkeys")


def _client_of(strategy: Any) -> Any:
    """The redis.asyncio client under a limits.aio strategy's Redis storage."""
    return strategy.storage.bridge.get_connection()


def _require_limits() -> Any:
    return require("limits", extra="ratelimit", feature="renderkit.ratelimit")


def parse_limits(value: str | Sequence[str], *, option: str = "limit") -> list[RateLimitItem]:
    """Parse ``"100/hour"``, ``"10/minute;1000/day"`` or a list of those into ``limits`` items.

    Raises :class:`ConfigError` naming ``option`` for an empty or malformed value, so bad
    configuration fails at start-up rather than at the first request.
    """
    limits = _require_limits()
    texts = [value] if isinstance(value, str) else list(value)
    items: list[RateLimitItem] = []
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(
                ConfigProblem(
                    option,
                    "a rate limit is empty; use a value such as '100/hour' or '10/minute;1000/day'",
                    "code",
                    expected="a limit such as 100/hour",
                    found=repr(text)[:80],
                )
            )
        try:
            items.extend(limits.parse_many(text))
        except ValueError:
            raise ConfigError(
                ConfigProblem(
                    option,
                    f"{text[:80]!r} is not a rate limit; write '<count>/<period>' such as "
                    "'100/hour', '5 per minute' or several joined by ';'",
                    "code",
                    expected="a limit such as 100/hour",
                    found=text[:80],
                )
            ) from None
    if not items:
        raise ConfigError(
            ConfigProblem(
                option,
                "no rate limit given; use a value such as '100/hour' or '10/minute;1000/day'",
                "code",
                expected="at least one limit such as 100/hour",
                found="an empty list",
            )
        )
    for item in items:
        if item.amount < 1:
            raise ConfigError(
                ConfigProblem(option, f"{item} allows nothing; the count must be 1 or more", "code")
            )
    return items


def _policy_name(item: RateLimitItem) -> str:
    return f"{item.amount}-per-{item.get_expiry()}s"


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """The answer to one check: allowed or not, and the quota that decided it.

    ``limit`` is the quota (requests per window), ``remaining`` what is left after this
    request, ``reset_after`` the seconds until the quota is fully or partly back, ``window``
    the window length in seconds, ``policy`` a stable name for the ``RateLimit`` headers.
    ``fallback`` is True when the in-process memory limiter answered because the shared
    storage was down; ``unavailable`` is True when the storage was down and the limiter fails
    closed (the request should get a 503).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    window: int = 0
    policy: str = "default"
    fallback: bool = False
    unavailable: bool = False

    @property
    def retry_after(self) -> int:
        """Whole seconds a refused client should wait (``Retry-After``), at least 1."""
        return max(1, math.ceil(self.reset_after))


def _most_restrictive(results: list[RateLimitResult]) -> RateLimitResult:
    denied = [r for r in results if not r.allowed]
    if denied:
        return max(denied, key=lambda r: r.reset_after)
    return min(results, key=lambda r: (r.remaining / r.limit, -r.reset_after))


def _result(item: RateLimitItem, allowed: bool, reset_at: float, remaining: int) -> RateLimitResult:
    reset_after = max(0.0, reset_at - time.time())
    if reset_after <= 0 and (not allowed or remaining < item.amount):
        # A window that is exactly on its boundary still holds this request's count.
        reset_after = float(item.get_expiry())
    return RateLimitResult(
        allowed=allowed,
        limit=item.amount,
        remaining=max(0, remaining),
        reset_after=round(reset_after, 3),
        window=item.get_expiry(),
        policy=_policy_name(item),
    )


_SLIDING: Any = None


class _Prefetched:
    """A read-only stand-in storage answering ``limits``' strategy code from pipelined replies."""

    def __init__(self, sliding: tuple[int, float, int, float] = (0, 0.0, 0, 0.0)) -> None:
        self.sliding = sliding

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return self.sliding

    def acquire_sliding_window_entry(self, *args: Any, **kwargs: Any) -> bool:
        raise _read_only()

    def get_moving_window(self, *args: Any, **kwargs: Any) -> tuple[float, int]:
        raise _read_only()

    def acquire_entry(self, *args: Any, **kwargs: Any) -> bool:
        raise _read_only()


def _sliding_stats(item: RateLimitItem, window: tuple[int, float, int, float]) -> Any:
    """``limits``' own sliding-window-counter statistics (``WindowStats``) for ``window``,
    as ``get_sliding_window`` returns it: no second storage read."""
    global _SLIDING
    if _SLIDING is None:
        _SLIDING = _require_limits().strategies.SlidingWindowCounterRateLimiter
    # The strategy's constructor only checks the storage type, which a read-only stand-in
    # cannot satisfy; its statistics method is all that runs.
    reader = object.__new__(_SLIDING)
    reader.storage = _Prefetched(window)
    return reader.get_window_stats(item, "_")


# What each sync strategy's hit() does, by class name (the strategies are built here).
_HIT_SHAPES = {"FixedWindowRateLimiter": "fixed", "SlidingWindowCounterRateLimiter": "sliding"}


def _read_only() -> RuntimeError:
    return RuntimeError(
        "renderkit bug: the limits strategy tried to write through the read-only stand-in "
        "storage of a pipelined check; please report it with the strategy name"
    )


class _Plan:
    """The Redis commands of one pipelined check, and how to read their replies."""

    def __init__(
        self,
        strategy: Strategy,
        bridge: Any,
        storage: Any,
        items: list[RateLimitItem],
        key: str,
        cost: int,
        scripts: dict[str, str],
    ) -> None:
        self.strategy = strategy
        self.items = items
        self.commands: list[tuple[Any, ...]] = []
        self.now = time.time()
        for item in items:
            limit_key = item.key_for(key)
            expiry = item.get_expiry()
            if strategy == "fixed-window":
                k = bridge.prefixed_key(limit_key)
                self.commands.append(("EVALSHA", scripts["incr"], 1, k, expiry, cost))
                self.commands.append(("PTTL", k))
            else:
                prev = bridge.prefixed_key(storage._previous_window_key(limit_key))
                cur = bridge.prefixed_key(storage._current_window_key(limit_key))
                self.commands.append(
                    ("EVALSHA", scripts["acquire_sliding"], 2, prev, cur, item.amount, expiry, cost)
                )
                self.commands.append(("EVALSHA", scripts["sliding"], 2, prev, cur, expiry))

    def read(self, replies: list[Any]) -> RateLimitResult:
        results: list[RateLimitResult] = []
        for i, item in enumerate(self.items):
            first, second = replies[2 * i], replies[2 * i + 1]
            if self.strategy == "fixed-window":
                count = int(first)
                ttl = max(0, int(second)) / 1000 if second is not None else 0.0
                allowed = count <= item.amount
                results.append(_result(item, allowed, time.time() + ttl, item.amount - count))
            else:
                window = second or [0, 0, 0, 0]
                sliding = (
                    int(window[0] or 0),
                    max(0, float(window[1] or 0)) / 1000,
                    int(window[2] or 0),
                    max(0, float(window[3] or 0)) / 1000,
                )
                stats = _sliding_stats(item, sliding)
                results.append(_result(item, bool(first), stats.reset_time, stats.remaining))
        return _most_restrictive(results)


def _scripts(bridge: Any) -> dict[str, str] | None:
    """The SHA1 of ``limits``' own Lua scripts on ``bridge``, or None when it has other shapes."""
    try:
        if getattr(bridge.get_connection(), "connection_pool", None) is None:
            return None  # a cluster client: no single connection to pipeline on
        return {
            "incr": bridge.lua_incr_expire.sha,
            "acquire_sliding": bridge.lua_acquire_sliding_window.sha,
            "sliding": bridge.lua_sliding_window.sha,
        }
    except AttributeError:
        return None


def _script_objects(owner: Any) -> tuple[Any, ...]:
    return (owner.lua_incr_expire, owner.lua_acquire_sliding_window, owner.lua_sliding_window)


def _is_noscript(exc: BaseException) -> bool:
    return type(exc).__name__ == "NoScriptError" or "NOSCRIPT" in str(exc)


class RateLimiter:
    """Count requests per key with ``limits``; answer from memory when Redis is down.

    ``storage``: a URL (``memory://``, ``redis://``, ``rediss://``, ``redis+unix://``) or a
    ``limits`` storage object (sync, or ``limits.aio`` for async use only). ``default``: the
    limit used when :meth:`hit` gets none (``"100/hour"``, ``"10/minute;1000/day"``).
    ``strategy``: ``"sliding-window-counter"`` (default), ``"fixed-window"`` or
    ``"moving-window"``. ``fail_open``: while the storage is down, answer from an in-process
    memory limiter (True, the default) or refuse with ``unavailable`` results (False: the
    middleware answers 503). ``timeout``: seconds a Redis call may take. ``key_prefix``:
    namespace of the Redis keys. ``recovery_timeout``: seconds between probes of a failed
    storage.

    The same object serves sync code (:meth:`hit`, :meth:`peek`) and async code
    (:meth:`ahit`, :meth:`apeek`, used by the ASGI middleware); for a Redis URL each side
    gets its own client of the same server, so they share counts.
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
        recovery_timeout: float = 5.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        limits = _require_limits()
        problems: list[ConfigProblem] = []
        chosen = _STRATEGIES.get(str(strategy).strip().lower())
        if chosen is None:
            problems.append(
                ConfigProblem(
                    "strategy",
                    f"unknown strategy {strategy!r}; use 'sliding-window-counter', "
                    "'fixed-window' or 'moving-window'",
                    "code",
                )
            )
        try:
            self.default: list[RateLimitItem] = parse_limits(default, option="default")
        except ConfigError as exc:
            problems.extend(exc.errors)
            self.default = []
        if not (0 < timeout <= 60):
            problems.append(
                ConfigProblem("timeout", f"{timeout!r} must be between 0 and 60 seconds", "code")
            )
        self.storage_url: str | None = None
        self._sync_storage: SyncStorage | None = None
        self._async_storage: AsyncStorage | None = None
        self._shared_memory = False
        if isinstance(storage, str):
            scheme = storage.split("://", 1)[0].lower() if "://" in storage else ""
            if scheme == "memory":
                self._sync_storage = limits.storage.MemoryStorage()
                self._shared_memory = True
            elif scheme in _REDIS_SCHEMES:
                self.storage_url = storage
            else:
                shown = f"'{scheme}://'" if scheme else "no scheme"
                problems.append(
                    ConfigProblem(
                        "storage",
                        f"the storage URL has {shown}; use memory://, redis://, rediss:// or "
                        "redis+unix://, or pass a limits storage object",
                        "code",
                    )
                )
        elif isinstance(storage, limits.storage.Storage):
            self._sync_storage = storage
            self._shared_memory = isinstance(storage, limits.storage.MemoryStorage)
        elif isinstance(storage, limits.aio.storage.Storage):
            self._async_storage = storage
        else:
            problems.append(
                ConfigProblem(
                    "storage",
                    f"got a {type(storage).__name__}; pass a URL string or a limits storage",
                    "code",
                )
            )
        if problems:
            raise ConfigError(problems)
        assert chosen is not None
        self.strategy: Strategy = chosen
        self.fail_open = fail_open
        self.timeout = timeout
        self.key_prefix = key_prefix
        self._sync_strategy: SyncStrategy | None = None
        self._async_strategy: AsyncStrategy | None = None
        # For a Redis URL: a limits.aio storage (and its redis.asyncio client) per event loop.
        self._async_loops: PerLoop[AsyncStrategy] | None = None
        self._lock = threading.Lock()
        self._fallback_storage = limits.storage.MemoryStorage()
        self._fallback_strategy = self._strategy_class(sync=True)(self._fallback_storage)
        self._memory_only = self._shared_memory
        self.breaker = CircuitBreaker(
            "ratelimit-storage",
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
        )
        self._counts = {
            "checks": 0,
            "allowed": 0,
            "denied": 0,
            "fallback": 0,
            "errors": 0,
            "unavailable": 0,
        }
        self._last_error = ""
        self._down = False
        if self._memory_only:
            self._warn_memory_under_workers(os.environ if environ is None else environ)
        if self.storage_url is not None:
            self._sync_options()  # imports redis now: a missing extra fails at start-up

    # --- construction helpers ------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RateLimiter:
        """Build from ``RATELIMIT_STORAGE_URL`` (else ``REDIS_URL``, else ``memory://``),
        ``RATELIMIT_DEFAULT``, ``RATELIMIT_STRATEGY``, ``RATELIMIT_FAIL_OPEN``,
        ``RATELIMIT_TIMEOUT`` and ``RATELIMIT_KEY_PREFIX``; every bad variable is reported at once.
        """
        from renderkit.config import parse_bool, parse_duration, parse_redis_url

        env = os.environ if environ is None else environ
        problems: list[ConfigProblem] = []
        storage = (env.get("RATELIMIT_STORAGE_URL") or env.get("REDIS_URL") or "memory://").strip()
        default = env.get("RATELIMIT_DEFAULT", DEFAULT_LIMIT)
        try:
            parse_limits(default, option="RATELIMIT_DEFAULT")
        except ConfigError as exc:
            problems.extend(replace(problem, source="environment") for problem in exc.errors)
        strategy = env.get("RATELIMIT_STRATEGY", "sliding-window-counter")
        if strategy.strip().lower() not in _STRATEGIES:
            problems.append(
                ConfigProblem(
                    "RATELIMIT_STRATEGY",
                    f"unknown strategy {strategy[:40]!r}; use sliding-window-counter, "
                    "fixed-window or moving-window",
                )
            )
        fail_open = True
        if env.get("RATELIMIT_FAIL_OPEN", "").strip():
            try:
                fail_open = parse_bool(env["RATELIMIT_FAIL_OPEN"])
            except ValueError as exc:
                problems.append(ConfigProblem("RATELIMIT_FAIL_OPEN", str(exc)))
        timeout = DEFAULT_TIMEOUT
        if env.get("RATELIMIT_TIMEOUT", "").strip():
            try:
                timeout = parse_duration(env["RATELIMIT_TIMEOUT"]).total_seconds()
                if not 0 < timeout <= 60:
                    raise ValueError("expected a duration between 1ms and 60s")
            except ValueError as exc:
                problems.append(ConfigProblem("RATELIMIT_TIMEOUT", str(exc)))
        scheme = storage.split("://", 1)[0].lower() if "://" in storage else ""
        name = "RATELIMIT_STORAGE_URL" if env.get("RATELIMIT_STORAGE_URL") else "REDIS_URL"
        if scheme != "memory" and scheme not in _REDIS_SCHEMES:
            problems.append(
                ConfigProblem(name, "expected memory:// or a redis://, rediss:// URL", found="****")
            )
        elif scheme in ("redis", "rediss"):
            try:
                parse_redis_url(storage)  # host, port range, db number; never echoes the URL
            except ValueError as exc:
                problems.append(ConfigProblem(name, str(exc), found="****"))
        if problems:
            raise ConfigError(problems)
        return cls(
            storage,
            default=default,
            strategy=strategy,
            fail_open=fail_open,
            timeout=timeout,
            key_prefix=env.get("RATELIMIT_KEY_PREFIX", "renderkit-rl") or "renderkit-rl",
            environ=env,
        )

    @staticmethod
    def _warn_memory_under_workers(env: Mapping[str, str]) -> None:
        workers = 1
        for name in ("WEB_CONCURRENCY", "GUNICORN_WORKERS", "UVICORN_WORKERS"):
            try:
                workers = max(workers, int(env.get(name, "1") or "1"))
            except ValueError:
                continue
        args = env.get("GUNICORN_CMD_ARGS", "").split()
        for i, arg in enumerate(args):
            value = None
            if arg in ("-w", "--workers") and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith("--workers="):
                value = arg.split("=", 1)[1]
            if value is not None and value.isdigit():
                workers = max(workers, int(value))
        if workers > 1:
            logger.warning(
                "rate limiter uses memory:// under %d worker processes: each process counts "
                "alone, so clients get up to %d times the limit; use a redis:// storage "
                "(RATELIMIT_STORAGE_URL or REDIS_URL) to share counts",
                workers,
                workers,
            )

    def _strategy_class(self, *, sync: bool) -> Any:
        module = require(
            "limits.strategies" if sync else "limits.aio.strategies",
            extra="ratelimit",
            feature="renderkit.ratelimit",
        )
        return {
            "fixed-window": module.FixedWindowRateLimiter,
            "moving-window": module.MovingWindowRateLimiter,
            "sliding-window-counter": module.SlidingWindowCounterRateLimiter,
        }[self.strategy]

    def _sync_options(self) -> dict[str, Any]:
        return {
            "key_prefix": self.key_prefix,
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            # redis-py retries 3 times on timeouts by default: a hung server would cost 4.
            "retry": reconnect_once(asyncio=False, extra="ratelimit", feature="RateLimiter"),
        }

    def _async_options(self) -> dict[str, Any]:
        return {
            "key_prefix": self.key_prefix,
            "implementation": "redispy",
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "retry": reconnect_once(asyncio=True, extra="ratelimit", feature="RateLimiter"),
        }

    def _sync(self) -> SyncStrategy:
        if self._sync_strategy is None:
            with self._lock:
                if self._sync_strategy is None:
                    if self._sync_storage is None:
                        if self.storage_url is None:
                            raise TypeError(
                                "RateLimiter.hit() is sync but the storage is a limits.aio "
                                "storage; use 'await limiter.ahit(...)' or a sync storage"
                            )
                        limits = _require_limits()
                        self._sync_storage = limits.storage.storage_from_string(
                            self.storage_url, **self._sync_options()
                        )
                    self._sync_strategy = self._strategy_class(sync=True)(self._sync_storage)
        return self._sync_strategy

    def _async(self) -> AsyncStrategy | None:
        """The async strategy, or None when the sync storage serves async callers (memory)."""
        if self.storage_url is not None:
            # limits.aio's Redis storage holds one redis.asyncio client, bound to the loop that
            # first used it: another loop (TestClient without `with`, a second asyncio.run)
            # gets a storage of its own, and closed loops' clients are closed.
            loops = self._async_loops
            if loops is None:
                loops = self._async_loops = PerLoop(self._new_async_strategy, client=_client_of)
            return loops.get()
        if self._async_strategy is None:
            if self._async_storage is None:
                return None
            self._async_strategy = self._strategy_class(sync=False)(self._async_storage)
        return self._async_strategy

    def _new_async_strategy(self) -> AsyncStrategy:
        limits = _require_limits()
        url = self.storage_url
        assert url is not None
        if url.startswith("unix://"):
            url = "redis+" + url
        storage = limits.storage.storage_from_string("async+" + url, **self._async_options())
        strategy: AsyncStrategy = self._strategy_class(sync=False)(storage)
        return strategy

    # --- failure handling ----------------------------------------------------------------

    def _mark_down(self, exc: BaseException) -> None:
        self._counts["errors"] += 1
        self._last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        if not self._down:
            self._down = True
            logger.warning(
                "rate-limit storage failed (%s); %s until it answers again",
                self._last_error,
                "counting in process memory (fail open)"
                if self.fail_open
                else "refusing limited requests with 503 (fail closed)",
            )

    def _mark_up(self) -> None:
        self.breaker.record_success()
        if self._down:
            self._down = False
            logger.warning("rate-limit storage answers again; shared counting resumed")

    def _failed(self, exc: BaseException) -> None:
        self._mark_down(exc)
        self.breaker.record_failure(exc)

    def _degraded(
        self, items: list[RateLimitItem], key: str, cost: int, consume: bool
    ) -> RateLimitResult:
        if not self.fail_open:
            self._counts["unavailable"] += 1
            item = items[0]
            return RateLimitResult(
                allowed=False,
                limit=item.amount,
                remaining=0,
                reset_after=max(1.0, self.breaker.retry_after()),
                window=item.get_expiry(),
                policy=_policy_name(item),
                unavailable=True,
            )
        self._counts["fallback"] += 1
        result = self._check_sync(self._fallback_strategy, items, key, cost, consume)
        return RateLimitResult(
            result.allowed,
            result.limit,
            result.remaining,
            result.reset_after,
            result.window,
            result.policy,
            fallback=True,
        )

    def _items(self, limit: Limit) -> list[RateLimitItem]:
        if limit is None:
            return self.default
        if isinstance(limit, list) and limit and not isinstance(limit[0], str):
            return limit  # already parsed (the policy parses its rules once, at start-up)
        return parse_limits(limit)  # type: ignore[arg-type]

    def _count(self, result: RateLimitResult) -> RateLimitResult:
        counts = self._counts
        counts["checks"] += 1
        counts["allowed" if result.allowed else "denied"] += 1
        return result

    # --- the generic path (any limits storage) -------------------------------------------

    @staticmethod
    def _check_sync(
        strategy: SyncStrategy, items: list[RateLimitItem], key: str, cost: int, consume: bool
    ) -> RateLimitResult:
        shape = _HIT_SHAPES.get(type(strategy).__name__) if consume else None
        storage: Any = strategy.storage
        results = []
        for item in items:
            if shape == "fixed":
                # What FixedWindowRateLimiter.hit() does, keeping the count it throws away:
                # the remaining quota then costs no second read.
                storage_key = item.key_for(key)
                count = storage.incr(storage_key, item.get_expiry(), amount=cost)
                reset_at = storage.get_expiry(storage_key)
                result = _result(item, count <= item.amount, reset_at, item.amount - count)
            elif shape == "sliding":
                # What SlidingWindowCounterRateLimiter.hit() + get_window_stats() do, with the
                # storage key built once and the statistics read once.
                storage_key = item.key_for(key)
                expiry = item.get_expiry()
                allowed = storage.acquire_sliding_window_entry(
                    storage_key, item.amount, expiry, cost
                )
                stats = _sliding_stats(item, storage.get_sliding_window(storage_key, expiry))
                result = _result(item, allowed, stats.reset_time, stats.remaining)
            else:
                allowed = (
                    strategy.hit(item, key, cost=cost)
                    if consume
                    else strategy.test(item, key, cost=cost)
                )
                stats = strategy.get_window_stats(item, key)
                result = _result(item, allowed, stats.reset_time, stats.remaining)
            if len(items) == 1:
                return result
            results.append(result)
        return _most_restrictive(results)

    @staticmethod
    async def _check_async(
        strategy: AsyncStrategy, items: list[RateLimitItem], key: str, cost: int, consume: bool
    ) -> RateLimitResult:
        results = []
        for item in items:
            if consume:
                allowed = await strategy.hit(item, key, cost=cost)
            else:
                allowed = await strategy.test(item, key, cost=cost)
            stats = await strategy.get_window_stats(item, key)
            results.append(_result(item, allowed, stats.reset_time, stats.remaining))
        return _most_restrictive(results)

    def _plan(
        self, bridge: Any, storage: Any, items: list[RateLimitItem], key: str, cost: int
    ) -> _Plan | None:
        if self.strategy == "moving-window" or self._memory_only:
            return None
        scripts = _scripts(bridge)
        if scripts is None:
            return None
        return _Plan(self.strategy, bridge, storage, items, key, cost, scripts)

    # --- public API ----------------------------------------------------------------------

    def hit(self, key: str, limit: Limit = None, cost: int = 1) -> RateLimitResult:
        """Consume ``cost`` from ``key``'s quota(s) and return the decision (never raises for
        a storage outage: see ``fail_open``). ``limit`` overrides the default."""
        items = self._items(limit)
        if cost < 1:
            raise ValueError(f"RateLimiter.hit(cost={cost}): cost must be 1 or more")
        return self._count(self._run_sync(items, key, cost, consume=True))

    def peek(self, key: str, limit: Limit = None) -> RateLimitResult:
        """Return ``key``'s quota without consuming it (``allowed``: would one more pass)."""
        return self._run_sync(self._items(limit), key, 1, consume=False)

    async def ahit(self, key: str, limit: Limit = None, cost: int = 1) -> RateLimitResult:
        """Async :meth:`hit`: the event loop never waits on a blocking Redis call."""
        items = self.default if limit is None else self._items(limit)
        if cost < 1:
            raise ValueError(f"RateLimiter.ahit(cost={cost}): cost must be 1 or more")
        if self._memory_only:
            # In-process memory: no I/O to await, no breaker to consult.
            strategy = self._sync_strategy or self._sync()
            return self._count(self._check_sync(strategy, items, key, cost, consume=True))
        return self._count(await self._run_async(items, key, cost, consume=True))

    async def apeek(self, key: str, limit: Limit = None) -> RateLimitResult:
        """Async :meth:`peek`."""
        return await self._run_async(self._items(limit), key, 1, consume=False)

    def _run_sync(
        self, items: list[RateLimitItem], key: str, cost: int, consume: bool
    ) -> RateLimitResult:
        if self._memory_only:
            return self._check_sync(self._sync(), items, key, cost, consume)
        if not self.breaker.allow():
            return self._degraded(items, key, cost, consume)
        try:
            strategy = self._sync()
            plan = (
                self._plan(self._sync_storage, self._sync_storage, items, key, cost)
                if consume
                else None
            )
            if plan is None:
                result = self._check_sync(strategy, items, key, cost, consume)
            else:
                result = plan.read(self._pipeline_sync(plan))
        except Exception as exc:
            self._failed(exc)
            return self._degraded(items, key, cost, consume)
        self._mark_up()
        return result

    def _pipeline_sync(self, plan: _Plan) -> list[Any]:
        storage: Any = self._sync_storage
        client = storage.get_connection()
        pool = client.connection_pool
        for attempt in range(2):
            connection = pool.get_connection()
            try:
                # A hand-driven pipeline: one write, one read of N replies, no Pipeline object.
                connection.send_packed_command(connection.pack_commands(plan.commands))
                replies = [connection.read_response() for _ in plan.commands]
            except BaseException as exc:
                connection.disconnect()  # unread replies would poison the next user
                if attempt or not _is_noscript(exc):
                    raise
                # First use, SCRIPT FLUSH or a failover: load limits' scripts, retry once.
                for script in _script_objects(storage):
                    client.script_load(script.script)
                continue
            finally:
                pool.release(connection)
            return replies
        raise AssertionError("unreachable")

    async def _run_async(
        self, items: list[RateLimitItem], key: str, cost: int, consume: bool
    ) -> RateLimitResult:
        if self._memory_only:
            return self._check_sync(self._sync(), items, key, cost, consume)
        if not self.breaker.allow():
            return self._degraded(items, key, cost, consume)
        try:
            strategy = self._async()
            if strategy is None:
                # A sync non-memory storage: keep its blocking I/O off the event loop.
                import asyncio

                return await asyncio.to_thread(self._run_sync_unguarded, items, key, cost, consume)
            storage: Any = strategy.storage
            bridge = getattr(storage, "bridge", None)
            plan = (
                self._plan(bridge, storage, items, key, cost)
                if consume and bridge is not None
                else None
            )
            if plan is None:
                result = await self._check_async(strategy, items, key, cost, consume)
            else:
                result = plan.read(await self._pipeline_async(bridge, plan))
        except Exception as exc:
            self._failed(exc)
            return self._degraded(items, key, cost, consume)
        self._mark_up()
        return result

    def _run_sync_unguarded(
        self, items: list[RateLimitItem], key: str, cost: int, consume: bool
    ) -> RateLimitResult:
        return self._check_sync(self._sync(), items, key, cost, consume)

    async def _pipeline_async(self, bridge: Any, plan: _Plan) -> list[Any]:
        client = bridge.get_connection()
        pool = client.connection_pool
        for attempt in range(2):
            connection = await pool.get_connection()
            try:
                await connection.send_packed_command(connection.pack_commands(plan.commands))
                replies = [await connection.read_response() for _ in plan.commands]
            except BaseException as exc:
                await connection.disconnect()
                if attempt or not _is_noscript(exc):
                    raise
                for script in _script_objects(bridge):
                    await client.script_load(script.script)
                continue
            finally:
                await pool.release(connection)
            return replies
        raise AssertionError("unreachable")

    def reset(self, key: str, limit: Limit = None) -> None:
        """Forget ``key``'s counts for ``limit`` (default: the default limits), sync storages."""
        strategy = self._sync()
        for item in self._items(limit):
            strategy.clear(item, key)
            self._fallback_strategy.clear(item, key)

    # --- observability -------------------------------------------------------------------

    @property
    def fallback_active(self) -> bool:
        """True while the shared storage is considered down (memory or 503 answers)."""
        return not self._memory_only and (self._down or self.breaker.state != "closed")

    def stats(self) -> dict[str, Any]:
        """Counters since start: checks, allowed, denied, fallback, errors, unavailable."""
        return {
            **self._counts,
            "storage": "memory" if self._memory_only else "redis" if self.storage_url else "custom",
            "strategy": self.strategy,
            "fail_open": self.fail_open,
            "fallback_active": self.fallback_active,
            "circuit": self.breaker.state,
        }

    def health_check(self) -> CheckResult:
        """Healthy on shared storage; degraded while counting in memory; unhealthy when failing
        closed with the storage down. Never touches Redis (the breaker already knows)."""
        if self._memory_only:
            return CheckResult.healthy("in-process memory storage", storage="memory")
        if not self.fallback_active:
            return CheckResult.healthy("shared storage answers", strategy=self.strategy)
        if self.fail_open:
            return CheckResult.degraded(
                "shared storage is down; counting per process in memory",
                error=self._last_error,
            )
        return CheckResult.unhealthy(
            "shared storage is down; limited requests are refused (fail closed)",
            error=self._last_error,
        )

    def close(self) -> None:
        """Close the sync Redis client (the async one closes with its event loop)."""
        storage: Any = self._sync_storage
        if storage is not None and self.storage_url is not None:
            try:
                storage.get_connection().close()
            except Exception:  # closing a broken client must not fail shutdown
                logger.debug("closing the rate-limit Redis client failed", exc_info=True)

    async def aclose(self) -> None:
        """Close the Redis clients: the sync one, and the asyncio one of the running loop
        (those of other event loops close with their loop)."""
        self.close()
        if self._async_loops is not None:
            try:
                await self._async_loops.aclose()
            except Exception:  # closing a broken client must not fail shutdown
                logger.debug("closing the async rate-limit Redis client failed", exc_info=True)

    def __repr__(self) -> str:
        storage = "memory" if self._memory_only else "redis" if self.storage_url else "custom"
        default = ";".join(str(i) for i in self.default)
        return f"RateLimiter(storage={storage}, default={default!r}, strategy={self.strategy!r})"
