"""The rate-limit policy: which limit applies to a request, under which key (no I/O)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from renderkit._asgi import path_matcher
from renderkit._http import client_ip
from renderkit.errors import ConfigError, ConfigProblem
from renderkit.ratelimit._headers import deny_response, rate_limit_headers
from renderkit.ratelimit._keys import KeyFunc, KeyWatch, RequestInfo, client_ip_key, ip_key
from renderkit.ratelimit._limiter import RateLimiter, RateLimitResult, parse_limits

if TYPE_CHECKING:
    from limits import RateLimitItem

    from renderkit._http import ProxyTrust

__all__ = ["HEALTH_PATHS", "Check", "RateLimitPolicy", "Rule"]

logger = logging.getLogger("renderkit.ratelimit")

_RULE_CACHE_SIZE = 4096

HEALTH_PATHS = ("/health", "/health/*", "/healthz", "/livez", "/readyz", "/ping")
"""Always exempt: a platform health check must never be rate limited."""

TierFunc = Callable[[RequestInfo], "str | None"]


@dataclass(frozen=True)
class Rule:
    """A limit for some paths (and methods): ``Rule("/api/analyze", "10/day", methods=["POST"])``.

    ``path``: one pattern or several (``"/x"`` exact, ``"/x/*"`` everything below).
    ``limit``: a limit string, or a mapping of tier name to limit string (``{"free":
    "10/day", "pro": "100/day"}``). ``name`` names the quota in headers and in the counting
    key (default: the first pattern). ``key`` overrides the policy's key function, ``cost``
    is what one request consumes.
    """

    path: str | Sequence[str]
    limit: str | Mapping[str, str]
    methods: Sequence[str] | None = None
    name: str | None = None
    key: KeyFunc | None = None
    cost: int = 1
    _match: Callable[[str], bool] = field(init=False, repr=False, compare=False)
    _methods: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        patterns = (self.path,) if isinstance(self.path, str) else tuple(self.path)
        object.__setattr__(self, "_match", path_matcher(patterns))
        methods = frozenset(m.upper() for m in self.methods) if self.methods else None
        object.__setattr__(self, "_methods", methods)
        if self.name is None:
            object.__setattr__(self, "name", patterns[0])
        if self.cost < 1:
            raise ValueError(f"Rule({self.name!r}, cost={self.cost}): cost must be 1 or more")

    def matches(self, method: str, path: str) -> bool:
        """True when this rule covers ``method path``."""
        return (self._methods is None or method in self._methods) and self._match(path)


@dataclass(frozen=True, slots=True)
class Check:
    """One check to run: count ``cost`` against ``key`` for ``items``; ``name`` for headers."""

    key: str
    items: list[RateLimitItem]
    cost: int
    name: str


class RateLimitPolicy:
    """Decide, per request, whether and how it is limited; build headers and refusals.

    ``limiter``: the :class:`RateLimiter`. ``key``: a key function (default: client IP behind
    ``trust``, which defaults to trusting no proxy; on Render pass
    ``trust=ProxyTrust.render()``). ``tiers``: tier name -> default limit for that tier;
    ``tier``: a function naming a request's tier (None or unknown: ``default_tier``, the first
    tier). ``rules``: per-path :class:`Rule` objects, first match wins; requests no rule
    matches get the tier's (or the limiter's) default limit unless ``limit_unmatched`` is
    False. ``exempt_paths``: never limited, in addition to health endpoints.
    ``exempt_keys``: keys (``"ip:10.0.0.7"``, ``"10.0.0.7"``) never limited. ``headers``:
    send the RateLimit headers on limited routes; ``legacy_headers`` adds ``X-RateLimit-*``;
    ``problem_json`` answers 429 as ``application/problem+json``.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        key: KeyFunc | None = None,
        trust: ProxyTrust | None = None,
        tiers: Mapping[str, str] | None = None,
        tier: TierFunc | None = None,
        default_tier: str | None = None,
        rules: Iterable[Rule] = (),
        exempt_paths: Sequence[str] = (),
        exempt_keys: Iterable[str] = (),
        limit_unmatched: bool = True,
        headers: bool = True,
        legacy_headers: bool = False,
        problem_json: bool = False,
        watch_keys: bool = True,
    ) -> None:
        if not isinstance(limiter, RateLimiter):
            raise TypeError(
                f"rate limiting needs limiter=RateLimiter(...), got {type(limiter).__name__}"
            )
        if key is not None and trust is not None:
            raise ValueError("pass either key= or trust= (trust configures the default IP key)")
        self.limiter = limiter
        self._ip_key = client_ip_key(trust)
        self.key: KeyFunc = key if key is not None else self._ip_key
        self.rules = tuple(rules)
        problems: list[ConfigProblem] = []
        self._tier_items: dict[str, list[RateLimitItem]] = {}
        for name, text in (tiers or {}).items():
            try:
                self._tier_items[name] = parse_limits(text, option=f"tiers[{name!r}]")
            except ConfigError as exc:
                problems.extend(exc.errors)
        self.tier = tier
        self.default_tier = default_tier or next(iter(self._tier_items), None)
        if (
            tier is not None
            and not self._tier_items
            and not any(isinstance(r.limit, Mapping) for r in self.rules)
        ):
            problems.append(
                ConfigProblem("tiers", "tier= is set but no tier has limits; pass tiers=", "code")
            )
        self._rule_items: list[dict[str, list[RateLimitItem]]] = []
        for rule in self.rules:
            per_tier = rule.limit if isinstance(rule.limit, Mapping) else {"": rule.limit}
            parsed: dict[str, list[RateLimitItem]] = {}
            for tier_name, text in per_tier.items():
                option = f"Rule({rule.name!r}).limit" + (f"[{tier_name!r}]" if tier_name else "")
                try:
                    parsed[tier_name] = parse_limits(text, option=option)
                except ConfigError as exc:
                    problems.extend(exc.errors)
            self._rule_items.append(parsed)
        try:
            self._exempt = path_matcher((*HEALTH_PATHS, *exempt_paths))
        except ValueError as exc:
            problems.append(ConfigProblem("exempt_paths", str(exc), "code"))
        if problems:
            raise ConfigError(problems)
        keys = set()
        for value in exempt_keys:
            keys.add(value)
            if ":" not in value or value.count(":") > 1:  # bare IPv4 / IPv6
                keys.add(f"ip:{value}")
        self.exempt_keys = frozenset(keys)
        self.limit_unmatched = limit_unmatched
        self.headers = headers
        self.legacy_headers = legacy_headers
        self.problem_json = problem_json
        self._watch = KeyWatch() if watch_keys and key is None else None
        self._trust: ProxyTrust = self._ip_key.trust  # type: ignore[attr-defined]
        # The common configuration (client-IP keys, no tier function, no per-rule keys)
        # needs no RequestInfo: the adapters call _check_ip with the raw request facts.
        self._ip_only = key is None and tier is None and all(r.key is None for r in self.rules)
        # Per rule, for _check_ip: (items without a tier function, cost, name).
        self._plain_rules = [
            (parsed.get("") or parsed.get(self.default_tier or ""), rule.cost, rule.name or "rule")
            for rule, parsed in zip(self.rules, self._rule_items, strict=True)
        ]
        self._rule_cache: dict[tuple[str, str], int] = {}

    def _tier_of(self, request: RequestInfo) -> str | None:
        if self.tier is None:
            return None
        try:
            name = self.tier(request)
        except Exception:
            logger.exception("the rate-limit tier function raised; using the default tier")
            name = None
        return name if name is not None else self.default_tier

    def _rule_index(self, method: str, path: str) -> int:
        """Index of the first rule covering ``method path`` (-1: none), memoised per route."""
        cache = self._rule_cache
        index = cache.get((method, path))
        if index is None:
            index = next((i for i, rule in enumerate(self.rules) if rule.matches(method, path)), -1)
            if len(cache) >= _RULE_CACHE_SIZE:
                cache.clear()  # many distinct paths (ids in URLs): start over, stay bounded
            cache[(method, path)] = index
        return index

    def _check_ip(
        self, method: str, path: str, peer: str | None, headers: list[tuple[bytes, bytes]]
    ) -> Check | None:
        """:meth:`check_for` for the client-IP-only configuration, without a RequestInfo."""
        if self._exempt(path):
            return None
        if self.rules and (index := self._rule_index(method.upper(), path)) >= 0:
            items, cost, name = self._plain_rules[index]
            if items is None:
                return None
        elif self.limit_unmatched:
            items, cost, name = self.limiter.default, 1, "default"
        else:
            return None
        identity = ip_key(client_ip(peer, headers, self._trust))
        if identity in self.exempt_keys:
            return None
        watch = self._watch
        if watch is not None and not watch.done:
            watch.observe(identity)
        return Check(f"{name}|{identity}", items, cost, name)

    def check_for(self, request: RequestInfo) -> Check | None:
        """The check for ``request``, or None when it is exempt or nothing limits it."""
        path = request.path
        if self._ip_only:
            return self._check_ip(request.method, path, request.peer, request.headers)
        if self._exempt(path):
            return None
        tier = self._tier_of(request)
        if self.rules and (index := self._rule_index(request.method.upper(), path)) >= 0:
            rule, parsed = self.rules[index], self._rule_items[index]
            items = parsed.get(tier or "") or parsed.get("") or parsed.get(self.default_tier or "")
            if items is None:
                return None
            return self._check(request, rule.key, items, rule.cost, rule.name or "rule")
        if not self.limit_unmatched:
            return None
        items = self._tier_items.get(tier or "") if tier else None
        if items is None and self.default_tier is not None and self.tier is not None:
            items = self._tier_items.get(self.default_tier)
        if items is None:
            items = self.limiter.default
        return self._check(request, None, items, 1, tier or "default")

    def _check(
        self,
        request: RequestInfo,
        key: KeyFunc | None,
        items: list[RateLimitItem],
        cost: int,
        name: str,
    ) -> Check | None:
        function = key or self.key
        try:
            identity = function(request)
        except Exception:
            logger.exception("the rate-limit key function raised; keying the request by its IP")
            identity = None
        if identity is None:
            # An API-key or user key function found nothing: count the client's address.
            identity = self._ip_key(request) or "ip:unknown"
        if identity in self.exempt_keys:
            return None
        if self._watch is not None:
            self._watch.observe(identity)
        return Check(f"{name}|{identity}", items, cost, name)

    def response_headers(self, result: RateLimitResult, check: Check) -> list[tuple[bytes, bytes]]:
        """Headers for a response to a limited request (empty when ``headers`` is off)."""
        if not self.headers or result.unavailable:
            return []
        return rate_limit_headers(result, name=check.name, legacy=self.legacy_headers)

    def refusal(
        self, result: RateLimitResult, check: Check
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body for a refused request (429 or, failing closed, 503)."""
        status, headers, body = deny_response(result, problem_json=self.problem_json)
        return status, headers + self.response_headers(result, check), body
