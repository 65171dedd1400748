"""The cheap per-request paths of sessions: verified-cookie memo, one HMAC, the JSON codec."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from renderkit.sessions import MemoryStore, Signer, _signing, new_session_id
from renderkit.sessions._crypto import Codec


def _reference_signature(secret: str, session_id: str) -> str:
    """The documented construction: HMAC-SHA256 under a purpose-derived key, base64url."""
    key = hmac.new(secret.encode(), _signing._PURPOSE, hashlib.sha256).digest()
    mac = hmac.new(key, session_id.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_signature_format_is_unchanged() -> None:
    """Cookies signed before this release still verify: same key derivation, same encoding."""
    signer = Signer("old-and-new-secret", option="t")
    session_id = new_session_id()
    value = signer.sign(session_id)
    assert value == f"{session_id}.{_reference_signature('old-and-new-secret', session_id)}"
    assert Signer("old-and-new-secret", option="t").unsign(value) == (session_id, True)


def test_memo_never_accepts_what_the_hmac_rejects() -> None:
    """A tampered value is rejected even right after its genuine twin was memoised."""
    signer = Signer("s1", option="t")
    session_id = new_session_id()
    good = signer.sign(session_id)
    assert signer.unsign(good) == (session_id, True)
    assert signer.unsign(good) == (session_id, True)  # from the memo
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert signer.unsign(flipped) is None
    other_id = new_session_id()
    assert signer.unsign(f"{other_id}.{good.split('.')[1]}") is None
    assert signer.unsign(good + "x") is None
    assert signer.unsign("") is None
    assert flipped not in signer._verified and "" not in signer._verified


def test_memo_is_per_signer_and_keeps_rotation_state() -> None:
    """Another secret never sees this signer's memo; a retired-key cookie stays 'stale'."""
    old = Signer("old", option="t")
    rotated = Signer(["new", "old"], option="t")
    stranger = Signer("other", option="t")
    session_id = new_session_id()
    value = old.sign(session_id)
    assert old.unsign(value) == (session_id, True)
    assert stranger.unsign(value) is None
    for _ in range(2):
        assert rotated.unsign(value) == (session_id, False)


def test_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many distinct genuine cookies never grow the memo past its bound."""
    monkeypatch.setattr(_signing, "_VERIFIED_CACHE_SIZE", 5)
    signer = Signer("s", option="t")
    values = [signer.sign(new_session_id()) for _ in range(20)]
    for value in values:
        assert signer.unsign(value) is not None
        assert len(signer._verified) <= 5
    assert signer.unsign(values[0]) is not None  # evicted, verified again by HMAC


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        (b'{"a":1,"b":"\xc3\xa9"}', {"a": 1, "b": "é"}),
        ('{"a":1}', {"a": 1}),
        (memoryview(b'{"a":[1,2]}'), {"a": [1, 2]}),
        ('{"a":"é"}'.encode("utf-16"), {"a": "é"}),  # another program's encoding
        (b'{"a":1', None),
        (b"\xff\xfe\xfa garbage", None),
        (b"[1,2]", None),
        (b"", None),
    ],
)
def test_codec_decodes_as_json_loads_would(blob: bytes | str, expected: object) -> None:
    """UTF-8 fast path, any other encoding json accepts, and None for corrupt blobs."""
    assert Codec(encryption_key=None).decode("id", blob) == expected


def test_codec_encoding_is_compact_utf8_json() -> None:
    """One shared encoder: compact separators, non-ASCII kept as UTF-8, errors name the key."""
    codec = Codec(encryption_key=None)
    raw = codec.encode("id", {"name": "Zoë", "n": [1, 2]})
    assert raw == '{"name":"Zoë","n":[1,2]}'.encode()
    assert json.loads(raw) == {"name": "Zoë", "n": [1, 2]}
    with pytest.raises(Exception, match="'when'"):
        codec.encode("id", {"when": object()})


def test_store_counters_after_loads() -> None:
    """Loads, hits and misses are still counted once each."""
    store = MemoryStore()
    store.save("a" * 43, {"x": 1})
    assert store.load("a" * 43) is not None
    assert store.load("b" * 43) is None
    stats = store.stats()
    assert (stats["loads"], stats["hits"], stats["misses"]) == (2, 1, 1)
