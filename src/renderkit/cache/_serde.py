"""Value codec: JSON by default, pickle only when asked, zlib for what shrinks.

Every stored value starts with one header byte so decoding never guesses:

    b"j" JSON            b"J" JSON, zlib-compressed
    b"b" raw bytes       b"B" raw bytes, zlib-compressed
    b"p" pickle          b"P" pickle, zlib-compressed

Compression is tried only where it pays: bodies between ``compress_threshold`` (1 KiB) and
``compress_max`` (1 MiB) bytes, and of those only the ones that look compressible: their first
256 bytes use at most 128 distinct byte values (random, encrypted and already-compressed bytes
use nearly all) and their first KiB shrinks to at most 70 % at level 1. Incompressible values
(images, random tokens, base64) are never run through zlib whole. Level 1 compresses JSON
about as well as level 6 in a third of the time.

A pickle payload is refused (treated as corrupt) unless the codec was built with
``pickle=True``: whoever can write to Redis must not be able to run code in the app.

Reads take an optional fast path: when `orjson <https://pypi.org/project/orjson/>`_ is
installed, JSON is decoded with it (about 3x faster than the standard library), and the result
is always what ``json.loads`` would return. orjson turns integers outside the 64-bit range into
floats, so a payload holding a run of 19 or more digits goes to ``json`` instead, as does
anything orjson refuses (such as ``1e400``). Writes always use ``json``, so the
stored bytes do not depend on what is installed.
"""

from __future__ import annotations

import importlib
import json
import pickle
import zlib
from typing import Any

from renderkit.errors import RenderKitError

__all__ = ["CacheValueError", "CorruptValue", "Serializer"]

# Digits to "0", everything else to "x": a run of 19 zeros after translate() is an integer
# literal (or digits inside a string) that orjson might read as a float.
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x78 for i in range(256))
_LONG_RUN = b"0" * 19
_COPY_BELOW = 2048
# Deciding to compress costs a few microseconds: 256 bytes whose values spread over more than
# half of all byte values are random or packed already (text and JSON use few); otherwise the
# first KiB is compressed and must shrink to 70 % at most (base64 does not).
_SAMPLE, _SPREAD = 256, 128
_PROBE = 1024
_PROBE_RATIO = 0.7
# Largest body a compressed value may inflate to: compress_max (at least 1 MiB, where a
# ceiling was lowered after writing), or 64 MiB without a ceiling.
_INFLATE_FLOOR = 1024 * 1024
_INFLATE_LIMIT = 64 * 1024 * 1024

_JSON, _JSON_Z = 0x6A, 0x4A  # "j", "J"
_RAW, _RAW_Z = 0x62, 0x42  # "b", "B"
_PICKLE, _PICKLE_Z = 0x70, 0x50  # "p", "P"


class CacheValueError(RenderKitError, TypeError):
    """A value cannot be stored with the cache's serializer; nothing was written."""

    __module__ = "renderkit.cache"


class CorruptValue(ValueError):
    """Stored bytes could not be decoded (internal: the cache treats them as a miss)."""


