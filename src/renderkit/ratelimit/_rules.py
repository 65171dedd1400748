"""The rate-limit policy: which limits apply to a request, and the one decision about it.

Every adapter (ASGI middleware, route decorator, FastAPI dependency, WSGI, Flask) builds a
:class:`~renderkit.ratelimit.RequestInfo` and calls :meth:`RateLimitPolicy.decide` (or
``adecide``): the limits that apply are charged all together or not at all, and the
:class:`Verdict` carries the headers and, for a refusal, the status and problem+json body. The
adapter only translates that to its framework.

Scopes: a route's own limit (``@limit``, ``RateLimit``) and the app-wide default count per
client *per route template and method* (HEAD counts as GET); ``shared="name"`` makes one quota
of every limit that names it; a :class:`Rule` is one quota over the paths it covers. A route's
own limit replaces the default unless ``override_defaults=False`` (flask-limiter's model).
"""

from __future__ import annotations

import inspect
import logging
import math
import operator
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from renderkit._asgi import path_matcher
from renderkit._http import ProxyTrust, network_list
from renderkit.config import Settings, env
from renderkit.errors import ConfigError, ConfigProblem
from renderkit.ratelimit._counting import Charge
from renderkit.ratelimit._headers import applied_headers, rate_limit_headers, refusal
from renderkit.ratelimit._keys import KeyFunc, KeyWatch, RequestInfo, client_ip_key
from renderkit.ratelimit._limiter import (
    RateLimiter,
    RateLimitResult,
    most_restrictive,
    parse_limits,
    shapes,
)

if TYPE_CHECKING:
    from limits import RateLimitItem

__all__ = [
    "HEALTH_PATHS",
    "Check",
    "RateLimitPolicy",
    "RateLimitTrustSettings",
    "RouteLimit",
    "Rule",
    "Verdict",
]

logger = logging.getLogger("renderkit.ratelimit")

HEALTH_PATHS = ("/health", "/health/*", "/healthz", "/livez", "/readyz", "/ping")
"""Always exempt: a platform health check must never be rate limited."""

Check = Charge
"""One limit of one request (kept name; see :class:`~renderkit.ratelimit._counting.Charge`)."""

TierFunc = Callable[[RequestInfo], "str | None"]
Cost = int | Callable[[RequestInfo], int] | Callable[[], int]
_MAX_SEGMENTS = 32


def _method(method: str) -> str:
    method = method.upper()
    return "GET" if method == "HEAD" else method


def _methods(methods: Iterable[str] | None) -> frozenset[str] | None:
    if not methods:
        return None
    return frozenset(_method(m) for m in methods)


