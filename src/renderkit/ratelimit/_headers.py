"""Rate-limit response headers and bodies (IETF draft structured fields, legacy, 429, 503).

Header shapes follow draft-ietf-httpapi-ratelimit-headers (structured-field form):
``RateLimit-Policy: "name";q=100;w=3600`` and ``RateLimit: "name";r=42;t=1800``.
"""

from __future__ import annotations

import functools
import json
import math
import re

from renderkit.ratelimit._limiter import RateLimitResult

__all__ = ["PROBLEM_TYPE", "deny_response", "rate_limit_headers"]

PROBLEM_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/ -]")


def sf_string(value: str) -> str:
    """A structured-field string with only safe printable characters."""
    return '"' + _UNSAFE.sub("-", value)[:64] + '"'


@functools.lru_cache(maxsize=1024)
def _policy_parts(name: str, limit: int, window: int) -> tuple[bytes, str]:
    """The ``RateLimit-Policy`` value and the quoted name: fixed per quota, built once."""
    policy = sf_string(name)
    return f"{policy};q={limit};w={window}".encode("latin-1"), policy


def rate_limit_headers(
    result: RateLimitResult, *, name: str | None = None, legacy: bool = False
) -> list[tuple[bytes, bytes]]:
    """The ``RateLimit-Policy`` / ``RateLimit`` pair (plus ``X-RateLimit-*`` when ``legacy``)."""
    policy_value, policy = _policy_parts(name or result.policy, result.limit, result.window)
    reset_after = result.reset_after
    reset = math.ceil(reset_after) if reset_after > 0 else 0
    headers = [
        (b"ratelimit-policy", policy_value),
        (b"ratelimit", f"{policy};r={result.remaining};t={reset}".encode("latin-1")),
    ]
    if legacy:
        headers += [
            (b"x-ratelimit-limit", str(result.limit).encode("latin-1")),
            (b"x-ratelimit-remaining", str(result.remaining).encode("latin-1")),
            (b"x-ratelimit-reset", str(reset).encode("latin-1")),
        ]
    return headers


def deny_response(
    result: RateLimitResult, *, problem_json: bool = False
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body for a refused request: 429, or 503 when failing closed."""
    retry = str(result.retry_after).encode("latin-1")
    if result.unavailable:
        status = 503
        title = "Rate limiting is unavailable"
        detail = "The rate-limit storage is unreachable; try again shortly."
        body_obj: dict[str, object] = {"error": "rate_limit_unavailable", "detail": detail}
        if problem_json:
            body_obj = {"type": "about:blank", "title": title, "status": 503, "detail": detail}
    else:
        status = 429
        detail = (
            f"Rate limit of {result.limit} requests per {result.window} seconds exceeded; "
            f"retry in {result.retry_after} seconds."
        )
        body_obj = {"error": "rate_limited", "detail": detail, "retry_after": result.retry_after}
        if problem_json:
            body_obj = {
                "type": PROBLEM_TYPE,
                "title": "Request cannot be satisfied as assigned quota has been exceeded",
                "status": 429,
                "detail": detail,
            }
    body = json.dumps(body_obj, separators=(",", ":")).encode("utf-8")
    content_type = b"application/problem+json" if problem_json else b"application/json"
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode("latin-1")),
        (b"retry-after", retry),
        (b"cache-control", b"no-store"),
    ]
    return status, headers, body
