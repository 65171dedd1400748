"""Client IP and scheme behind proxies: only trusted hops count, garbage never crashes."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderkit._http import (
    ProxyTrust,
    access_client,
    client_ip,
    effective_scheme,
    header,
    header_list,
    mapping_headers,
    parse_ip,
)


def h(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in values.items()]


def test_no_trust_ignores_forwarded_headers() -> None:
    """Without configured trust the TCP peer is the client, whatever the headers claim."""
    headers = h(x_forwarded_for="6.6.6.6", x_forwarded_proto="https")
    assert client_ip("203.0.113.9", headers, ProxyTrust.none()) == "203.0.113.9"
    assert effective_scheme("http", "203.0.113.9", headers, ProxyTrust.none()) == "http"


def test_render_preset_keys_on_the_client_not_the_forged_left_entry() -> None:
    """On Render the header reads ``<forged...>, client, cloudflare-edge`` from a 10.x peer."""
    trust = ProxyTrust.render()
    headers = h(x_forwarded_for="1.1.1.1, 198.51.100.7, 172.70.1.2")
    assert client_ip("10.0.3.4", headers, trust) == "198.51.100.7"
    honest = h(x_forwarded_for="198.51.100.7, 172.70.1.2")
    assert client_ip("10.0.3.4", honest, trust) == "198.51.100.7"


def test_render_preset_ignores_headers_from_a_public_peer() -> None:
    """A request that reached the app without Render's private proxy cannot steer the key."""
    headers = h(x_forwarded_for="1.1.1.1, 2.2.2.2")
    assert client_ip("203.0.113.50", headers, ProxyTrust.render()) == "203.0.113.50"


def test_cidr_trust_walks_right_to_left_past_own_proxies() -> None:
    """With trusted networks and no hop count, the right-most untrusted address is the client."""
    trust = ProxyTrust(trusted_cidrs=("10.0.0.0/8",))
    headers = h(x_forwarded_for="6.6.6.6, 198.51.100.7, 10.1.1.1, 10.2.2.2")
    assert client_ip("10.0.0.1", headers, trust) == "198.51.100.7"


def test_fly_client_header_wins_when_valid() -> None:
    """Fly.io's ``Fly-Client-IP`` is used from a trusted peer; garbage falls back to XFF."""
    trust = ProxyTrust.fly()
    assert client_ip("172.16.0.2", h(fly_client_ip="198.51.100.1"), trust) == "198.51.100.1"
    headers = h(fly_client_ip="not-an-ip", x_forwarded_for="198.51.100.2")
    assert client_ip("172.16.0.2", headers, trust) == "198.51.100.2"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("1.2.3.4:5678", "1.2.3.4"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ('"1.2.3.4"', "1.2.3.4"),
        ("unknown", None),
        ("", None),
        ("[::1", None),
        ("999.1.1.1", None),
        ("a" * 500, None),
    ],
)
def test_parse_ip_accepts_proxy_forms_and_rejects_garbage(value: str, expected: str | None) -> None:
    """Addresses with ports, brackets and zones parse; anything else is None."""
    parsed = parse_ip(value)
    assert (str(parsed) if parsed else None) == expected


def test_garbage_at_the_client_position_uses_the_nearest_valid_hop() -> None:
    """A junk client entry never becomes a key; the trusted edge address is used instead."""
    trust = ProxyTrust.render()
    headers = h(x_forwarded_for="<script>, 172.70.1.2")
    assert client_ip("10.0.0.9", headers, trust) == "172.70.1.2"


def test_short_chain_and_missing_peer() -> None:
    """Fewer entries than hops falls back to the left-most; a unix socket peer is 'unknown'."""
    trust = ProxyTrust.render()
    assert client_ip("10.0.0.9", h(x_forwarded_for="198.51.100.7"), trust) == "198.51.100.7"
    assert client_ip(None, [], ProxyTrust.none()) == "unknown"
    assert client_ip("10.0.0.9", [], trust) == "10.0.0.9"


def test_huge_forwarded_chains_are_cut() -> None:
    """A 10,000-entry header costs a bounded walk and still yields the right hop."""
    chain = ", ".join(["6.6.6.6"] * 10_000 + ["198.51.100.7", "172.70.1.2"])
    assert client_ip("10.0.0.1", h(x_forwarded_for=chain), ProxyTrust.render()) == "198.51.100.7"


