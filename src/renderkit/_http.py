"""Request facts every HTTP concern needs, computed one way: headers, client IP, scheme.

Pure functions over plain values, so ASGI and WSGI adapters share them. Nothing here trusts a
forwarding header unless the app said which proxies to trust (:class:`ProxyTrust`).

The rule for ``X-Forwarded-For`` (and ``X-Forwarded-Proto`` lists): each trusted proxy appends
the address it saw, so the right-most ``hops`` entries were written by proxies the app trusts and
the client is the entry ``hops`` from the right. Entries further left were sent by the client and
can be forged. With ``trusted_cidrs`` instead, the client is the right-most entry that is not a
trusted proxy address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "PRIVATE_NETWORKS",
    "ProxyTrust",
    "access_client",
    "client_ip",
    "effective_scheme",
    "header",
    "header_list",
    "network_list",
    "parse_ip",
    "parse_networks",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)

MAX_FORWARDED_ENTRIES = 32
"""Longer X-Forwarded-For chains are cut to their right-most entries (huge headers are hostile)."""


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """Return the first value of header ``name`` (lower-case bytes) from ASGI-style headers."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def header_list(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """Return the comma-separated items of every ``name`` header, in order, stripped, non-empty."""
    items: list[str] = []
    for key, value in headers:
        if key == name:
            for item in value.decode("latin-1").split(","):
                item = item.strip()
                if item:
                    items.append(item)
    return items


def parse_ip(value: str) -> IPAddress | None:
    """Parse an address as proxies write it (``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80``, ``::1``).

    Returns None for anything else, so garbage never becomes a key.
    """
    value = value.strip().strip('"')
    if not value or len(value) > 64:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return None
        value = value[1:end]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.split(":", 1)[0]
    if "%" in value:  # scoped IPv6 (fe80::1%eth0)
        value = value.split("%", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def parse_networks(items: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """CIDR networks from options (``10.0.0.0/8``; a bare address is its own /32 or /128).

    Raises ``ValueError`` (ipaddress's own, naming the bad item) for anything else.
    """
    return tuple(
        n
        if isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network)
        else ipaddress.ip_network(n, strict=False)
        for n in items
    )


def network_list(items: list[str]) -> list[str]:
    """``env(validate=...)`` for a list of CIDRs; the error never repeats the value."""
    try:
        parse_networks(items)
    except ValueError:
        raise ValueError(
            "each item must be a network in CIDR form; use a comma-separated list such as "
            "10.0.0.0/8,127.0.0.1"
        ) from None
    return items


_PEER_CACHE_SIZE = 256


def _in(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


@dataclass(frozen=True, slots=True)
class ProxyTrust:
    """Which proxies in front of the app may tell it the client's address and scheme.

    ``hops``: how many proxies append to ``X-Forwarded-For`` between the client and the app.
    ``trusted_cidrs``: networks the proxies live in; the peer must be in one of them for any
    forwarding header to count (empty = any peer, when ``hops`` > 0).
    ``client_header``: a header a trusted edge sets to the client address (``fly-client-ip``),
    used before ``X-Forwarded-For`` when the peer is trusted.
    """

    hops: int = 0
    trusted_cidrs: tuple[IPNetwork, ...] = ()
    client_header: str | None = None
    _client_header_bytes: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _enabled: bool = field(default=False, init=False, repr=False, compare=False)
    # peer -> trusted? Parsing an address and testing it against the networks costs about
    # 2 µs; the peers in front of an app are a handful of proxies, so remember the answer.
    _peer_cache: dict[str | None, bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.hops < 0:
            raise ValueError(f"ProxyTrust(hops={self.hops}): hops must be 0 or more")
        object.__setattr__(self, "trusted_cidrs", parse_networks(self.trusted_cidrs))
        if self.client_header:
            object.__setattr__(
                self, "_client_header_bytes", self.client_header.lower().encode("latin-1")
            )
        enabled = self.hops > 0 or bool(self.trusted_cidrs) or self.client_header is not None
        object.__setattr__(self, "_enabled", enabled)  # asked on every request

    @property
    def enabled(self) -> bool:
        """True when some forwarding header may be believed."""
        return self._enabled

    @classmethod
    def none(cls) -> ProxyTrust:
        """Trust no proxy: the client is the TCP peer (the safe default off a PaaS)."""
        return cls()

    @classmethod
    def render(cls) -> ProxyTrust:
        """Render: Cloudflare's edge, then Render's proxy (a private 10.x peer).

        Render's proxy receives ``X-Forwarded-For: <what the client sent>, <client>`` from
        Cloudflare and appends the Cloudflare edge address, so the client is 2 hops from the
        right and anything further left is forgeable.
        """
        return cls(hops=2, trusted_cidrs=PRIVATE_NETWORKS)

    @classmethod
    def heroku(cls) -> ProxyTrust:
        """Heroku's router appends the client address: one hop."""
        return cls(hops=1)

    @classmethod
    def fly(cls) -> ProxyTrust:
        """Fly.io's proxy sets ``Fly-Client-IP`` and appends one ``X-Forwarded-For`` hop."""
        return cls(hops=1, trusted_cidrs=PRIVATE_NETWORKS, client_header="fly-client-ip")

    @classmethod
    def for_provider(cls, provider: str) -> ProxyTrust:
        """Return the preset for a ``renderkit.platform`` provider name (none when unknown)."""
        presets = {
            "render": cls.render,
            "heroku": cls.heroku,
            "fly": cls.fly,
            "railway": cls.heroku,
            "cloud_run": cls.heroku,
        }
        return presets.get(provider, cls.none)()

    def trusts_peer(self, peer: str | None) -> bool:
        """True when the TCP peer is a proxy whose forwarding headers count."""
        if not self._enabled:
            return False
        if not self.trusted_cidrs:
            return True
        cache = self._peer_cache
        trusted = cache.get(peer)
        if trusted is None:
            address = parse_ip(peer) if peer else None
            trusted = address is not None and _in(address, self.trusted_cidrs)
            if len(cache) >= _PEER_CACHE_SIZE:  # many distinct peers: no proxy in front
                cache.clear()
            cache[peer] = trusted
        return trusted


def client_ip(peer: str | None, headers: Iterable[tuple[bytes, bytes]], trust: ProxyTrust) -> str:
    """Return the client's address as a string, never raising.

    ``peer`` is the TCP peer (``scope["client"][0]``; None on a unix socket, which yields
    ``"unknown"`` unless a trusted header says otherwise).
    """
    fallback = peer or "unknown"
    if not trust.trusts_peer(peer):
        return fallback
    headers = list(headers) if not isinstance(headers, list) else headers
    if trust._client_header_bytes is not None:
        value = header(headers, trust._client_header_bytes)
        address = parse_ip(value) if value else None
        if address is not None:
            return str(address)
    chain = header_list(headers, b"x-forwarded-for")[-MAX_FORWARDED_ENTRIES:]
    if not chain:
        return fallback
    if trust.trusted_cidrs and trust.hops == 0:
        # Right to left, skip our own proxies; the first other address is the client.
        for entry in reversed(chain):
            address = parse_ip(entry)
            if address is None:
                return fallback
            if not _in(address, trust.trusted_cidrs):
                return str(address)
        return fallback
    if trust.trusted_cidrs:
        # Some proxies also append their own internal hop (Render: "client, edge, 10.x";
        # arcjet/arcjet-js#5411). A client cannot forge a right-most entry, so drop trailing
        # addresses inside the trusted networks before counting hops.
        while len(chain) > 1:
            tail = parse_ip(chain[-1])
            if tail is None or not _in(tail, trust.trusted_cidrs):
                break
            chain = chain[:-1]
    hops = trust.hops or 1
    if len(chain) < hops:
        # Fewer entries than proxies: the request skipped the edge; believe nobody further.
        address = parse_ip(chain[0])
        return str(address) if address is not None else fallback
    address = parse_ip(chain[-hops])
    if address is not None:
        return str(address)
    # The entry where the client should be is garbage: use the nearest valid one to its right.
    for entry in chain[len(chain) - hops + 1 :]:
        address = parse_ip(entry)
        if address is not None:
            return str(address)
    return fallback


_FORWARDING = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})


