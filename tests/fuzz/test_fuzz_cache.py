"""Property tests for the cache codec and keys: corrupt bytes are misses, keys fail cleanly."""

from __future__ import annotations

import json
import pickle
import zlib

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from renderkit.cache import Cache, CacheKeyError, CacheValueError, MemoryBackend, Serializer
from renderkit.cache._serde import CorruptValue

FUZZ = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])

JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=50),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)
TAGGED_GARBAGE = st.tuples(st.sampled_from(b"jJbBpPx\x00"), st.binary(max_size=200)).map(
    lambda t: bytes((t[0],)) + t[1]
)
COMPRESSED_GARBAGE = st.tuples(st.sampled_from(b"JBP"), st.binary(max_size=100)).map(
    lambda t: bytes((t[0],)) + zlib.compress(t[1])
)


@FUZZ
@given(st.one_of(st.binary(max_size=300), TAGGED_GARBAGE, COMPRESSED_GARBAGE))
@example(b"")
@example(b"j" + b"[" * 100_000)
@example(b"p" + pickle.dumps({"a": 1}))
@example(b"P" + zlib.compress(pickle.dumps(print)))
@example(b"J" + b"not zlib")
def test_decoding_any_bytes_gives_a_value_or_corruptvalue(raw: bytes) -> None:
    """Serializer.loads never raises anything but CorruptValue and never unpickles by default."""
    try:
        value = Serializer().loads(raw)
    except CorruptValue:
        return
    assert raw[:1] in (b"j", b"J", b"b", b"B")
    if raw[:1] in (b"b", b"B"):
        assert isinstance(value, bytes)


@FUZZ
@given(st.one_of(st.binary(max_size=200), TAGGED_GARBAGE, COMPRESSED_GARBAGE))
def test_a_corrupt_stored_value_is_a_miss_never_an_exception(raw: bytes) -> None:
    """Whatever bytes sit under a key, Cache.get returns a value or the default, never raises."""
    backend = MemoryBackend()
    cache = Cache(backend)
    full = cache._key("k")
    backend.set(full, raw, None)
    sentinel = object()
    try:
        expected = Serializer().loads(raw)
    except CorruptValue:
        assert cache.get("k", sentinel) is sentinel
        assert cache.stats()["corrupt"] == 1
        # get_or_set recomputes over the corrupt value instead of failing.
        assert cache.get_or_set("k", lambda: 7) == 7
        assert cache.get("k") == 7
    else:
        assert cache.get("k", sentinel) == expected


@FUZZ
@given(JSON_VALUES, st.sampled_from([None, 0, 16, 1024]))
def test_json_values_round_trip_with_and_without_compression(
    value: object, threshold: int | None
) -> None:
    """Every JSON value decodes to what was stored, compressed or not."""
    codec = Serializer(compress_threshold=threshold)
    assert codec.loads(codec.dumps(value)) == json.loads(json.dumps(value))


@FUZZ
@given(st.one_of(st.sets(st.integers(), max_size=3), st.just(float("nan")), st.just(object())))
def test_unstorable_values_raise_cachevalueerror(value: object) -> None:
    """A value JSON cannot hold is refused with CacheValueError and nothing is written."""
    cache = Cache(MemoryBackend())
    try:
        cache.set("k", value)
    except CacheValueError as exc:
        assert type(value).__name__ in str(exc)
    else:
        raise AssertionError(f"{value!r} was stored")
    assert cache.get("k") is None


@FUZZ
@given(st.one_of(st.text(max_size=400), st.binary(max_size=10), st.integers(), st.none()))
@example("\ud800")
@example("\ud800" * 300)
@example("é" * 513)
@example("")
def test_keys_are_accepted_or_refused_with_cachekeyerror(key: object) -> None:
    """A key is usable (set then get returns the value) or refused with CacheKeyError."""
    cache = Cache(MemoryBackend())
    try:
        cache.set(key, 1)  # type: ignore[arg-type]
    except CacheKeyError:
        return
    assert isinstance(key, str) and key
    assert cache.get(key) == 1