def test_multiple_forwarded_for_headers_are_joined_in_order() -> None:
    """Two X-Forwarded-For headers read as one comma list, first header first."""
    headers = [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-for", b"172.70.1.2")]
    assert client_ip("10.0.0.1", headers, ProxyTrust.render()) == "198.51.100.7"


@pytest.mark.parametrize(
    ("proto", "hops", "expected"),
    [
        ("https", 1, "https"),
        ("https, http", 1, "http"),
        ("https, http", 2, "https"),
        ("HTTPS", 1, "https"),
        ("https,http", 3, "https"),
        ("gopher", 1, "http"),
        ("", 1, "http"),
    ],
)
def test_forwarded_proto_follows_the_hop_rule(proto: str, hops: int, expected: str) -> None:
    """A comma list is read at the trusted hop; unknown values leave the scheme alone."""
    trust = ProxyTrust(hops=hops)
    assert effective_scheme("http", "10.0.0.1", h(x_forwarded_proto=proto), trust) == expected


def test_websocket_scheme_is_upgraded_too() -> None:
    """``ws`` behind a TLS-terminating proxy reads as ``wss``."""
    trust = ProxyTrust(hops=1)
    assert effective_scheme("ws", "10.0.0.1", h(x_forwarded_proto="https"), trust) == "wss"


def test_invalid_trust_configuration_is_rejected() -> None:
    """Negative hops and bad networks fail at construction with the option named."""
    with pytest.raises(ValueError, match="hops"):
        ProxyTrust(hops=-1)
    with pytest.raises(ValueError):
        ProxyTrust(trusted_cidrs=("not-a-network",))


def test_provider_presets() -> None:
    """Each provider maps to its preset; unknown providers trust nobody."""
    assert ProxyTrust.for_provider("render") == ProxyTrust.render()
    assert ProxyTrust.for_provider("heroku").hops == 1
    assert ProxyTrust.for_provider("local").enabled is False


def test_header_helpers_and_wsgi_environ() -> None:
    """Header lookups are exact-name; WSGI environ keys become ASGI-style pairs."""
    headers = [(b"x-a", b"1"), (b"x-b", b" 2 , ,3 ")]
    assert header(headers, b"x-a") == "1"
    assert header(headers, b"x-c") is None
    assert header_list(headers, b"x-b") == ["2", "3"]
    pairs = mapping_headers({"HTTP_X_FORWARDED_FOR": "1.2.3.4", "REMOTE_ADDR": "10.0.0.1"})
    assert pairs == [(b"x-forwarded-for", b"1.2.3.4")]


@given(st.text(max_size=300), st.sampled_from(["10.0.0.1", "203.0.113.1", None]))
def test_client_ip_never_raises_and_returns_an_address_or_unknown(
    forwarded: str, peer: str | None
) -> None:
    """Any header text gives a parseable address (or 'unknown' with no peer), never an error."""
    headers = [(b"x-forwarded-for", forwarded.encode("utf-8", "replace"))]
    trusts = (ProxyTrust.render(), ProxyTrust(hops=1), ProxyTrust(trusted_cidrs=("10.0.0.0/8",)))
    for trust in trusts:
        result = client_ip(peer, headers, trust)
        assert result == "unknown" or ipaddress.ip_address(result)


@pytest.mark.parametrize(
    ("trust", "peer", "forwarded", "expected"),
    [
        # A private-network neighbour on Render writing the header itself.
        (ProxyTrust.render(), "10.0.5.6", "127.0.0.1", "10.0.5.6"),
        (ProxyTrust.render(), "10.0.5.6", "::1, 198.51.100.7", "10.0.5.6"),
        (ProxyTrust.render(), "10.0.5.6", "::ffff:127.0.0.1, 198.51.100.7", "10.0.5.6"),
        (ProxyTrust.render(), "10.0.5.6", "0.0.0.0, 198.51.100.7", "10.0.5.6"),
        (ProxyTrust.render(), "10.0.5.6", "198.51.100.7", "10.0.5.6"),
        # What Render's proxy really sends: the client stays the client.
        (ProxyTrust.render(), "10.0.5.6", "127.0.0.1, 198.51.100.7, 172.70.1.2", "198.51.100.7"),
        (ProxyTrust.render(), "10.0.5.6", "198.51.100.7, 172.70.1.2, 10.9.0.1", "198.51.100.7"),
        (ProxyTrust.heroku(), "10.0.5.6", "::1", "10.0.5.6"),
        (ProxyTrust.none(), "203.0.113.5", "127.0.0.1", "203.0.113.5"),
        (ProxyTrust.none(), "127.0.0.1", "203.0.113.1", "unknown"),
        (ProxyTrust.render(), None, "127.0.0.1", "unknown"),
    ],
)
def test_access_client_never_takes_a_forgeable_entry(
    trust: ProxyTrust, peer: str | None, forwarded: str, expected: str
) -> None:
    """For access decisions a short chain or a forwarded loopback yields the TCP peer."""
    assert access_client(peer, h(x_forwarded_for=forwarded), trust) == expected


def test_access_client_rejects_a_forged_loopback_client_header() -> None:
    """Fly-Client-IP: 127.0.0.1 from a private neighbour is not loopback."""
    trust = ProxyTrust.fly()
    assert access_client("172.16.0.9", h(fly_client_ip="127.0.0.1"), trust) == "172.16.0.9"
    assert access_client("172.16.0.9", h(fly_client_ip="198.51.100.1"), trust) == "198.51.100.1"


@pytest.mark.parametrize("trust", [ProxyTrust.none(), ProxyTrust.render(), ProxyTrust.fly()])
@pytest.mark.parametrize(
    "headers",
    [
        {"x_forwarded_for": "127.0.0.1"},
        {"x_forwarded_for": "::1, 198.51.100.7"},
        {"forwarded": "for=127.0.0.1"},
        {"x_real_ip": "127.0.0.1"},
    ],
)
def test_a_loopback_peer_with_forwarding_headers_is_not_loopback(
    trust: ProxyTrust, headers: dict[str, str]
) -> None:
    """uvicorn --proxy-headers with FORWARDED_ALLOW_IPS=* turns a forged header into a loopback
    peer; a peer that came with forwarding headers is therefore never taken for loopback."""
    assert access_client("127.0.0.1", h(**headers), trust) in ("unknown", "198.51.100.7")
    assert access_client("127.0.0.1", [], trust) == "127.0.0.1"
