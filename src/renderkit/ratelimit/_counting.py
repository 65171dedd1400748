"""Counting, without I/O: what one request's limits charge, the window arithmetic, memory counts.

A request is checked against several limits at once (a route limit, a shared quota, a tier
default). :class:`Charge` is one of them. A store answers a list of charges with
``(allowed, tallies)``: allowed only if every limit has room, and then every one is charged;
refused by one, none is charged. Each :data:`Tally` is three integers, the same for memory and
Redis (whose Lua script, :data:`LUA`, returns them), read by :func:`result_of`:

- fixed window (it starts at its first hit): ``(count, 0, elapsed_ms)``;
- sliding window counter: ``(count, previous_count, elapsed_ms)`` (the previous window weighs
  in for the part of it that still overlaps the last ``window`` seconds);
- moving window: ``(count, 0, age_ms of the oldest counted entry)``.

:class:`MemoryCounts` keeps counts in process memory with bucketed expiry (a key is dropped
in the second after it expires, at O(1) cost per call, never by walking every key) and a cap
on the number of keys (the oldest are dropped first when a spray of clients fills it).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Literal, NamedTuple

__all__ = [
    "DEFAULT_MAX_KEYS",
    "LUA",
    "Charge",
    "MemoryCounts",
    "RateLimitResult",
    "Strategy",
    "Tally",
    "result_of",
]

Strategy = Literal["fixed-window", "moving-window", "sliding-window-counter"]
Tally = tuple[int, int, int]

DEFAULT_MAX_KEYS = 100_000
"""Counters one in-process memory store keeps before dropping the oldest (about 25 MB)."""

_CODES: dict[str, str] = {"fixed-window": "f", "sliding-window-counter": "s", "moving-window": "m"}


class Charge(NamedTuple):
    """One limit of one request: ``cost`` against ``amount`` per ``window`` seconds at ``key``.

    ``name`` names the quota in the ``RateLimit`` headers; ``fail_closed`` refuses the request
    (503) instead of counting in memory while the shared storage is down.
    """

    key: str
    amount: int
    window: int
    cost: int = 1
    name: str = "default"
    fail_closed: bool = False


class RateLimitResult(NamedTuple):
    """The answer to one check: allowed or not, and the quota that decided it.

    ``limit`` is the quota (requests per window), ``remaining`` what is left after this
    request, ``reset_after`` the seconds until the window resets, ``window`` the window length
    in seconds, ``policy`` the quota's name in the ``RateLimit`` headers. ``fallback`` is True
    when the in-process memory limiter answered because the shared storage was down;
    ``unavailable`` when the storage was down and the limit fails closed (a 503).
    ``wait`` is the seconds a refused client should wait before one more request fits.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    window: int = 0
    policy: str = "default"
    fallback: bool = False
    unavailable: bool = False
    wait: float = 0.0

    @property
    def retry_after(self) -> int:
        """Whole seconds a refused client should wait (``Retry-After``), at least 1."""
        return max(1, math.ceil(self.wait or self.reset_after))


