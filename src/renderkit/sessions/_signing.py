"""Session ids and their signatures (private).

A session id is 32 random bytes (256 bits) from the OS CSPRNG, URL-safe base64 without
padding (43 characters). The cookie carries ``<id>.<signature>``, where the signature is
HMAC-SHA256 of the id under a key derived from the app's secret, also 43 characters. A cookie
of any other shape is rejected before any HMAC is computed, and an id is looked up in a store
only after its signature verified, so an attacker can never make the app query a chosen id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from renderkit.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from starlette.datastructures import Secret

__all__ = ["ID_LENGTH", "Signer", "new_session_id"]

ID_BYTES = 32
ID_LENGTH = 43  # len(urlsafe_b64encode(32 bytes)) without "=" padding
COOKIE_LENGTH = ID_LENGTH * 2 + 1
_COOKIE_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}")
# Keys are derived from the secret for one purpose, so the same SESSION_SECRET reused
# elsewhere (Flask's secret_key, CSRF tokens) never yields signatures valid here.
_PURPOSE = b"renderkit.sessions.cookie-signature.v1"

SecretKey: TypeAlias = "str | bytes | Secret"
"""A signing key: text, bytes, or Starlette's ``Secret`` (``Config("SECRET_KEY", cast=Secret)``)."""


def plain_keys(keys: SecretKey | Sequence[SecretKey]) -> list[str | bytes]:
    """The key list with Starlette ``Secret`` values unwrapped (the first key signs).

    ``Secret`` is looked up where the app imported it: renderkit.sessions itself never imports
    Starlette (a Flask app need not load it), and an app without Starlette has no Secret."""
    datastructures = sys.modules.get("starlette.datastructures")
    secret = getattr(datastructures, "Secret", None)
    single = (str, bytes) if secret is None else (str, bytes, secret)
    listed: list[Any] = [keys] if isinstance(keys, single) else list(keys)  # type: ignore[arg-type]
    if secret is None:
        return listed
    return [str(key) if isinstance(key, secret) else key for key in listed]


_VERIFIED_CACHE_SIZE = 4096


def new_session_id() -> str:
    """Return a fresh random session id (256 bits, 43 URL-safe characters)."""
    return secrets.token_urlsafe(ID_BYTES)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class Signer:
    """Sign ids with the first key; accept a signature made by any key in the list.

    Rotate by putting the new secret first and keeping the old one second until every
    session signed with it has expired (the session TTL); then drop the old one. A cookie
    verified by an older key is re-signed with the newest key on the next response.
    """

    __slots__ = ("_keys", "_verified")

    def __init__(self, secret_keys: SecretKey | Sequence[SecretKey], *, option: str) -> None:
        keys = plain_keys(secret_keys)
        problems: list[ConfigProblem] = []
        if not keys:
            problems.append(
                ConfigProblem(
                    option,
                    "no secret key given; pass secret_key=... (a long random string, e.g. "
                    "from `renderkit secret`) or set SESSION_SECRET",
                    "code",
                )
            )
        derived: list[bytes] = []
        for index, key in enumerate(keys):
            if isinstance(key, str):
                key = key.encode("utf-8")
            if not isinstance(key, bytes) or not key:
                problems.append(
                    ConfigProblem(
                        option,
                        f"key #{index + 1} is empty or not a str/bytes; every key must be a "
                        "non-empty secret string",
                        "code",
                    )
                )
                continue
            derived.append(hmac.new(key, _PURPOSE, hashlib.sha256).digest())
        if problems:
            raise ConfigError(problems)
        self._keys = tuple(derived)
        # Cookie values that verified, so a returning client costs a dict lookup instead of
        # an HMAC. Only genuine values enter (an attacker cannot fill it), and it is bounded.
        self._verified: dict[str, tuple[str, bool]] = {}

    @property
    def key_count(self) -> int:
        """How many keys are accepted (the first one signs)."""
        return len(self._keys)

    def sign(self, session_id: str) -> str:
        """Return the cookie value ``<id>.<signature>`` for ``session_id``."""
        mac = hmac.digest(self._keys[0], session_id.encode("ascii"), "sha256")
        return f"{session_id}.{_b64(mac)}"

    def unsign(self, value: str) -> tuple[str, bool] | None:
        """Return ``(id, signed_with_current_key)`` for a genuine cookie value, else None.

        Anything of the wrong length or alphabet (truncated, oversized, non-ASCII, empty) is
        rejected without computing an HMAC; signatures are compared in constant time.
        """
        found = self._verified.get(value)
        if found is not None:
            return found
        if len(value) != COOKIE_LENGTH or not _COOKIE_SHAPE.fullmatch(value):
            return None
        session_id = value[:ID_LENGTH]
        signature = value[ID_LENGTH + 1 :].encode("ascii")
        raw_id = session_id.encode("ascii")
        for index, key in enumerate(self._keys):
            # One HMAC per accepted key (one in the usual case), compared in constant time.
            expected = base64.urlsafe_b64encode(hmac.digest(key, raw_id, "sha256"))[:ID_LENGTH]
            if hmac.compare_digest(expected, signature):
                found = (session_id, index == 0)
                verified = self._verified
                if len(verified) >= _VERIFIED_CACHE_SIZE:
                    verified.clear()
                verified[value] = found
                return found
        return None
