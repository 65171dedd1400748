"""Coverage-guided fuzzing (atheris/libFuzzer) of every parser that reads outside input.

Run by hand, not by pytest (the file name does not start with ``test_``)::

    .venv/bin/pip install atheris
    .venv/bin/python tests/fuzz/atheris_parsers.py -runs=200000        # or -max_total_time=60

One input drives one parser, chosen by its first byte; the rest becomes header bytes or an env
value. Each call checks the same invariant as the hypothesis tests in this folder and raises
AssertionError (which libFuzzer reports with the crashing input) when it is broken.
"""

from __future__ import annotations

import ipaddress
import re
import sys

import atheris

with atheris.instrument_imports():
    from renderkit import config
    from renderkit._http import ProxyTrust, client_ip, effective_scheme, parse_ip
    from renderkit.cache._serde import CorruptValue, Serializer
    from renderkit.correlation import CorrelationId

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~/:=@]{1,128}")
_TRUSTS = (ProxyTrust.render(), ProxyTrust.heroku(), ProxyTrust.fly(), ProxyTrust(hops=3))
_POLICY = CorrelationId()
_CODEC = Serializer()
_ENV_PARSERS = (
    config.parse_bool,
    config.parse_int,
    config.parse_float,
    config.parse_duration,
    config.parse_bytes,
    config.parse_list,
    config.parse_postgres_url,
    config.parse_redis_url,
)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _headers(data: bytes) -> list[tuple[bytes, bytes]]:
    names = (b"x-forwarded-for", b"x-forwarded-proto", b"fly-client-ip", b"x-request-id")
    return [(names[i % len(names)], part) for i, part in enumerate(data.split(b"\n")[:8])]


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    selector, body = data[0] % 4, data[1:]
    if selector == 0:
        headers = _headers(body)
        for trust in _TRUSTS:
            ip = client_ip("10.0.0.1", headers, trust)
            assert _is_address(ip) or ip == "10.0.0.1", ip
            assert effective_scheme("http", "10.0.0.1", headers, trust) in ("http", "https")
    elif selector == 1:
        value = _POLICY.resolve([*_headers(body), (b"traceparent", body)])
        assert _TOKEN.fullmatch(value), value
        text = body.decode("latin-1")
        address = parse_ip(text)
        assert address is None or _is_address(str(address))
    elif selector == 2:
        try:
            _CODEC.loads(body)
        except CorruptValue:
            pass
    else:
        parser = _ENV_PARSERS[body[0] % len(_ENV_PARSERS)] if body else config.parse_bool
        text = body[1:].decode("utf-8", "surrogateescape")
        try:
            parser(text)
        except ValueError:
            pass


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
