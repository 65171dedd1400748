"""Counting, without I/O: what one request's limits charge, the window arithmetic, memory counts.

A request is checked against several limits at once (a route limit, a shared quota, a tier
default). :class:`Charge` is one of them. A store answers a list of charges with
``(allowed, tallies)``: allowed only if every limit has room, and then every one is charged;
refused by one, none is charged. Each :data:`Tally` is three integers, the same for memory and
Redis (whose Lua scripts, :data:`SCRIPTS`, return them), read by :func:`result_of`:

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
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

__all__ = [
    "DEFAULT_MAX_KEYS",
    "LUA",
    "SCRIPTS",
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


class Charge(NamedTuple):
    """One limit of one request: ``cost`` against ``amount`` per ``window`` seconds at ``key``."""

    key: str
    """The counter (a store adds its own prefix)."""
    amount: int
    """Requests the quota allows per window."""
    window: int
    """The window, in seconds."""
    cost: int = 1
    """What this request consumes (0: read only)."""
    name: str = "default"
    """The quota's name in the ``RateLimit`` headers."""
    fail_closed: bool = False
    """While the shared storage is down, refuse (503) instead of counting in memory."""


class RateLimitResult(NamedTuple):
    """The answer to one check: allowed or not, and the quota that decided it."""

    allowed: bool
    limit: int
    """The quota: requests per window."""
    remaining: int
    """What is left after this request."""
    reset_after: float
    """Seconds until the window resets."""
    window: int = 0
    """The window length, in seconds."""
    policy: str = "default"
    """The quota's name in the ``RateLimit`` headers."""
    fallback: bool = False
    """True when the in-process memory limiter answered because the shared storage was down."""
    unavailable: bool = False
    """True when the storage was down and the limit fails closed (a 503)."""
    wait: float = 0.0
    """Seconds a refused client should wait before one more request fits."""

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
    left = window_ms - ms  # whole milliseconds: the reset needs no rounding
    used = -(-previous * left // window_ms) + count if previous else count
    remaining = amount - used if used < amount else 0
    reset = left / 1000 if left > 0 else float(window)
    if allowed or used + charge.cost <= amount:
        return RateLimitResult(True, amount, remaining, reset, window, charge.name, fallback)
    wait = _wait(strategy, charge, tally, used, left / 1000)
    return RateLimitResult(
        False, amount, remaining, reset, window, charge.name, fallback, False, wait
    )


def _used(charge: Charge, tally: Tally) -> int:
    """The requests a tally counts in the last ``window`` (the previous window weighs in for the
    part of it that still overlaps; its count is 0 but for the sliding window counter)."""
    count, previous, ms = tally
    if previous:
        window_ms = charge.window * 1000
        return -(-previous * (window_ms - ms) // window_ms) + count
    return count


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
        # The strategy's read and write, chosen once (not tested again on every call).
        self._read: Callable[[Charge, _Slot, float], Tally]
        self._write: Callable[[Charge, _Slot, Tally, float], Tally]
        if strategy == "moving-window":
            self._read, self._write = self._read_moving, self._write_moving
        elif strategy == "fixed-window":
            self._read, self._write = self._read_fixed, self._write_fixed
        else:
            self._read, self._write = self._read_sliding, self._write_sliding

    def __len__(self) -> int:
        return len(self._slots)

    def acquire(
        self, charges: Sequence[Charge], now: float | None = None
    ) -> tuple[bool, list[Tally]]:
        """Charge every limit if all have room; else charge none. Returns (allowed, tallies)."""
        now = time.time() if now is None else now
        with self._lock:
            if int(now) != self._swept:
                self._sweep(now)
            slots, read = self._slots, self._read
            seen: list[tuple[Charge, _Slot, Tally]] = []
            allowed = True
            for charge in charges:
                slot = slots.get(charge.key) or self._new_slot(charge.key)
                tally = read(charge, slot, now)
                if _used(charge, tally) + charge.cost > charge.amount:
                    allowed = False
                seen.append((charge, slot, tally))
            if not allowed:
                return False, [tally for _charge, _slot, tally in seen]
            write = self._write
            return True, [write(charge, slot, tally, now) for charge, slot, tally in seen]

    def peek(self, charges: Sequence[Charge], now: float | None = None) -> tuple[bool, list[Tally]]:
        """The counts :meth:`acquire` would see, charging nothing (``allowed`` is False: the
        caller reads each tally with :func:`result_of`)."""
        now = time.time() if now is None else now
        with self._lock:
            tallies = []
            for charge in charges:
                slot = self._slots.get(charge.key)
                tallies.append(self._read(charge, slot, now) if slot else (0, 0, 0))
            return False, tallies

    def clear(self, key: str) -> None:
        """Forget one counter."""
        with self._lock:
            self._slots.pop(key, None)

    # -- internals ------------------------------------------------------------------------
    def _new_slot(self, key: str) -> _Slot:
        slots = self._slots
        if len(slots) >= self.max_keys:
            # Insertion order is age order: drop the oldest counter, never all of them.
            del slots[next(iter(slots))]
            self.evicted += 1
        slot = slots[key] = _Slot()
        return slot

    def _read_moving(self, charge: Charge, slot: _Slot, now: float) -> Tally:
        stamps = slot.stamps
        if not stamps:
            return (0, 0, 0)
        horizon = now - charge.window
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            return (0, 0, 0)
        return (len(stamps), 0, int((now - stamps[0]) * 1000))

    def _read_fixed(self, charge: Charge, slot: _Slot, now: float) -> Tally:
        # A fixed window starts at its first hit (as in limits): a burst never straddles a
        # boundary that would hand it a second quota.
        if slot.count and now < slot.index + charge.window:
            return (slot.count, 0, int((now - slot.index) * 1000))
        return (0, 0, 0)

    def _read_sliding(self, charge: Charge, slot: _Slot, now: float) -> Tally:
        window = charge.window
        index = int(now // window)
        elapsed = int((now - index * window) * 1000)
        if slot.index == index:
            return (slot.count, slot.previous, elapsed)
        if slot.index == index - 1:
            return (0, slot.count, elapsed)
        return (0, 0, elapsed)

    def _write_moving(self, charge: Charge, slot: _Slot, tally: Tally, now: float) -> Tally:
        if slot.stamps is None:
            slot.stamps = deque(maxlen=charge.amount)
        slot.stamps.extend([now] * charge.cost)
        self._expire(charge.key, slot, now + charge.window)
        return (len(slot.stamps), 0, int((now - slot.stamps[0]) * 1000))

    def _write_fixed(self, charge: Charge, slot: _Slot, tally: Tally, now: float) -> Tally:
        if tally[0] == 0:
            slot.index = now  # the window starts now
        slot.count = tally[0] + charge.cost
        self._expire(charge.key, slot, slot.index + charge.window)
        return (slot.count, 0, tally[2])

    def _write_sliding(self, charge: Charge, slot: _Slot, tally: Tally, now: float) -> Tally:
        count, previous, ms = tally
        window = charge.window
        index = int(now // window)
        slot.count = count + charge.cost
        if slot.index != index or not slot.expires:  # a new window: its carry-over, its expiry
            slot.index = index
            slot.previous = previous
            self._expire(charge.key, slot, (index + 2) * window)
        return (slot.count, previous, ms)

    def _expire(self, key: str, slot: _Slot, expires: float) -> None:
        """File ``key`` under the second it expires in (a later expiry only)."""
        if expires > slot.expires:
            slot.expires = expires
            bucket = math.ceil(expires)
            keys = self._buckets.get(bucket)
            if keys is None:
                keys = self._buckets[bucket] = []
                heapq.heappush(self._heap, bucket)
            keys.append(key)

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


# One script per strategy, assembled from one skeleton: read all the request's counters,
# decide, charge all or none. KEYS: one per charge. ARGV: the time in ms, then amount, window
# (s), cost per charge. The caller's clock (as limits uses): no TIME call, and windows of
# seconds or more do not mind the few milliseconds NTP leaves between instances. Reply: the
# status string "allowed,count1,previous1,ms1,count2,..." (see the module docstring), which
# redis-py reads in one line, without the second read a bulk string takes.
_SKELETON = """
local now = tonumber(ARGV[1])
local n = #KEYS
local state = {}
local allowed = '1'  -- a string: the reply needs no number formatting for it
for i = 1, n do
  local key, amount = KEYS[i], tonumber(ARGV[3 * i - 1])
  local window, cost = tonumber(ARGV[3 * i]) * 1000, tonumber(ARGV[3 * i + 1])
  local used
%(read)s
  if used + cost > amount then allowed = '0' end
end
local reply = {allowed}
for i = 1, n do
  local s = state[i]
  if allowed == '1' and s[8] > 0 then
    local key, amount, window, cost = KEYS[i], s[6], s[7], s[8]  -- parsed once, above
%(charge)s
  end
  reply[3 * i - 1], reply[3 * i], reply[3 * i + 1] = s[1], s[2], s[3]
end
return {ok = table.concat(reply, ',')}
"""
# A window kept in a hash (i: its index or start, c: its count, p: the previous count): a new
# window is written whole and expires when it stops counting; an open one is incremented.
_CHARGE_HASH = """
    s[1] = s[1] + cost
    if s[5] then
      redis.call('HSET', key, 'i', s[4], 'c', s[1], 'p', s[2])
      redis.call('PEXPIRE', key, math.max(1, %(spans)d * window - s[3]))
    else
      redis.call('HINCRBY', key, 'c', cost)
    end"""
_PARTS: dict[Strategy, dict[str, str]] = {
    "sliding-window-counter": {
        "read": """
  local h = redis.call('HMGET', key, 'i', 'c', 'p')
  local index = math.floor(now / window)
  local at = tonumber(h[1])
  local count, previous = 0, 0
  if at == index then count, previous = tonumber(h[2]) or 0, tonumber(h[3]) or 0
  elseif at == index - 1 then previous = tonumber(h[2]) or 0 end
  local elapsed = now - index * window
  used = math.ceil(previous * (window - elapsed) / window) + count
  state[i] = {count, previous, elapsed, index, at ~= index, amount, window, cost}""",
        "charge": _CHARGE_HASH % {"spans": 2},
    },
    "fixed-window": {
        "read": """
  local h = redis.call('HMGET', key, 'i', 'c')
  local start = tonumber(h[1])
  local count = tonumber(h[2]) or 0
  local fresh = start == nil or now >= start + window
  if fresh then start, count = now, 0 end
  used = count
  state[i] = {count, 0, now - start, start, fresh, amount, window, cost}""",
        "charge": _CHARGE_HASH % {"spans": 1},
    },
    "moving-window": {
        "read": """
  local stamps = redis.call('LRANGE', key, 0, amount - 1)
  local count, oldest = 0, now
  for j = 1, #stamps do
    local ts = tonumber(stamps[j])
    if ts > now - window then count = count + 1; oldest = ts else break end
  end
  used = count
  state[i] = {count, 0, now - oldest, 0, false, amount, window, cost}""",
        "charge": """
    for _ = 1, cost do redis.call('LPUSH', key, now) end
    redis.call('LTRIM', key, 0, amount - 1)
    redis.call('PEXPIRE', key, window)
    if s[1] == 0 then s[3] = 0 end
    s[1] = math.min(s[1] + cost, amount)""",
    },
}
SCRIPTS: dict[Strategy, str] = {name: _SKELETON % parts for name, parts in _PARTS.items()}
"""renderkit's Redis script of each strategy (the same skeleton, the strategy's read and charge
in it): one ``EVALSHA`` per request whatever the number of limits."""
LUA = "".join(SCRIPTS.values())
"""Every script's text, one after the other (what a reader greps for the commands they run)."""

_ARGV: dict[tuple[int, int, int], tuple[bytes, bytes, bytes]] = {}


def lua_command(sha: str, charges: Sequence[Charge], prefix: str = "") -> list[str | int | bytes]:
    """The whole ``EVALSHA`` command for ``charges``: SHA, key count, keys, then arguments.

    Each limit's three numbers are encoded once per quota (redis-py sends bytes as they are),
    so a request formats only its keys and the time.
    """
    command: list[str | int | bytes] = ["EVALSHA", sha, len(charges)]
    command += [prefix + c.key for c in charges]
    command.append(int(time.time() * 1000))
    for charge in charges:
        shape = (charge.amount, charge.window, charge.cost)
        encoded = _ARGV.get(shape)
        if encoded is None:
            encoded = (b"%d" % shape[0], b"%d" % shape[1], b"%d" % shape[2])
            if len(_ARGV) < 4096:
                _ARGV[shape] = encoded
        command += encoded
    return command


def lua_reply(reply: bytes | str) -> tuple[bool, list[Tally]]:
    """The script's reply (``b"1,4,0,1200"``) as (allowed, tallies)."""
    # int() reads the ASCII bytes itself (no decode); map and zip run without Python frames.
    values = iter(map(int, reply.split(b",") if isinstance(reply, bytes) else reply.split(",")))
    allowed = next(values) == 1
    return allowed, list(zip(values, values, values, strict=False))  # three at a time
