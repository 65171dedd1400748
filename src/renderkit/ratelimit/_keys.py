"""Who a request counts against: key functions over a framework-free request view."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from renderkit._http import PRIVATE_NETWORKS, ProxyTrust, client_ip, header

__all__ = ["KeyFunc", "RequestInfo", "api_key", "client_ip_key", "first_of", "session_user"]

logger = logging.getLogger("renderkit.ratelimit")

MAX_KEY_LENGTH = 200
"""Keys longer than this are hashed, so a huge header never becomes a huge Redis key."""


@dataclass(slots=True)
class RequestInfo:
    """The request facts a key function or rule sees (built by the ASGI and WSGI adapters).

    ``peer`` is the TCP peer address (None on a unix socket); ``headers`` are lower-case
    ASGI-style byte pairs; ``session`` is the request's session mapping when one is loaded;
    ``native`` the framework's own object (ASGI scope or WSGI environ). ``route`` is the
    matched route template (``"/users/{id}"``) when the adapter knows it, else None;
    ``limits`` the route's own limits (from ``@limit`` or ``RateLimit``) the adapter found.
    """

    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    peer: str | None
    session: Mapping[str, Any] | None = None
    native: Any = field(default=None, repr=False)
    route: str | None = None
    limits: tuple[Any, ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        return header(self.headers, name.lower().encode("latin-1"))


KeyFunc = Callable[[RequestInfo], "str | None"]
"""A key function: the identity to count a request against, or None to fall through."""


def _bounded(prefix: str, value: str) -> str:
    if len(value) > MAX_KEY_LENGTH or not value.isprintable():
        value = "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]
    return f"{prefix}:{value}"


@functools.lru_cache(maxsize=4096)
def ip_key(address: str) -> str:
    """The counting key for one client address string (as :func:`client_ip` returns it).

    IPv4 as is, IPv4-mapped IPv6 as its IPv4 form, other IPv6 as its /64 network, anything
    that is not an address hashed under ``ip:`` (never a raw huge or unprintable value).
    Pure, so it is memoised: parsing an address costs more than the rest of a check.
    """
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return _bounded("ip", address or "unknown")
    if parsed.version == 6:
        mapped = parsed.ipv4_mapped
        if mapped is not None:
            return f"ip:{mapped}"
        return f"ip:{ipaddress.ip_network(f'{parsed}/64', strict=False)}"
    return f"ip:{parsed}"


def client_ip_key(trust: ProxyTrust | None = None) -> KeyFunc:
    """Key by client address behind ``trust``'s proxies (default: none trusted: the TCP peer).

    Uses :func:`renderkit._http.client_ip`: only entries appended by trusted proxies count,
    never the forgeable left-most ``X-Forwarded-For`` value. IPv6 clients are keyed by their
    /64 network (one host usually owns a whole /64). A unix-socket request with no trusted
    header is keyed ``ip:unknown``.
    """
    chosen = trust if trust is not None else ProxyTrust.none()

    def key(request: RequestInfo) -> str:
        return ip_key(client_ip(request.peer, request.headers, chosen))

    key.trust = chosen  # type: ignore[attr-defined]
    return key


def api_key(header_name: str = "X-API-Key", *, prefix: str | None = None) -> KeyFunc:
    """Key by an API key header (stored hashed: the secret never reaches Redis or logs).

    With ``prefix`` (``"Bearer "``) the header must start with it. Returns None when the
    header is absent, so a chain falls through to the next key function.
    """
    name = header_name.lower().encode("latin-1")

    def key(request: RequestInfo) -> str | None:
        value = header(request.headers, name)
        if value is None:
            return None
        if prefix is not None:
            if not value.startswith(prefix):
                return None
            value = value[len(prefix) :]
        value = value.strip()
        if not value:
            return None
        return "key:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]

    return key


def session_user(field_name: str = "user_id") -> KeyFunc:
    """Key by the signed-in user found at ``session[field_name]`` (None when anonymous)."""

    def key(request: RequestInfo) -> str | None:
        session = request.session
        if session is None:
            return None
        try:
            value = session.get(field_name)
        except Exception:  # a lazily loaded session whose store is down: anonymous
            return None
        if value is None or value == "":
            return None
        return _bounded("user", str(value))

    return key


def first_of(*functions: KeyFunc) -> KeyFunc:
    """Try key functions in order; the first non-None key wins (else the last's fallback)."""

    def key(request: RequestInfo) -> str | None:
        for function in functions:
            value = function(request)
            if value is not None:
                return value
        return None

    return key


class KeyWatch:
    """Warn once when every request so far was keyed to the same private address.

    That pattern means the app sits behind a proxy it does not trust: every client shares one
    quota. Checks the first ``sample`` requests only, then costs nothing.
    """

    def __init__(self, sample: int = 50) -> None:
        self.sample = sample
        self._seen = 0
        self._first: str | None = None
        self._done = False

    @property
    def done(self) -> bool:
        """True once the sample is checked: :meth:`observe` does nothing any more."""
        return self._done

    def observe(self, key: str) -> None:
        if self._done:
            return
        if self._first is None:
            self._first = key
        elif key != self._first:
            self._done = True
            return
        self._seen += 1
        if self._seen < self.sample:
            return
        self._done = True
        if not key.startswith("ip:"):
            return
        try:
            address = ipaddress.ip_network(key[3:], strict=False).network_address
        except ValueError:
            return
        if address.is_loopback:
            return  # a local run (uvicorn on 127.0.0.1): one client, no proxy to distrust
        if any(address.version == n.version and address in n for n in PRIVATE_NETWORKS):
            logger.warning(
                "rate limiting keyed the last %d requests to the same private address %s: the "
                "app is behind a proxy it does not trust, so all clients share one quota. "
                "Set RATELIMIT_TRUSTED_HOPS (2 on Render: Cloudflare and Render's proxy) and "
                "RATELIMIT_TRUSTED_CIDRS (the proxies' networks), or pass "
                "trust=ProxyTrust.render() (or your platform's preset) to the policy",
                self._seen,
                key[3:],
            )
