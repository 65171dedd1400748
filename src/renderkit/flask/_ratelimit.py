"""Flask side of rate limiting: ``RenderKit(limiter=...)`` hooks and a per-view decorator.

``RenderKit`` decides once per request in a ``before_request`` hook, after Flask has routed it:
the default limit counts per URL rule and method, and a view's ``@limit`` limits are charged
with it, all or none. ``@limit`` decides alone only in an app without a wired limiter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from renderkit.ratelimit import KeyFunc, RateLimiter, RateLimitPolicy, RouteLimit, Verdict
from renderkit.wsgi._ratelimit import decide, request_info_from_environ, str_headers

if TYPE_CHECKING:
    from flask import Flask, Response
    from werkzeug.exceptions import HTTPException

    from renderkit._http import ProxyTrust

__all__ = ["limit", "wire_ratelimit"]

EXTRAS_KEY = "ratelimit"
G_KEY = "renderkit_ratelimit"
F = TypeVar("F", bound=Callable[..., Any])


def _info(limits: tuple[RouteLimit, ...]) -> Any:
    from flask import request, session

    rule = request.url_rule.rule if request.url_rule is not None else None
    return request_info_from_environ(request.environ, session, rule, limits)


def _refusal(verdict: Verdict) -> HTTPException:
    """The refusal as werkzeug's exception for its status (``TooManyRequests``, or
    ``ServiceUnavailable`` failing closed) carrying the problem+json response: raised, it stops
    a view or a helper a view calls alike, and an ``@app.errorhandler(429)`` sees it first."""
    from flask import current_app
    from werkzeug.exceptions import HTTPException, default_exceptions

    response = current_app.response_class(
        verdict.body, status=verdict.status, headers=str_headers(verdict.headers)
    )
    kind = default_exceptions.get(verdict.status, HTTPException)
    return kind(response=response)


def _finish(policy: RateLimitPolicy, verdict: Verdict, response: Response) -> Response:
    for name, value in str_headers(policy.settle(verdict, response.status_code)):
        response.headers.add(name, value)
    return response


def wire_ratelimit(
    app: Flask, limiter: RateLimiter | RateLimitPolicy, trust: ProxyTrust
) -> RateLimitPolicy:
    """Decide every request in ``before_request``; return the policy in force.

    A bare :class:`RateLimiter` gets a policy keyed by client IP behind ``trust`` (the
    RenderKit extension's proxy trust, so the key matches what the other middleware see).
    """
    if not isinstance(limiter, RateLimitPolicy | RateLimiter):
        raise TypeError(
            "RenderKit(limiter=...) takes a renderkit.ratelimit.RateLimiter or RateLimitPolicy, "
            f"got {type(limiter).__name__}"
        )
    policy = (
        limiter if isinstance(limiter, RateLimitPolicy) else RateLimitPolicy(limiter, trust=trust)
    )

    def before() -> Response | None:
        from flask import g, request

        view = app.view_functions.get(request.endpoint) if request.endpoint else None
        limits = getattr(view, "__renderkit_limits__", ())
        verdict = decide(policy, _info(limits), routed=True)
        if verdict is None:
            return None
        setattr(g, G_KEY, (verdict, limits))
        if not verdict.allowed:
            raise _refusal(verdict)
        return None

    def after(response: Response) -> Response:
        from flask import g

        entry = g.pop(G_KEY, None)
        if entry is None or not entry[0].allowed:
            return response
        return _finish(policy, entry[0], response)

    app.before_request(before)
    app.after_request(after)
    return policy


def _limited_view(
    policy_for: Callable[[Flask], RateLimitPolicy],
    specs: tuple[RouteLimit, ...],
    view: Callable[..., Any],
    args: Any,
    kwargs: Any,
) -> Any:
    """Run a ``@limit`` function: the routed view RenderKit's hook decided already, or any other
    decorated function (a helper a view calls, a view without RenderKit): decide here. A
    refusal raises; an allowed call returns what the function returns, unchanged, and the
    headers go on the request's response when it is made."""
    from flask import after_this_request, current_app, g

    view = current_app.ensure_sync(view)  # an async view runs like Flask runs it
    entry = getattr(g, G_KEY, None)
    if entry is not None and entry[1] is specs:
        return view(*args, **kwargs)  # RenderKit's hook counted this view's limits
    policy = policy_for(current_app._get_current_object())  # type: ignore[attr-defined]
    verdict = decide(policy, _info(specs))
    if verdict is None:
        return view(*args, **kwargs)
    if not verdict.allowed:
        raise _refusal(verdict)
    after_this_request(functools.partial(_finish, policy, verdict))
    return view(*args, **kwargs)


def limit(
    value: str | Mapping[str, str],
    *,
    limiter: RateLimiter | None = None,
    key: KeyFunc | None = None,
    trust: ProxyTrust | None = None,
    legacy_headers: bool = False,
    problem_json: bool = True,
    **options: Any,
) -> Callable[[F], F]:
    """Give one Flask view its own limit: ``@limit("5/minute")`` under ``@app.route``.

    Scoped to the view's URL rule and method unless ``shared="name"``; options as
    :class:`~renderkit.ratelimit.RouteLimit`. With ``RenderKit(app, limiter=...)`` the
    extension counts it (with the default, all or none); otherwise the decorator decides
    with ``limiter``. The limit string is checked now, so a typo fails at import of the views.
    """
    spec = RouteLimit(value, key=key, **options)
    policies: dict[int, RateLimitPolicy] = {}

    def policy_for(app: Flask) -> RateLimitPolicy:
        policy = policies.get(id(app))
        if policy is None:
            state = app.extensions.get("renderkit")
            wired = state.extras.get(EXTRAS_KEY) if state is not None else None
            chosen = limiter if limiter is not None else getattr(wired, "limiter", None)
            if chosen is None:
                raise RuntimeError(
                    "@limit needs a limiter: pass limiter=RateLimiter(...) or wire one with "
                    "RenderKit(app, limiter=...)"
                )
            chosen_trust = trust if trust is not None or key is not None else None
            if chosen_trust is None and key is None and state is not None:
                chosen_trust = state.trust
            policy = RateLimitPolicy(
                chosen, key=key, trust=chosen_trust, default=None, legacy_headers=legacy_headers
            )
            policies[id(app)] = policy
        return policy

    def decorate(view: F) -> F:
        if not callable(view) or isinstance(view, type):
            raise TypeError(f"@limit decorates a view function, not {view!r}")
        original = getattr(view, "__renderkit_endpoint__", view)
        specs = (*getattr(view, "__renderkit_limits__", ()), spec)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return _limited_view(policy_for, specs, original, args, kwargs)

        wrapper.__renderkit_limits__ = specs  # type: ignore[attr-defined]
        wrapper.__renderkit_endpoint__ = original  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