def access_client(
    peer: str | None, headers: Iterable[tuple[bytes, bytes]], trust: ProxyTrust
) -> str:
    """Return the client address to base an *access* decision on (who may see what).

    :func:`client_ip` is right for keys and logs, where a wrong guess costs little. For access
    the answer must never be an entry the sender could have written itself, so this returns the
    TCP peer (``"unknown"`` without one) instead of a forwarded address when:

    - the chain is shorter than the trusted hops: the request skipped part of the proxy path,
      so what stands in the header is the peer's word (a private-network neighbour on Render
      sending ``X-Forwarded-For: 127.0.0.1``);
    - the forwarded address is loopback or unspecified: a proxy never forwards a connection
      from this machine's own loopback (``::1, <public>`` sent by that neighbour).

    And a loopback peer that sent forwarding headers yields ``"unknown"``, not loopback: the
    server in front rewrote the client from a forgeable header, or a local proxy relays a
    remote caller.
    """
    fallback = peer or "unknown"
    headers = list(headers) if not isinstance(headers, list) else headers
    if _is_loopback(peer) and any(
        key in _FORWARDING or key == trust._client_header_bytes for key, _ in headers
    ):
        # A loopback peer with forwarding headers is a server that rewrote the client from
        # them (uvicorn --proxy-headers with FORWARDED_ALLOW_IPS=*) or a local proxy relaying
        # someone else: either way the caller is not this machine.
        fallback = "unknown"
    if not trust.trusts_peer(peer):
        return fallback
    if trust._client_header_bytes is None and trust.hops > 1:
        chain = header_list(headers, b"x-forwarded-for")[-MAX_FORWARDED_ENTRIES:]
        while len(chain) > 1 and trust.trusted_cidrs:
            tail = parse_ip(chain[-1])
            if tail is None or not _in(tail, trust.trusted_cidrs):
                break
            chain = chain[:-1]
        if chain and len(chain) < trust.hops:
            return fallback
    client = client_ip(peer, headers, trust)
    if client == fallback:
        return fallback
    if _is_loopback(client):
        return fallback
    return client


