"""Property tests for the edge parsers: request ids, traceparent, forwarding headers, CSP."""

from __future__ import annotations

import ipaddress
import re
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from renderkit._http import ProxyTrust, client_ip, effective_scheme, header_list, parse_ip
from renderkit.correlation import DEFAULT_MAX_LENGTH, CorrelationId, is_valid_request_id
from renderkit.security import NONCE, SecurityHeaders

FUZZ = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

TOKEN_ID = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~/:=@]+")
HEADER_BYTES = st.binary(max_size=300)
LATIN1 = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=200)
ADDRESSES = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=4).map(lambda a: f"{a}:{1234}"),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]:443"),
    st.sampled_from(
        ["unknown", "", " ", "_", "[::1", "1.2.3.4:x", "::ffff:1.2.3.4", "fe80::1%eth0"]
    ),
    st.text(max_size=40),
)
TRUSTS = st.sampled_from(
    [
        ProxyTrust.none(),
        ProxyTrust.render(),
        ProxyTrust.heroku(),
        ProxyTrust.fly(),
        ProxyTrust(hops=3),
        ProxyTrust(trusted_cidrs=("10.0.0.0/8", "::1/128")),
    ]
)


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _headers(name: bytes) -> st.SearchStrategy[list[tuple[bytes, bytes]]]:
    forwarded = st.lists(ADDRESSES, max_size=40).map(lambda xs: ", ".join(xs).encode("utf-8"))
    value = st.one_of(forwarded, HEADER_BYTES)
    other = st.tuples(st.sampled_from([b"host", b"x-forwarded-for", name]), value)
    return st.lists(st.one_of(st.tuples(st.just(name), value), other), max_size=4)


@FUZZ
@given(st.text(max_size=300))
@example("a" * DEFAULT_MAX_LENGTH)
@example("a" * (DEFAULT_MAX_LENGTH + 1))
@example("abc\r\nSet-Cookie: x=1")
@example("id\x00")
def test_request_id_validation_accepts_only_short_token_ids(value: str) -> None:
    """An accepted request id is 1..128 token characters: safe in a header and a log line."""
    ok = is_valid_request_id(value)
    assert ok == (bool(TOKEN_ID.fullmatch(value)) and len(value) <= DEFAULT_MAX_LENGTH)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from([b"x-request-id", b"x-correlation-id", b"traceparent", b"other"]),
            st.one_of(HEADER_BYTES, st.text(max_size=200).map(lambda t: t.encode())),
        ),
        max_size=5,
    ),
    st.integers(min_value=1, max_value=200),
)
def test_resolved_request_id_is_always_safe_to_echo(
    headers: list[tuple[bytes, bytes]], max_length: int
) -> None:
    """Whatever the incoming headers, the id echoed is printable token chars within the limit."""
    policy = CorrelationId(max_length=max_length)
    value = policy.resolve(headers)
    assert TOKEN_ID.fullmatch(value), value
    # A generated id is a 32-hex uuid, even when max_length is shorter; an accepted one fits.
    assert len(value) <= max(max_length, 32)
    value.encode("latin-1")


@FUZZ
@given(st.text(max_size=120))
@example("00-" + "a" * 32 + "-" + "b" * 16 + "-01")
@example("00-" + "0" * 32 + "-" + "b" * 16 + "-01")
@example("ff-" + "a" * 32 + "-" + "b" * 16 + "-01")
def test_traceparent_yields_a_32_hex_trace_id_or_a_fresh_id(text: str) -> None:
    """A traceparent becomes its non-zero 32-hex trace id only when it is valid W3C version 00."""
    policy = CorrelationId(incoming=("traceparent",), generator=lambda: "generated")
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raw = text.encode("utf-8")
    value = policy.resolve([(b"traceparent", raw)])
    valid = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}", text.strip())
    if valid and valid.group(1) != "0" * 32 and valid.group(2) != "0" * 16 and text.isascii():
        assert value == valid.group(1)
    else:
        assert value == "generated"


@FUZZ
@given(st.one_of(ADDRESSES, st.text(alphabet=string.printable, max_size=80)))
def test_parse_ip_returns_an_address_or_none(value: str) -> None:
    """parse_ip never raises and returns an ip_address or None."""
    result = parse_ip(value)
    assert result is None or isinstance(result, ipaddress.IPv4Address | ipaddress.IPv6Address)


