"""Property tests for rate-limit strings and key functions over hostile request data."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

pytest.importorskip("limits")
pytest.importorskip("renderkit.ratelimit")

from renderkit._http import ProxyTrust
from renderkit.errors import ConfigError
from renderkit.ratelimit import parse_limits
from renderkit.ratelimit._keys import (
    MAX_KEY_LENGTH,
    RequestInfo,
    api_key,
    client_ip_key,
    session_user,
)

FUZZ = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])

LIMITISH = st.from_regex(
    r"\s*-?[0-9]{0,12}\s*(/|per| per )\s*[0-9]{0,3}\s*(second|minute|hour|day|month|year|x)?s?"
    r"(\s*;\s*[0-9]{1,4}/(minute|hour))?\s*",
    fullmatch=True,
)


@FUZZ
@given(st.one_of(st.text(max_size=80), LIMITISH, st.lists(LIMITISH, min_size=1, max_size=3)))
@example("0/minute")
@example("100/hour;")
@example("")
@example("1/0 seconds")
@example("99999999999999999999/second")
def test_limit_strings_parse_to_positive_quotas_or_raise_configerror(value: object) -> None:
    """parse_limits returns items with a positive amount and window, or raises ConfigError."""
    try:
        items = parse_limits(value)  # type: ignore[arg-type]
    except ConfigError as exc:
        assert exc.errors and all(p.variable == "limit" for p in exc.errors)
        return
    assert items
    for item in items:
        assert item.amount >= 1
        assert item.get_expiry() >= 1


HEADERS = st.lists(
    st.tuples(
        st.sampled_from([b"x-forwarded-for", b"fly-client-ip", b"x-api-key", b"authorization"]),
        st.one_of(
            st.binary(max_size=300),
            st.lists(st.ip_addresses().map(str), max_size=5).map(lambda x: ",".join(x).encode()),
        ),
    ),
    max_size=4,
)
PEERS = st.one_of(st.none(), st.ip_addresses().map(str), st.text(max_size=30))
TRUSTS = st.sampled_from([None, ProxyTrust.render(), ProxyTrust.fly(), ProxyTrust.heroku()])


@FUZZ
@given(PEERS, HEADERS, TRUSTS)
def test_client_ip_key_is_bounded_and_printable(
    peer: str | None, headers: list[tuple[bytes, bytes]], trust: ProxyTrust | None
) -> None:
    """The IP key is ``ip:`` plus an address, a /64, or a bounded printable fallback."""
    key = client_ip_key(trust)(RequestInfo("GET", "/", headers, peer))
    assert key.startswith("ip:")
    assert len(key) <= len("ip:") + MAX_KEY_LENGTH and key.isprintable()


@FUZZ
@given(HEADERS, st.sampled_from([None, "Bearer "]))
def test_api_key_never_stores_the_secret(
    headers: list[tuple[bytes, bytes]], prefix: str | None
) -> None:
    """An API key becomes ``key:`` and 32 hex characters, or None; never the raw header."""
    key = api_key("X-API-Key", prefix=prefix)(RequestInfo("GET", "/", headers, "1.2.3.4"))
    assert key is None or re.fullmatch(r"key:[0-9a-f]{32}", key)


@FUZZ
@given(st.one_of(st.none(), st.text(max_size=400), st.integers(), st.binary(max_size=20)))
@example("\ud800")
@example("x" * 1000)
def test_session_user_key_is_bounded_and_printable(user: object) -> None:
    """Whatever sits in the session, the user key is short and printable, or None."""
    key = session_user()(RequestInfo("GET", "/", [], None, session={"user_id": user}))
    if key is not None:
        assert key.startswith("user:") and len(key) <= 5 + MAX_KEY_LENGTH and key.isprintable()


def test_an_empty_list_of_limits_is_refused_at_construction() -> None:
    """An empty limit list is a configuration error, not a crash at the first request."""
    from renderkit.ratelimit import RateLimiter

    with pytest.raises(ConfigError):
        RateLimiter("memory://", default=[])