def result_of(
    strategy: Strategy, charge: Charge, tally: Tally, allowed: bool, fallback: bool = False
) -> RateLimitResult:
    """Read a store's :data:`Tally` for ``charge`` (``allowed``: the request's verdict)."""
    count, previous, ms = tally
    amount, window = charge.amount, charge.window
    window_ms = window * 1000
    reset = (window_ms - ms) / 1000
    if strategy == "sliding-window-counter":
        used = -(-previous * (window_ms - ms) // window_ms) + count if previous else count
    else:
        used = count
    denied_here = not allowed and used + charge.cost > amount
    wait = _wait(strategy, charge, tally, used, reset) if denied_here else 0.0
    if reset <= 0:
        reset = float(window)
    return RateLimitResult(
        not denied_here,
        amount,
        amount - used if used < amount else 0,
        round(reset, 3),
        window,
        charge.name,
        fallback,
        False,
        wait,
    )


def _wait(strategy: Strategy, charge: Charge, tally: Tally, used: int, reset: float) -> float:
    """Seconds until one more request of ``charge.cost`` fits."""
    count, previous, ms = tally
    window_ms = charge.window * 1000
    room = charge.amount - charge.cost
    if strategy != "sliding-window-counter" or used <= room:
        wait = reset
    elif count <= room:
        # The previous window's weight fades: wait until enough of it has slid away.
        wait = (window_ms - (room - count) * window_ms / previous - ms) / 1000
    else:
        # This window alone is full: wait for it to become the fading previous one.
        wait = reset + max(0.0, window_ms - room * window_ms / count) / 1000
    return round(max(wait, 0.001), 3)


class _Slot:
    """One memory counter: the current window's number and count, and the previous count."""

    __slots__ = ("count", "expires", "index", "previous", "stamps")

    def __init__(self) -> None:
        self.index: float = 0
        self.count = 0
        self.previous = 0
        self.expires = 0.0
        self.stamps: deque[float] | None = None


class MemoryCounts:
    """In-process counts for :class:`Charge` lists, bounded in time and in size.

    ``max_keys``: counters kept before the oldest are dropped (a dropped client starts a fresh
    window: the bounded overshoot of a spray of more distinct clients than the cap). Expiry is
    bucketed by second: each call drops the keys of the buckets that ended since the last
    call, so a call costs the same with 1 or 100,000 clients. Thread-safe.
    """

    def __init__(self, strategy: Strategy, *, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"MemoryCounts(max_keys={max_keys}): must be 1 or more")
        self.strategy: Strategy = strategy
        self.max_keys = max_keys
        self._slots: dict[str, _Slot] = {}
        self._buckets: dict[int, list[str]] = {}
        self._heap: list[int] = []
        self._lock = threading.Lock()
        self._swept = 0
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._slots)

    def acquire(
        self, charges: Sequence[Charge], now: float | None = None
    ) -> tuple[bool, list[Tally]]:
        """Charge every limit if all have room; else charge none. Returns (allowed, tallies)."""
        now = time.time() if now is None else now
        with self._lock:
            self._sweep(now)
            slots = [self._slot(c, now) for c in charges]
            tallies = [self._tally(c, s, now) for c, s in zip(charges, slots, strict=True)]
            allowed = all(
                self._used(c, t) + c.cost <= c.amount for c, t in zip(charges, tallies, strict=True)
            )
            if allowed:
                tallies = [
                    self._charge(c, s, t, now)
                    for c, s, t in zip(charges, slots, tallies, strict=True)
                ]
            return allowed, tallies

    def peek(self, charges: Sequence[Charge], now: float | None = None) -> tuple[bool, list[Tally]]:
        """The counts :meth:`acquire` would see, charging nothing (``allowed`` is False: the
        caller reads each tally with :func:`result_of`)."""
        now = time.time() if now is None else now
        with self._lock:
            tallies = []
            for charge in charges:
                slot = self._slots.get(charge.key)
                tallies.append(self._tally(charge, slot, now) if slot else (0, 0, 0))
            return False, tallies

    def clear(self, key: str) -> None:
        """Forget one counter."""
        with self._lock:
            self._slots.pop(key, None)

    # -- internals ------------------------------------------------------------------------
    def _used(self, charge: Charge, tally: Tally) -> int:
        count, previous, ms = tally
        if self.strategy == "sliding-window-counter":
            window_ms = charge.window * 1000
            return -(-previous * (window_ms - ms) // window_ms) + count
        return count

    def _slot(self, charge: Charge, now: float) -> _Slot:
        slot = self._slots.get(charge.key)
        if slot is None:
            if len(self._slots) >= self.max_keys:
                # Insertion order is age order: drop the oldest counter, never all of them.
                del self._slots[next(iter(self._slots))]
                self.evicted += 1
            slot = self._slots[charge.key] = _Slot()
        return slot

    def _tally(self, charge: Charge, slot: _Slot, now: float) -> Tally:
        window = charge.window
        if self.strategy == "moving-window":
            stamps = slot.stamps
            if not stamps:
                return (0, 0, 0)
            horizon = now - window
            while stamps and stamps[0] <= horizon:
                stamps.popleft()
            if not stamps:
                return (0, 0, 0)
            return (len(stamps), 0, int((now - stamps[0]) * 1000))
        if self.strategy == "fixed-window":
            # A fixed window starts at its first hit (as in limits): a burst never straddles
            # a boundary that would hand it a second quota.
            if slot.count and now < slot.index + window:
                return (slot.count, 0, int((now - slot.index) * 1000))
            return (0, 0, 0)
        index = int(now // window)
        elapsed = int((now - index * window) * 1000)
        if slot.index == index:
            count, previous = slot.count, slot.previous
        elif slot.index == index - 1:
            count, previous = 0, slot.count
        else:
            count, previous = 0, 0
        return (count, previous, elapsed)

    def _charge(self, charge: Charge, slot: _Slot, tally: Tally, now: float) -> Tally:
        count, previous, ms = tally
        window = charge.window
        if self.strategy == "moving-window":
            if slot.stamps is None:
                slot.stamps = deque(maxlen=charge.amount)
            slot.stamps.extend([now] * charge.cost)
            expires = now + window
            tally = (len(slot.stamps), 0, int((now - slot.stamps[0]) * 1000))
        elif self.strategy == "fixed-window":
            if count == 0:
                slot.index = now  # the window starts now
            slot.count = count + charge.cost
            expires = slot.index + window
            tally = (slot.count, 0, ms)
        else:
            slot.index = int(now // window)
            slot.count = count + charge.cost
            slot.previous = previous
            expires = (slot.index + 2) * window
            tally = (slot.count, previous, ms)
        if expires > slot.expires:
            slot.expires = expires
            bucket = math.ceil(expires)
            keys = self._buckets.get(bucket)
            if keys is None:
                keys = self._buckets[bucket] = []
                heapq.heappush(self._heap, bucket)
            keys.append(charge.key)
        return tally

    def _sweep(self, now: float) -> None:
        second = int(now)
        if second == self._swept:
            return
        self._swept = second
        heap, buckets, slots = self._heap, self._buckets, self._slots
        while heap and heap[0] <= second:
            for key in buckets.pop(heapq.heappop(heap), ()):
                slot = slots.get(key)
                if slot is not None and slot.expires <= now:
                    del slots[key]
                    self.expired += 1


# One script for every strategy: read all the request's counters, decide, charge all or none.
# KEYS: one per charge. ARGV: strategy code, the time in ms, then amount, window (s), cost per
# charge. The caller's clock (as limits uses): no TIME call, and windows of seconds or more do
# not mind the few milliseconds NTP leaves between instances.
# Reply: "allowed,count1,previous1,ms1,count2,..." (see the module docstring): one bulk string
# parses faster in redis-py than an array of integers.
LUA = """
local kind = ARGV[1]
local now = tonumber(ARGV[2])
local n = #KEYS
local state = {}
local allowed = 1
for i = 1, n do
  local amount = tonumber(ARGV[3 * i])
  local window = tonumber(ARGV[3 * i + 1]) * 1000
  local cost = tonumber(ARGV[3 * i + 2])
  local key = KEYS[i]
  if kind == 'm' then
    local stamps = redis.call('LRANGE', key, 0, amount - 1)
    local count, oldest = 0, now
    for j = 1, #stamps do
      local ts = tonumber(stamps[j])
      if ts > now - window then count = count + 1; oldest = ts else break end
    end
    state[i] = {count, 0, now - oldest, 0, false, amount, window, cost}
    if count + cost > amount then allowed = 0 end
  elseif kind == 'f' then
    local h = redis.call('HMGET', key, 'i', 'c')
    local start = tonumber(h[1])
    local count = tonumber(h[2]) or 0
    local fresh = start == nil or now >= start + window
    if fresh then start, count = now, 0 end
    state[i] = {count, 0, now - start, start, fresh, amount, window, cost}
    if count + cost > amount then allowed = 0 end
  else
    local h = redis.call('HMGET', key, 'i', 'c', 'p')
    local index = math.floor(now / window)
    local at = tonumber(h[1])
    local count = tonumber(h[2]) or 0
    local previous = tonumber(h[3]) or 0
    if at == nil then count, previous = 0, 0
    elseif at == index - 1 then previous, count = count, 0
    elseif at ~= index then count, previous = 0, 0 end
    local elapsed = now - index * window
    local used = math.ceil(previous * (window - elapsed) / window) + count
    state[i] = {count, previous, elapsed, index, at ~= index, amount, window, cost}
    if used + cost > amount then allowed = 0 end
  end
end
local reply = {allowed}
for i = 1, n do
  local s = state[i]
  if allowed == 1 then
    local amount, window, cost = s[6], s[7], s[8]  -- parsed once, in the first loop
    local key = KEYS[i]
    if kind == 'm' then
      for _ = 1, cost do redis.call('LPUSH', key, now) end
      redis.call('LTRIM', key, 0, amount - 1)
      redis.call('PEXPIRE', key, window)
      if s[1] == 0 then s[3] = 0 end
      s[1] = math.min(s[1] + cost, amount)
    elseif cost > 0 then
      s[1] = s[1] + cost
      if s[5] then
        -- A new window: write it whole and expire it when it stops counting.
        redis.call('HSET', key, 'i', s[4], 'c', s[1], 'p', s[2])
        local spans = 1
        if kind == 's' then spans = 2 end
        redis.call('PEXPIRE', key, math.max(1, spans * window - s[3]))
      else
        redis.call('HINCRBY', key, 'c', cost)
      end
    end
  end
  reply[#reply + 1] = s[1]
  reply[#reply + 1] = s[2]
  reply[#reply + 1] = s[3]
end
return table.concat(reply, ',')
"""


def lua_args(strategy: Strategy, charges: Sequence[Charge], prefix: str = "") -> list[str | int]:
    """The ``EVALSHA`` keys-then-arguments for ``charges`` (after the SHA and key count)."""
    args: list[str | int] = [prefix + c.key for c in charges]
    args += (_CODES[strategy], int(time.time() * 1000))
    for charge in charges:
        args += (charge.amount, charge.window, charge.cost)
    return args


def lua_reply(reply: bytes | str) -> tuple[bool, list[Tally]]:
    """The script's reply (``b"1,4,0,1200"``) as (allowed, tallies)."""
    parts = reply.split(b",") if isinstance(reply, bytes) else reply.split(",")
    values = [int(v) for v in parts]  # int() reads the ASCII bytes itself: no decode
    return values[0] == 1, [
        (values[i], values[i + 1], values[i + 2]) for i in range(1, len(values), 3)
    ]