@FUZZ
@given(st.one_of(st.none(), ADDRESSES), _headers(b"fly-client-ip"), TRUSTS)
@example("10.0.0.1", [(b"x-forwarded-for", b"1.1.1.1, 2.2.2.2")], ProxyTrust.render())
@example("10.0.0.1", [(b"x-forwarded-for", b"\xff\xfe, 2.2.2.2")], ProxyTrust.render())
@example("10.0.0.1", [(b"x-forwarded-for", b",,,,")], ProxyTrust.heroku())
def test_client_ip_is_an_address_the_peer_or_unknown(
    peer: str | None, headers: list[tuple[bytes, bytes]], trust: ProxyTrust
) -> None:
    """client_ip never raises; it returns a parsed address, the untouched peer, or "unknown"."""
    result = client_ip(peer, headers, trust)
    assert _is_address(result) or result == (peer or "unknown")
    if not trust.enabled:
        assert result == (peer or "unknown")
    if _is_address(result) and result != peer:
        # A forwarded address must come from a header the app was told to trust.
        seen = " ".join(v.decode("latin-1") for _, v in headers)
        assert trust.trusts_peer(peer)
        assert seen  # it came from somewhere


@FUZZ
@given(
    st.sampled_from(["http", "https", "ws", "wss"]),
    st.one_of(st.none(), ADDRESSES),
    st.lists(
        st.tuples(
            st.just(b"x-forwarded-proto"),
            st.one_of(
                HEADER_BYTES,
                st.lists(
                    st.sampled_from(["http", "https", "HTTPS", " ", "ftp", ""]), max_size=5
                ).map(lambda xs: ",".join(xs).encode()),
            ),
        ),
        max_size=3,
    ),
    TRUSTS,
)
def test_effective_scheme_is_always_a_known_scheme(
    scheme: str, peer: str | None, headers: list[tuple[bytes, bytes]], trust: ProxyTrust
) -> None:
    """effective_scheme returns http/https (ws/wss for websockets), never header text."""
    result = effective_scheme(scheme, peer, headers, trust)
    if scheme in ("ws", "wss"):
        assert result in ("ws", "wss")
    else:
        assert result in ("http", "https")
    if not trust.trusts_peer(peer):
        assert result == scheme


@FUZZ
@given(st.lists(st.tuples(st.sampled_from([b"a", b"b"]), HEADER_BYTES), max_size=5))
def test_header_list_items_are_stripped_and_non_empty(headers: list[tuple[bytes, bytes]]) -> None:
    """header_list never raises on any bytes and never yields an empty or padded item."""
    for item in header_list(headers, b"a"):
        assert item and item == item.strip() and "," not in item


DIRECTIVES = st.one_of(
    st.sampled_from(["default-src", "script-src", "img-src", "report-sample"]), st.text(max_size=12)
)
SOURCES = st.lists(
    st.one_of(st.sampled_from(["'self'", "'none'", NONCE, "https:", "data:"]), LATIN1),
    max_size=4,
)


@FUZZ
@given(
    st.one_of(st.dictionaries(DIRECTIVES, SOURCES, max_size=4), LATIN1, st.none()),
    st.one_of(st.none(), LATIN1, st.just("https://r.example/csp")),
    st.one_of(st.none(), st.just("https://r.example/rt"), LATIN1),
)
@example(None, None, "https://r.example/x\r\nSet-Cookie: a=b")
@example({"default-src": ["'self'"]}, "https://r.example/csp\r\nX-Evil: 1", None)
@example("default-src 'self'\x00", None, None)
def test_csp_building_raises_valueerror_or_renders_a_safe_header(
    csp: dict[str, list[str]] | str | None, report_uri: str | None, report_to: str | None
) -> None:
    """SecurityHeaders either refuses the options with ValueError or renders header values
    with no CR, LF or NUL, whose nonce placeholder is replaced on every response."""
    try:
        policy = SecurityHeaders(csp=csp, report_uri=report_uri, report_to=report_to)
    except ValueError as exc:
        assert str(exc).startswith("SecurityHeaders: ")
        return
    nonce = policy.new_nonce()
    value = policy.csp_value(nonce)
    values = [v for _, v in policy.static_headers] + ([value] if value is not None else [])
    for raw in values:
        assert not re.search(rb"[\r\n\x00]", raw), raw
    if value is not None:
        assert NONCE.encode() not in value or not policy.uses_nonce
        if nonce is not None:
            assert f"'nonce-{nonce}'".encode() in value


@pytest.mark.parametrize("length", [1, 64, 128])
def test_request_id_limit_is_enforced_at_every_length(length: int) -> None:
    """The charset-and-length rule counts characters exactly at the boundary."""
    assert is_valid_request_id("x" * length, max_length=length)
    assert not is_valid_request_id("x" * (length + 1), max_length=length)