def _accepts_request(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` takes the request (flask-limiter's ``exempt_when`` takes nothing)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is not p.KEYWORD_ONLY for p in parameters)


def _parse_tiers(limit: str | Mapping[str, str], option: str) -> dict[str, list[RateLimitItem]]:
    per_tier = limit if isinstance(limit, Mapping) else {"": limit}
    parsed: dict[str, list[RateLimitItem]] = {}
    problems: list[ConfigProblem] = []
    for tier, text in per_tier.items():
        try:
            parsed[tier] = parse_limits(text, option=option + (f"[{tier!r}]" if tier else ""))
        except ConfigError as exc:
            problems.extend(exc.errors)
    if problems:
        raise ConfigError(problems)
    return parsed


@dataclass(frozen=True, eq=False)
class RouteLimit:
    """One limit declared for routes: the spec a decorator, dependency or :class:`Rule` makes.

    ``limit``: a limit string or tier name -> limit string. ``shared``: a quota name; every
    limit naming it counts in one quota (default None: per route template and method).
    ``methods``: only these methods (HEAD counts as GET). ``key``: the identity function
    (default: the policy's). ``cost``: what a request consumes, an int or a function (of the
    request, or of nothing as flask-limiter's). ``exempt_when``: a predicate (of the request,
    or of nothing) that skips this limit. ``deduct_when``: a predicate of the response
    status; when given, the request is checked before and charged after the response, only
    if it returns True (count failed logins only). ``on_breach``: called with (request,
    result) when this limit refuses. ``override_defaults``: replace the app-wide default on
    this route (True) or add to it. ``fail_closed``: while the shared storage is down, refuse
    with 503 instead of counting in memory (login-type limits). ``name``: the quota's name in
    headers.
    """

    limit: str | Mapping[str, str]
    shared: str | None = None
    methods: Iterable[str] | None = None
    key: KeyFunc | None = None
    cost: Cost = 1
    exempt_when: Callable[..., bool] | None = None
    deduct_when: Callable[[int], bool] | None = None
    on_breach: Callable[[RequestInfo, RateLimitResult], object] | None = None
    override_defaults: bool = True
    fail_closed: bool = False
    name: str | None = None
    scope: str = field(default="route", repr=False)
    items: dict[str, list[RateLimitItem]] = field(init=False, repr=False)
    method_set: frozenset[str] | None = field(init=False, repr=False)
    exempt_takes_request: bool = field(init=False, repr=False)
    cost_takes_request: bool = field(init=False, repr=False)
    fixed_scope: str | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        label = self.name or self.shared or (self.limit if isinstance(self.limit, str) else "")
        if isinstance(self.cost, int) and self.cost < 1:
            raise ValueError(f"limit {label!r}: cost={self.cost} must be 1 or more")
        if not (isinstance(self.cost, int) or callable(self.cost)):
            raise TypeError(f"limit {label!r}: cost must be an int or a function of the request")
        for option in ("exempt_when", "deduct_when", "on_breach", "key"):
            value = getattr(self, option)
            if value is not None and not callable(value):
                raise TypeError(f"limit {label!r}: {option} must be callable")
        if self.scope == "rule":
            option = f"Rule({self.name!r}).limit"
        elif self.scope in ("default", "shared-default"):
            option = "tiers" if isinstance(self.limit, Mapping) else "default"
        else:
            option = "limit"
        items = _parse_tiers(self.limit, option)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "method_set", _methods(self.methods))
        if self.exempt_when is not None:
            object.__setattr__(self, "exempt_takes_request", _accepts_request(self.exempt_when))
        takes_request = not isinstance(self.cost, int) and _accepts_request(self.cost)
        object.__setattr__(self, "cost_takes_request", takes_request)
        if self.name is None:
            object.__setattr__(self, "name", self.shared or _label(self.limit))
        if self.shared is not None:
            fixed: str | None = f"shared:{self.shared}"
        elif self.scope == "rule":
            fixed = f"rule:{self.name}"
        elif self.scope == "shared-default":
            fixed = "default:*"
        else:
            fixed = None  # per route: the route is known per request
        object.__setattr__(self, "fixed_scope", fixed)

    def applies(self, request: RequestInfo, method: str) -> bool:
        """True when this limit counts ``request`` (its methods; not exempted)."""
        if self.method_set is not None and method not in self.method_set:
            return False
        exempt = self.exempt_when
        if exempt is None:
            return True
        try:
            return not (exempt(request) if self.exempt_takes_request else exempt())
        except Exception:
            logger.exception("a rate limit's exempt_when raised; counting the request")
            return True

    def cost_of(self, request: RequestInfo) -> int:
        """What ``request`` consumes: a fraction rounds up (never under-charged); a cost
        function's error or unusable value costs 1."""
        cost = self.cost
        if isinstance(cost, int):
            return cost
        try:
            function: Callable[..., Any] = cost  # of the request, or of nothing
            raw = function(request) if self.cost_takes_request else function()
            value = raw if isinstance(raw, int) else math.ceil(raw)
        except Exception:
            logger.exception(
                "a rate limit's cost function raised or returned something that is not a "
                "number; charging 1 (return an int, e.g. int(request.header('x-batch') or 1))"
            )
            return 1
        return max(1, value)


def _label(limit: str | Mapping[str, str]) -> str:
    return limit if isinstance(limit, str) else "tiered"


class Rule(RouteLimit):
    """A limit for some paths (and methods): ``Rule("/api/analyze", "10/day", methods=["POST"])``.

    ``path``: one pattern or several (``"/x"`` exact, ``"/x/*"`` everything below); a rule is
    one quota over all the paths it covers, named ``name`` (default: the first pattern).
    Other options as :class:`RouteLimit`.
    """

    def __init__(
        self,
        path: str | Sequence[str],
        limit: str | Mapping[str, str],
        methods: Sequence[str] | None = None,
        name: str | None = None,
        key: KeyFunc | None = None,
        cost: Cost = 1,
        **options: Any,
    ) -> None:
        patterns = (path,) if isinstance(path, str) else tuple(path)
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern.startswith("/"):
                raise ValueError(
                    f"Rule path {pattern!r} must start with '/' (use '/x' for one path or "
                    "'/x/*' for everything below it)"
                )
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "patterns", patterns)
        label = name or patterns[0]
        super().__init__(limit, None, methods, key, cost, name=label, scope="rule", **options)


class _RuleTable:
    """Rules by path: a dict for exact paths, one dict lookup per path segment for prefixes.

    The first rule (in the order given) that covers a request wins, as before; finding it
    costs the same with 1 or 1,000 rules.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.exact: dict[str, list[int]] = {}
        self.prefix: dict[str, list[int]] = {}
        for index, rule in enumerate(rules):
            for pattern in rule.patterns:  # type: ignore[attr-defined]
                if pattern.endswith("/*"):
                    self.prefix.setdefault(pattern[:-1], []).append(index)
                    self.exact.setdefault(pattern[:-2] or "/", []).append(index)
                else:
                    self.exact.setdefault(pattern, []).append(index)
        self.rules = tuple(rules)

    def find(self, path: str, method: str) -> Rule | None:
        candidates = list(self.exact.get(path, ()))
        prefix = self.prefix
        if prefix:
            end = 0
            for _ in range(_MAX_SEGMENTS):
                end = path.find("/", end) + 1
                if end == 0:
                    break
                found = prefix.get(path[:end])
                if found:
                    candidates += found
        for index in sorted(candidates):
            rule = self.rules[index]
            if rule.method_set is None or method in rule.method_set:
                return rule
        return None


@dataclass(slots=True)
class Verdict:
    """The decision about one request.

    ``allowed``; ``results``: one per limit that applied (empty: nothing limits it);
    ``headers``: the ``RateLimit`` pairs for an allowed response, or the whole refusal header
    list; ``status`` and ``body``: the refusal (429 or 503, problem+json), or 200 and b"".
    ``routed``: the adapter resolved the route, so route decorators need not decide again.
    """

    allowed: bool
    results: tuple[RateLimitResult, ...] = ()
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    status: int = 200
    body: bytes = b""
    routed: bool = False
    deferred: tuple[tuple[RouteLimit, list[Charge]], ...] = ()

    @property
    def result(self) -> RateLimitResult | None:
        """The result that speaks for the request (the refusal, else the tightest limit)."""
        return most_restrictive(self.results) if self.results else None


_FREE = Verdict(True)
_FREE_ROUTED = Verdict(True, routed=True)


class RateLimitTrustSettings(Settings):
    """Which proxies the default client-IP key believes, when the code passes no ``trust``."""

    hops: int = env("RATELIMIT_TRUSTED_HOPS", default=0, minimum=0)
    """Proxies that append to X-Forwarded-For in front of the app (2 on Render: Cloudflare, then
    Render's proxy; 1 on Heroku). 0: key on the TCP peer."""
    cidrs: list[str] = env("RATELIMIT_TRUSTED_CIDRS", default=[], validate=network_list)
    """Networks the proxies connect from (10.0.0.0/8,...); forwarding headers from other peers are
    ignored. Empty: any peer when RATELIMIT_TRUSTED_HOPS > 0."""

    def trust(self) -> ProxyTrust:
        """The :class:`ProxyTrust` these settings describe."""
        return ProxyTrust(hops=self.hops, trusted_cidrs=tuple(self.cidrs))  # type: ignore[arg-type]


@dataclass(slots=True)
class _Plan:
    """What one request is charged: the charges now, the deferred ones, and by which limit."""

    charges: list[Charge]
    owners: list[RouteLimit]
    deferred: list[tuple[RouteLimit, list[Charge]]]


Quota = tuple[str, int, int, str, bool]
"""One counter of a limit: key suffix, amount, window, header name, fail_closed."""


class _Entry:
    """One limit as compiled for one route: the counting key up to the identity, the counters
    per tier, and what is fixed (cost, key function), so a request only adds its identity."""

    __slots__ = (
        "base", "cost", "deferred", "fallback", "is_default", "key", "spec", "tiers", "untiered"
    )  # fmt: skip

    def __init__(self, spec: RouteLimit, label: str, default_tier: str, is_default: bool) -> None:
        self.spec = spec
        self.base = f"{spec.fixed_scope or spec.scope + ':' + label}|"
        self.key = spec.key
        self.cost = spec.cost if isinstance(spec.cost, int) else None
        self.deferred = spec.deduct_when is not None
        self.is_default = is_default
        name = spec.name or "default"
        closed = spec.fail_closed

        def quotas(items: list[RateLimitItem], name: str) -> tuple[Quota, ...]:
            return tuple((s, a, w, name, closed) for s, a, w, _n in shapes(items))

        # The app-wide default names each tier's quota after the tier; other limits keep theirs.
        self.tiers = {
            tier: quotas(items, tier if is_default and tier else name)
            for tier, items in spec.items.items()
        }
        fallback = spec.items.get("") or spec.items.get(default_tier)
        self.fallback = None if fallback is None else quotas(fallback, name)
        self.untiered = self.quotas("")  # what a policy without tiers charges, looked up once

    def quotas(self, tier: str) -> tuple[Quota, ...] | None:
        """The counters for ``tier`` (unknown: the untiered or default tier's numbers)."""
        found = self.tiers.get(tier)
        if found is not None or not tier:
            return found or self.fallback
        if self.fallback is None or not self.is_default:
            return self.fallback
        return tuple((s, a, w, tier, c) for s, a, w, _n, c in self.fallback)


@dataclass(frozen=True, slots=True)
class _Route:
    """What a policy compiled for one method, path, route template and set of route limits.

    ``entries`` apply on every request when ``dynamic`` is False (the default already added
    or left out); with ``exempt_when`` predicates in play they are filtered per request and
    the ``default`` is added when no remaining limit replaces it.
    """

    exempt: bool
    entries: tuple[_Entry, ...]
    default: _Entry | None
    dynamic: bool


_ROUTES_KEPT = 4096


class RateLimitPolicy:
    """Decide, per request, which limits apply and whether it passes.

    ``limiter``: the :class:`RateLimiter`. ``key``: a key function (default: client IP behind
    ``trust``; without ``trust``, ``RATELIMIT_TRUSTED_HOPS`` / ``RATELIMIT_TRUSTED_CIDRS``
    from ``environ``, else no proxy is trusted; on Render pass ``trust=ProxyTrust.render()``).
    ``default``: the app-wide default limit, counted per route template and method (default:
    the limiter's; ``None``: no default). ``tiers``: tier name -> default limit for that tier;
    ``tier``: a function naming a request's tier (None or unknown: ``default_tier``, the first
    tier). ``rules``: :class:`Rule` objects, first match wins. ``shared_default``: count the
    default as one quota per client across all routes instead. ``exempt_paths``: never
    limited, in addition to health endpoints. ``exempt_keys``: identities (``"10.0.0.7"``,
    ``"ip:10.0.0.7"``) never limited. ``headers``: send the ``RateLimit`` pairs;
    ``legacy_headers`` adds ``X-RateLimit-*``. ``limit_unmatched=False``: the default applies
    to nothing (only rules and route limits count).
    """

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        key: KeyFunc | None = None,
        trust: ProxyTrust | None = None,
        default: str | Sequence[str] | bool | None = True,
        tiers: Mapping[str, str] | None = None,
        tier: TierFunc | None = None,
        default_tier: str | None = None,
        rules: Iterable[Rule] = (),
        exempt_paths: Sequence[str] = (),
        exempt_keys: Iterable[str] = (),
        limit_unmatched: bool = True,
        shared_default: bool = False,
        headers: bool = True,
        legacy_headers: bool = False,
        problem_json: bool = True,
        watch_keys: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(limiter, RateLimiter):
            raise TypeError(
                f"rate limiting needs limiter=RateLimiter(...), got {type(limiter).__name__}"
            )
        if key is not None and trust is not None:
            raise ValueError("pass either key= or trust= (trust configures the default IP key)")
        if trust is None and key is None:
            trust = RateLimitTrustSettings.load(environ).trust()
        self.limiter = limiter
        self._ip_key = client_ip_key(trust)
        self.trust: ProxyTrust = self._ip_key.trust  # type: ignore[attr-defined]
        self.key: KeyFunc = key if key is not None else self._ip_key
        self.rules = tuple(rules)
        for rule in self.rules:
            if not isinstance(rule, Rule):
                raise TypeError(f"rules= takes Rule objects, got {type(rule).__name__}")
        self._table = _RuleTable(self.rules)
        self._defaults = self._default_limits(default, tiers, limit_unmatched, shared_default)
        self.tier = tier
        self.default_tier = default_tier or next(iter(tiers or {}), None)
        _check_tiers(tier, tiers, self.rules, default_tier)
        try:
            self._exempt = path_matcher((*HEALTH_PATHS, *exempt_paths))
        except ValueError as exc:
            raise ConfigError(ConfigProblem("exempt_paths", str(exc), "code")) from None
        self.exempt_keys = _exempt_keys(exempt_keys)
        self.headers = headers
        self.legacy_headers = legacy_headers
        self._watch = KeyWatch() if watch_keys and key is None else None
        self._routes: dict[tuple[str, str, str | None, tuple[Any, ...]], _Route] = {}
        self._routes_lock = threading.Lock()

    def _default_limits(
        self,
        default: str | Sequence[str] | bool | None,
        tiers: Mapping[str, str] | None,
        limit_unmatched: bool,
        shared: bool,
    ) -> RouteLimit | None:
        if not limit_unmatched or default is None or default is False:
            return None
        scope = "shared-default" if shared else "default"
        if tiers:
            return RouteLimit(dict(tiers), name="default", scope=scope)
        if default is True:
            texts = [str(item) for item in self.limiter.default]
            spec = RouteLimit(texts[0], name="default", scope=scope)
            object.__setattr__(spec, "items", {"": list(self.limiter.default)})
            return spec
        return RouteLimit(
            default if isinstance(default, str) else ";".join(default), name="default", scope=scope
        )

    # -- which limits -----------------------------------------------------------------------
    def limits_for(self, request: RequestInfo) -> list[RouteLimit]:
        """The limits that apply to ``request`` (route limits, a rule, the default)."""
        return [entry.spec for entry in self._entries(request, self._route(request))]

    def _route(self, request: RequestInfo) -> _Route:
        """The compiled :class:`_Route` of ``request`` (built once per method, path, route)."""
        memo = self._routes
        key = (request.method, request.path, request.route, request.limits)
        found = memo.get(key)
        if found is None:
            found = self._compile(*key)
            with self._routes_lock:
                if len(memo) >= _ROUTES_KEPT:
                    memo.pop(next(iter(memo)), None)  # the oldest entry, never the whole memo
                memo[key] = found
        return found

    def _compile(
        self, method: str, path: str, route: str | None, limits: tuple[RouteLimit, ...]
    ) -> _Route:
        method = _method(method)
        chosen = [
            spec
            for spec in limits
            if spec.scope != "exempt" and (spec.method_set is None or method in spec.method_set)
        ]
        rule = self._table.find(path, method) if self._table.rules else None
        if rule is not None:
            chosen.append(rule)
        label = f"{method} {route or '*'}"
        tier = self.default_tier or ""
        entries = tuple(_Entry(spec, label, tier, False) for spec in chosen)
        default = None
        if self._defaults is not None and not any(s.scope == "exempt" for s in limits):
            default = _Entry(self._defaults, label, tier, True)
        dynamic = any(spec.exempt_when is not None for spec in chosen)
        if not dynamic and default is not None:
            if all(not spec.override_defaults for spec in chosen):
                entries += (default,)  # nothing replaces the default here
            default = None
        return _Route(self._exempt(path), entries, default, dynamic)

    def _entries(self, request: RequestInfo, route: _Route) -> Sequence[_Entry]:
        if not route.dynamic:
            return route.entries
        method = _method(request.method)
        entries = [e for e in route.entries if e.spec.applies(request, method)]
        if route.default is not None and all(not e.spec.override_defaults for e in entries):
            entries.append(route.default)
        return entries

    def _tier_of(self, request: RequestInfo) -> str:
        if self.tier is None:
            return ""
        try:
            name = self.tier(request)
        except Exception:
            logger.exception("the rate-limit tier function raised; using the default tier")
            name = None
        return name if name is not None else (self.default_tier or "")

    def _identity(self, request: RequestInfo, function: KeyFunc | None) -> str:
        try:
            identity = (function or self.key)(request)
        except Exception:
            logger.exception("the rate-limit key function raised; keying the request by its IP")
            identity = None
        if identity is None:
            # An API-key or user key function found nothing: count the client's address.
            identity = self._ip_key(request) or "ip:unknown"
        return identity

    def plan(self, request: RequestInfo) -> _Plan | None:
        """The charges for ``request``; None when it is exempt or nothing limits it."""
        route = self._route(request)
        if route.exempt:
            return None
        entries = route.entries if not route.dynamic else self._entries(request, route)
        if not entries:
            return None
        charges: list[Charge] = []
        owners: list[RouteLimit] = []
        deferred: list[tuple[RouteLimit, list[Charge]]] = []
        tier = self._tier_of(request) if self.tier is not None else ""
        identities: dict[KeyFunc | None, str] = {}
        key: Any = identities  # no key function yet
        ident = ""
        for entry in entries:
            if entry.key is not key:  # most routes count every limit under one identity
                key = entry.key
                found = identities.get(key)
                if found is None:
                    found = identities[key] = self._identity(request, key)
                    if found in self.exempt_keys:
                        return None
                ident = found
            quotas = entry.quotas(tier) if tier else entry.untiered
            if quotas is None:
                continue
            spec = entry.spec
            cost = entry.cost if entry.cost is not None else spec.cost_of(request)
            base = entry.base + ident
            if entry.deferred:
                made = [Charge(base + q[0], q[1], q[2], cost, q[3], q[4]) for q in quotas]
                deferred.append((spec, made))
                continue
            for suffix, amount, window, name, closed in quotas:
                charges.append(Charge(base + suffix, amount, window, cost, name, closed))
                owners.append(spec)
        watch = self._watch
        if watch is not None:
            if watch.done:
                self._watch = None  # the sample is checked: nothing more to watch
            else:
                watch.observe(identities.get(None) or next(iter(identities.values()), ""))
        return _Plan(charges, owners, deferred)

    # -- the decision -----------------------------------------------------------------------
    def decide(self, request: RequestInfo, *, routed: bool = False) -> Verdict:
        """Charge ``request``'s limits, all or none, and return the :class:`Verdict` (sync)."""
        plan = self.plan(request)
        if plan is None:
            return _FREE_ROUTED if routed else _FREE
        limiter = self.limiter
        waiting = [limiter.inspect(c) for _s, c in plan.deferred] if plan.deferred else []
        if not plan.charges:
            results: list[RateLimitResult] = []
        elif waiting and not all(_all_allowed(rs) for rs in waiting):
            results = limiter.inspect(plan.charges)
        else:
            results = limiter.acquire(plan.charges)
        return self._verdict(request, plan, results, waiting, routed)

    async def adecide(self, request: RequestInfo, *, routed: bool = False) -> Verdict:
        """:meth:`decide` for async adapters: the event loop never blocks on storage I/O."""
        plan = self.plan(request)
        if plan is None:
            return _FREE_ROUTED if routed else _FREE
        limiter = self.limiter
        waiting = [await limiter.ainspect(c) for _s, c in plan.deferred] if plan.deferred else []
        if not plan.charges:
            results: list[RateLimitResult] = []
        elif waiting and not all(_all_allowed(rs) for rs in waiting):
            results = await limiter.ainspect(plan.charges)
        else:
            results = await limiter.aacquire(plan.charges)
        return self._verdict(request, plan, results, waiting, routed)

    def _verdict(
        self,
        request: RequestInfo,
        plan: _Plan,
        results: list[RateLimitResult],
        waiting: list[list[RateLimitResult]],
        routed: bool,
    ) -> Verdict:
        every, owners = results, plan.owners
        if waiting:
            every, owners = list(results), list(owners)
            for (spec, _charges), rs in zip(plan.deferred, waiting, strict=True):
                every += rs
                owners += [spec] * len(rs)
        if _all_allowed(every):
            headers = applied_headers(every, legacy=self.legacy_headers) if self.headers else []
            return Verdict(True, tuple(every), headers, 200, b"", routed, tuple(plan.deferred))
        worst = most_restrictive(every)
        status, headers, body = refusal(
            worst, every if self.headers else (), legacy=self.legacy_headers
        )
        for spec, result in zip(owners, every, strict=True):
            if not result.allowed and spec.on_breach is not None:
                try:
                    spec.on_breach(request, result)
                except Exception:
                    logger.exception("a rate limit's on_breach hook raised")
        return Verdict(False, tuple(every), headers, status, body, routed)

    def settle(self, verdict: Verdict, status: int) -> list[tuple[bytes, bytes]]:
        """After the response: charge the ``deduct_when`` limits whose predicate says so, and
        return the ``RateLimit`` headers as they stand after that charge."""
        if not verdict.deferred:
            return verdict.headers
        settled = [
            self.limiter.acquire(charges) if _deduct(spec, status) else None
            for spec, charges in verdict.deferred
        ]
        return self._settled_headers(verdict, settled)

    async def asettle(self, verdict: Verdict, status: int) -> list[tuple[bytes, bytes]]:
        """Async :meth:`settle`."""
        if not verdict.deferred:
            return verdict.headers
        settled = [
            await self.limiter.aacquire(charges) if _deduct(spec, status) else None
            for spec, charges in verdict.deferred
        ]
        return self._settled_headers(verdict, settled)

    def _settled_headers(
        self, verdict: Verdict, settled: list[list[RateLimitResult] | None]
    ) -> list[tuple[bytes, bytes]]:
        if not self.headers:
            return []
        deferred = sum(len(charges) for _spec, charges in verdict.deferred)
        results = list(verdict.results[: len(verdict.results) - deferred])
        start = len(results)
        for (_spec, charges), charged in zip(verdict.deferred, settled, strict=True):
            results += charged or verdict.results[start : start + len(charges)]
            start += len(charges)
        return applied_headers(results, legacy=self.legacy_headers)

    # -- kept for callers of the previous API ---------------------------------------------
    def response_headers(
        self, result: RateLimitResult, check: Any = None
    ) -> list[tuple[bytes, bytes]]:
        """The ``RateLimit`` pair for one result (empty when ``headers`` is off)."""
        if not self.headers or result.unavailable:
            return []
        return rate_limit_headers(result, legacy=self.legacy_headers)

    def refusal(
        self, result: RateLimitResult, check: Any = None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body refusing a request because of ``result``."""
        return refusal(result, (result,) if self.headers else (), legacy=self.legacy_headers)


def _check_tiers(
    tier: TierFunc | None, tiers: Mapping[str, str] | None, rules: Any, default_tier: str | None
) -> None:
    if tier is not None and not tiers and not any(isinstance(r.limit, Mapping) for r in rules):
        raise ConfigError(
            ConfigProblem("tiers", "tier= is set but no tier has limits; pass tiers=", "code")
        )
    if not tiers:
        return
    problems = [
        ConfigProblem(
            f"Rule({rule.name!r}).limit[{name!r}]",
            f"unknown tier {name!r}; the tiers are {', '.join(map(repr, tiers))}",
            "code",
        )
        for rule in rules
        if isinstance(rule.limit, Mapping)
        for name in rule.limit
        if name not in tiers
    ]
    if default_tier is not None and default_tier not in tiers:
        problems.append(ConfigProblem("default_tier", f"unknown tier {default_tier!r}", "code"))
    if problems:
        raise ConfigError(problems)


def _exempt_keys(values: Iterable[str]) -> frozenset[str]:
    keys = set()
    for value in values:
        keys.add(value)
        if ":" not in value or value.count(":") > 1:  # bare IPv4 / IPv6
            keys.add(f"ip:{value}")
    return frozenset(keys)


_ALLOWED = operator.attrgetter("allowed")


def _all_allowed(results: Iterable[RateLimitResult]) -> bool:
    return all(map(_ALLOWED, results))  # no generator frame per call


def _deduct(spec: RouteLimit, status: int) -> bool:
    assert spec.deduct_when is not None
    try:
        return bool(spec.deduct_when(status))
    except Exception:
        logger.exception("a rate limit's deduct_when raised; charging the request")
        return True
