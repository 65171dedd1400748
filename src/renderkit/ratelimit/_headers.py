"""Rate-limit response headers and the one refusal body (IETF draft headers, problem+json).

Header shapes follow draft-ietf-httpapi-ratelimit-headers (structured-field form), one pair per
limit that applied: ``RateLimit-Policy: "name";q=100;w=3600`` and ``RateLimit:
"name";r=42;t=1800``. The legacy ``X-RateLimit-*`` trio, when asked for, stands once: for the
limit that speaks for the request (clients read each as one integer). Every refusal, from every
adapter, is ``application/problem+json`` (RFC 9457) with the IANA ``quota-exceeded`` problem
type.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Sequence

from renderkit.ratelimit._limiter import RateLimitResult, most_restrictive

__all__ = ["PROBLEM_TYPE", "applied_headers", "deny_response", "rate_limit_headers", "refusal"]

PROBLEM_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/ -]")


def sf_string(value: str) -> str:
    """A structured-field string with only safe printable characters."""
    return '"' + _UNSAFE.sub("-", value)[:64] + '"'


@functools.lru_cache(maxsize=1024)
def _policy_parts(name: str, limit: int, window: int) -> tuple[bytes, bytes]:
    """The ``RateLimit-Policy`` value and the quoted name, as bytes: fixed per quota, built
    once, so a response formats only its two numbers."""
    policy = sf_string(name).encode("latin-1")
    return b"%s;q=%d;w=%d" % (policy, limit, window), policy


def rate_limit_headers(
    result: RateLimitResult, *, name: str | None = None, legacy: bool = False
) -> list[tuple[bytes, bytes]]:
    """The ``RateLimit-Policy`` / ``RateLimit`` pair (plus ``X-RateLimit-*`` when ``legacy``)."""
    policy_value, policy = _policy_parts(name or result.policy, result.limit, result.window)
    reset = math.ceil(result.reset_after) if result.reset_after > 0 else 0
    headers = [
        (b"ratelimit-policy", policy_value),
        (b"ratelimit", b"%s;r=%d;t=%d" % (policy, result.remaining, reset)),
    ]
    return headers + _legacy(result) if legacy else headers


def _legacy(result: RateLimitResult) -> list[tuple[bytes, bytes]]:
    """The trio clients of slowapi, flask-limiter and GitHub parse: ``X-RateLimit-Reset`` is
    the Unix time the window resets at (the draft's ``t=`` is the seconds until then)."""
    return [
        (b"x-ratelimit-limit", b"%d" % result.limit),
        (b"x-ratelimit-remaining", b"%d" % result.remaining),
        (b"x-ratelimit-reset", b"%d" % math.ceil(time.time() + result.reset_after)),
    ]


def applied_headers(
    results: Sequence[RateLimitResult],
    *,
    legacy: bool = False,
    speaker: RateLimitResult | None = None,
) -> list[tuple[bytes, bytes]]:
    """One ``RateLimit-Policy``/``RateLimit`` pair per limit that applied (none for a limit whose
    storage is unavailable); with ``legacy``, the ``X-RateLimit-*`` trio once, for ``speaker``
    (default: the most restrictive result), as slowapi and flask-limiter send it."""
    headers: list[tuple[bytes, bytes]] = []
    for result in results:
        if not result.unavailable:
            headers += rate_limit_headers(result)
    if legacy and results:
        chosen = speaker if speaker is not None else most_restrictive(results)
        if not chosen.unavailable:
            headers += _legacy(chosen)
    return headers


def _problem(result: RateLimitResult) -> tuple[int, dict[str, object]]:
    if result.unavailable:
        return 503, {
            "type": "about:blank",
            "title": "Rate limiting is unavailable",
            "status": 503,
            "detail": "The rate-limit storage is unreachable and this limit fails closed; "
            f"retry in {result.retry_after} seconds.",
            "retry_after": result.retry_after,
        }
    window = f"{result.window} seconds" if result.window != 1 else "second"
    return 429, {
        "type": PROBLEM_TYPE,
        "title": "Too Many Requests",
        "status": 429,
        "detail": f"Rate limit {result.policy!r} of {result.limit} requests per {window} "
        f"exceeded; retry in {result.retry_after} seconds.",
        "retry_after": result.retry_after,
        "limit": result.policy,
    }


def refusal(
    result: RateLimitResult, applied: Sequence[RateLimitResult] = (), *, legacy: bool = False
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and problem+json body refusing a request because of ``result``.

    ``applied`` are every limit's results, for their ``RateLimit`` header pairs.
    """
    status, problem = _problem(result)
    body = json.dumps(problem, separators=(",", ":")).encode("utf-8")
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode("latin-1")),
        (b"retry-after", str(result.retry_after).encode("latin-1")),
        (b"cache-control", b"no-store"),
    ]
    return status, headers + applied_headers(applied, legacy=legacy, speaker=result), body


def deny_response(
    result: RateLimitResult, *, problem_json: bool = True
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body for a refused request: 429, or 503 when failing closed.

    The body is always ``application/problem+json``; ``problem_json`` is accepted for
    compatibility and changes nothing.
    """
    return refusal(result)