class Serializer:
    """Encode values to header-tagged bytes and back."""

    __slots__ = (
        "_dumps",
        "_fast_loads",
        "_loads",
        "compress_level",
        "compress_max",
        "compress_threshold",
        "fast_json",
        "pickle",
    )

    def __init__(
        self,
        *,
        pickle: bool = False,
        compress_threshold: int | None = 1024,
        compress_level: int = 1,
        compress_max: int | None = 1024 * 1024,
        fast_json: bool | None = None,
    ) -> None:
        """``compress_threshold``: bodies up to this many bytes are stored as they are
        (``None`` turns compression off); ``compress_max``: and so are bodies over this many
        (``None``: no ceiling), since compressing megabytes holds a worker longer than sending
        them costs; ``compress_level``: zlib's level (1 pays best for JSON).

        ``fast_json``: ``None`` (default) decodes with orjson when it is installed,
        ``False`` always uses the standard library, ``True`` requires orjson."""
        if compress_threshold is not None and compress_threshold < 0:
            raise ValueError(f"Serializer(compress_threshold={compress_threshold}): must be >= 0")
        if not 0 <= compress_level <= 9:
            raise ValueError(f"Serializer(compress_level={compress_level}): must be 0-9")
        self.pickle = pickle
        self.compress_threshold = compress_threshold
        self.compress_level = compress_level
        self.compress_max = compress_max
        self._dumps = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode
        self._loads = json.JSONDecoder().decode
        self._fast_loads: Any = None
        if fast_json is not False:
            try:
                self._fast_loads = importlib.import_module("orjson").loads
            except ImportError as exc:
                if fast_json:
                    raise ImportError(
                        "Serializer(fast_json=True) needs the 'orjson' package, which is not "
                        "installed: pip install orjson, or pass fast_json=None to use it only "
                        "when present"
                    ) from exc
        self.fast_json = self._fast_loads is not None

    def _json(self, data: bytes, start: int) -> Any:
        """Decode JSON from ``data[start:]`` exactly as ``json.loads`` would."""
        # Copying a small body is cheaper than building a memoryview and slicing it; bodies
        # past the compression threshold are sliced without a copy.
        body = data[start:] if len(data) <= _COPY_BELOW else memoryview(data)[start:]
        fast = self._fast_loads
        if fast is not None and _LONG_RUN not in data.translate(_DIGITS):
            try:
                return fast(body)
            except ValueError:
                pass  # what orjson refuses (1e400) the standard library may read
        return self._loads(str(body, "utf-8"))

    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; raise :class:`CacheValueError` naming the type it cannot store."""
        if isinstance(value, bytes | bytearray | memoryview):
            tag, body = _RAW, bytes(value)
        elif self.pickle:
            try:
                tag, body = _PICKLE, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise CacheValueError(
                    f"cannot pickle a value of type {type(value).__name__}: {exc}"
                ) from exc
        else:
            try:
                tag, body = _JSON, self._dumps(value).encode()
            except (TypeError, ValueError) as exc:
                raise CacheValueError(
                    f"cannot store a value of type {type(value).__name__} as JSON ({exc}); "
                    "convert it to dict/list/str/int/float/bool/None or bytes first, or "
                    "build the cache with serializer=Serializer(pickle=True) if only "
                    "trusted processes can write to the store"
                ) from exc
        threshold = self.compress_threshold
        if threshold is not None and len(body) > threshold and self._worth_compressing(body):
            packed = zlib.compress(body, self.compress_level)
            if len(packed) < len(body):
                return bytes((tag - 0x20,)) + packed
        return bytes((tag,)) + body

    def _worth_compressing(self, body: bytes) -> bool:
        """Under the ceiling, not random-looking, and (past 2 KiB) a 1 KiB probe shrinks."""
        ceiling = self.compress_max
        if ceiling is not None and len(body) > ceiling:
            return False
        view = memoryview(body)
        if len(set(view[:_SAMPLE])) > _SPREAD:
            return False  # bytes spread over most values: random, encrypted, already packed
        if len(body) <= 2 * _PROBE:
            return True  # compressing it whole costs about what a probe would
        return len(zlib.compress(view[:_PROBE], 1)) <= _PROBE * _PROBE_RATIO

    def _inflate(self, data: bytes) -> bytes:
        """Decompress a stored body, refusing one that inflates past what ``dumps`` writes.

        Whoever can write to Redis could otherwise store 300 KB that inflate to gigabytes.
        """
        limit = max(self.compress_max or _INFLATE_LIMIT, _INFLATE_FLOOR)
        inflater = zlib.decompressobj()
        body = inflater.decompress(memoryview(data)[1:], limit + 1)
        if len(body) > limit:
            raise CorruptValue(f"compressed value inflates past {limit} bytes")
        if not inflater.eof:
            raise CorruptValue("truncated compressed value")
        return body

    def loads(self, data: bytes) -> Any:
        """Decode bytes written by :meth:`dumps`; raise :class:`CorruptValue` otherwise."""
        if not data:
            raise CorruptValue("empty value")
        tag = data[0]
        try:
            if tag == _JSON:
                # Straight to the decoder: json.loads would sniff the encoding of bytes first.
                return self._json(data, 1)
            if tag == _RAW:
                return data[1:]
            if tag in (_JSON_Z, _RAW_Z, _PICKLE_Z, _PICKLE):
                body = self._inflate(data) if tag != _PICKLE else data[1:]
                if tag == _JSON_Z:
                    return self._json(body, 0)
                if tag == _RAW_Z:
                    return body
                if not self.pickle:
                    raise CorruptValue("pickled value found but pickle is not enabled")
                return pickle.loads(body)
        except CorruptValue:
            raise
        except Exception as exc:
            raise CorruptValue(f"{type(exc).__name__}: {exc}") from exc
        raise CorruptValue(f"unknown header byte 0x{tag:02x}")
