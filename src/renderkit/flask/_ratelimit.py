"""Flask side of rate limiting: ``RenderKit(limiter=...)`` wiring and a per-view decorator."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from renderkit.ratelimit import KeyFunc, RateLimiter, RateLimitPolicy, Rule
from renderkit.wsgi._ratelimit import hit, request_info_from_environ, str_headers

if TYPE_CHECKING:
    from flask import Flask

    from renderkit._http import ProxyTrust

__all__ = ["limit", "wire_ratelimit"]

EXTRAS_KEY = "ratelimit"
F = TypeVar("F", bound=Callable[..., Any])


def wire_ratelimit(
    app: Flask, limiter: RateLimiter | RateLimitPolicy, trust: ProxyTrust
) -> RateLimitPolicy:
    """Wrap ``app.wsgi_app`` with rate limiting; return the policy in force.

    A bare :class:`RateLimiter` gets a policy keyed by client IP behind ``trust`` (the
    RenderKit extension's proxy trust, so the key matches what the other middleware see).
    """
    from renderkit.wsgi._ratelimit import RateLimitMiddleware

    if isinstance(limiter, RateLimitPolicy):
        policy = limiter
    elif isinstance(limiter, RateLimiter):
        policy = RateLimitPolicy(limiter, trust=trust)
    else:
        raise TypeError(
            "RenderKit(limiter=...) takes a renderkit.ratelimit.RateLimiter or RateLimitPolicy, "
            f"got {type(limiter).__name__}"
        )
    app.wsgi_app = RateLimitMiddleware(app.wsgi_app, policy=policy)  # type: ignore[method-assign]
    return policy


def limit(
    value: str,
    *,
    limiter: RateLimiter | None = None,
    key: KeyFunc | None = None,
    trust: ProxyTrust | None = None,
    name: str | None = None,
    methods: Iterable[str] | None = None,
    cost: int = 1,
    legacy_headers: bool = False,
    problem_json: bool = False,
) -> Callable[[F], F]:
    """Give one Flask view its own limit: ``@limit("5/minute")`` under ``@app.route``.

    ``limiter`` defaults to the one passed to ``RenderKit(limiter=...)`` (and ``trust`` to the
    extension's); the limit string is checked now, so a typo fails at import of the views.
    """
    from renderkit.ratelimit import parse_limits

    parse_limits(value, option="limit")
    policies: dict[int, RateLimitPolicy] = {}

    def policy_for(app: Flask) -> RateLimitPolicy:
        policy = policies.get(id(app))
        if policy is None:
            chosen, chosen_trust = limiter, trust
            state = app.extensions.get("renderkit")
            if state is not None:
                wired = state.extras.get(EXTRAS_KEY)
                if chosen is None and wired is not None:
                    chosen = wired.limiter
                if chosen_trust is None and key is None:
                    chosen_trust = state.trust
            if chosen is None:
                raise RuntimeError(
                    "@limit needs a limiter: pass limiter=RateLimiter(...) or wire one with "
                    "RenderKit(app, limiter=...)"
                )
            rule = Rule(
                "/*",
                value,
                methods=list(methods) if methods else None,
                name=name or f"route-{value}",
                cost=cost,
            )
            policy = RateLimitPolicy(
                chosen,
                key=key,
                trust=chosen_trust,
                rules=[rule],
                limit_unmatched=False,
                legacy_headers=legacy_headers,
                problem_json=problem_json,
            )
            policies[id(app)] = policy
        return policy

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from flask import current_app, make_response, request, session

            policy = policy_for(current_app._get_current_object())  # type: ignore[attr-defined]
            info = request_info_from_environ(request.environ, session)
            check, result = hit(policy, info)
            if check is None or result is None:
                return view(*args, **kwargs)
            if not result.allowed:
                status, headers, body = policy.refusal(result, check)
                return current_app.response_class(body, status=status, headers=str_headers(headers))
            response = make_response(view(*args, **kwargs))
            for header_name, header_value in str_headers(policy.response_headers(result, check)):
                response.headers.add(header_name, header_value)
            return response

        return wrapper  # type: ignore[return-value]

    return decorate
