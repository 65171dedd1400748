"""The retry policy of every redis-py client renderkit builds (cache, sessions, rate limits).

Retry once, at once, on a broken connection; never on a timeout. After a Redis restart each
pooled socket is dead exactly once and a fresh connection succeeds, so one reconnect keeps a
restart from tripping the fallback. A hung Redis (a timeout) is not retried: it costs one
``socket_timeout`` and the caller's circuit breaker takes over from there.
"""

from __future__ import annotations

from typing import Any

from renderkit._optional import require

__all__ = ["reconnect_once"]


def reconnect_once(*, asyncio: bool, extra: str, feature: str) -> Any:
    """Return a ``redis.retry.Retry`` (or its asyncio twin) that reconnects once."""
    module = "redis.asyncio.retry" if asyncio else "redis.retry"
    retry = require(module, extra=extra, feature=feature)
    backoff = require("redis.backoff", extra=extra, feature=feature)
    exceptions = require("redis.exceptions", extra=extra, feature=feature)
    return retry.Retry(backoff.NoBackoff(), 1, (exceptions.ConnectionError,))
