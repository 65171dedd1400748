"""Session payload encoding: JSON, optionally sealed with AES-256-GCM (private).

Encrypted blobs are ``b"\\x01" + nonce(12) + ciphertext+tag``; the session id is the
associated data, so a blob copied under another id fails to open. Plain blobs are UTF-8 JSON
(always starting with ``{``), so a store can hold both while encryption is being switched on.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from renderkit._optional import require
from renderkit.errors import ConfigError, ConfigProblem, SessionError

__all__ = ["Codec", "parse_encryption_key"]

_ENCRYPTED = b"\x01"
_NONCE_BYTES = 12
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
ENCRYPTION_KEY_VAR = "SESSION_ENCRYPTION_KEY"
# Built once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder()


def parse_encryption_key(value: str | bytes, *, variable: str = ENCRYPTION_KEY_VAR) -> bytes:
    """Return the 32-byte key from 64 hex characters (or 32 raw bytes); never echo the value."""
    if isinstance(value, bytes) and len(value) == 32:
        return value
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    text = text.strip()
    if not _HEX_KEY.fullmatch(text):
        raise ConfigError(
            ConfigProblem(
                variable,
                f"must be 64 hex characters (a 256-bit key), got {len(text)} characters that "
                "are not all hex; generate one with `renderkit secret --kind encryption`",
                expected="64 hex characters",
                found="****",
            )
        )
    return bytes.fromhex(text)


class Codec:
    """Encode a session dict to bytes and back, with a size limit and optional AES-GCM."""

    __slots__ = ("_aead", "encrypted", "max_size")

    def __init__(self, *, max_size: int = 64 * 1024, encryption_key: str | bytes | None) -> None:
        if max_size < 2:
            raise ValueError(f"max_size={max_size}: must be at least 2 bytes")
        self.max_size = max_size
        self._aead: Any = None
        self.encrypted = encryption_key is not None
        if encryption_key is not None:
            key = parse_encryption_key(encryption_key, variable="encryption_key")
            aead = require(
                "cryptography.hazmat.primitives.ciphers.aead",
                extra="crypto",
                feature="session encryption at rest",
                package="cryptography",
            )
            self._aead = aead.AESGCM(key)

    def encode(self, session_id: str, data: Mapping[str, Any]) -> bytes:
        """Serialise ``data``; raise SessionError when it is not JSON or exceeds max_size."""
        try:
            raw = _ENCODER.encode(data).encode("utf-8")
        except (TypeError, ValueError) as exc:
            bad = [k for k, v in data.items() if not _jsonable(v)]
            raise SessionError(
                f"session values must be JSON-serialisable (str, int, float, bool, None, list, "
                f"dict); key(s) {bad!r} hold something else ({exc}). Store an id or an ISO "
                "string instead of the object."
            ) from exc
        if len(raw) > self.max_size:
            raise SessionError(
                f"session data is {len(raw)} bytes, over the limit of {self.max_size} bytes "
                "(max_size); keep large data in your database and store its id in the session"
            )
        if self._aead is None:
            return raw
        nonce = os.urandom(_NONCE_BYTES)
        sealed: bytes = self._aead.encrypt(nonce, raw, session_id.encode("ascii"))
        return _ENCRYPTED + nonce + sealed

    def decode(self, session_id: str, blob: bytes | str | memoryview) -> dict[str, Any] | None:
        """Return the stored dict, or None when the blob is corrupt or cannot be opened."""
        raw: bytes
        if isinstance(blob, memoryview):
            raw = blob.tobytes()
        elif isinstance(blob, str):
            raw = blob.encode("utf-8", "surrogatepass")
        else:
            raw = blob
        if raw[:1] == _ENCRYPTED:
            if self._aead is None or len(raw) < 1 + _NONCE_BYTES + 16:
                return None
            try:
                raw = self._aead.decrypt(
                    raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :], session_id.encode("ascii")
                )
            except Exception:
                return None
        elif self._aead is not None and raw[:1] != b"{":
            return None
        try:
            # Stores hold UTF-8 (what encode writes): decode it directly; anything else goes
            # through json.loads' own encoding detection.
            value = _DECODER.decode(raw.decode("utf-8"))
        except UnicodeDecodeError:
            try:
                value = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                return None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