def _is_loopback(value: str | None) -> bool:
    """True for loopback and unspecified addresses (``::ffff:127.0.0.1`` included)."""
    address = parse_ip(value) if value else None
    if address is None:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return any(a.is_loopback or a.is_unspecified for a in (address, mapped) if a)


def effective_scheme(
    scheme: str, peer: str | None, headers: Iterable[tuple[bytes, bytes]], trust: ProxyTrust
) -> str:
    """Return ``"https"`` or ``"http"`` (or the ws twins) as the client used it.

    ``X-Forwarded-Proto`` counts only from a trusted peer. A list (``"https, http"``) is read with
    the same hop rule as ``X-Forwarded-For``: the entry ``hops`` from the right, or the left-most
    when the list is shorter. Values other than http/https are ignored.
    """
    if not trust.trusts_peer(peer):
        return scheme
    values = header_list(headers, b"x-forwarded-proto")
    if not values:
        return scheme
    hops = trust.hops or 1  # hops is never negative (ProxyTrust checks)
    chosen = values[-hops] if len(values) >= hops else values[0]
    chosen = chosen.lower()
    if chosen not in ("http", "https"):
        return scheme
    if scheme in ("ws", "wss"):
        return "wss" if chosen == "https" else "ws"
    return chosen


def mapping_headers(environ: Mapping[str, object]) -> list[tuple[bytes, bytes]]:
    """Turn a WSGI environ's ``HTTP_*`` keys into ASGI-style lower-case header pairs."""
    pairs: list[tuple[bytes, bytes]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            name = key[5:].replace("_", "-").lower().encode("latin-1")
            pairs.append((name, value.encode("latin-1", "replace")))
    return pairs
