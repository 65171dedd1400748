"""The one redaction step: passwords in URLs and connection strings become ``****``.

Used by :mod:`renderkit.errors`, :mod:`renderkit.config` (``redact`` and ``mask_url`` are its
public names), and through them by summaries, ``renderkit doctor``, health details and the
logging pipeline. A leaf module so that the error types can use it too.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "first_line", "redact"]

MASK = "****"
"""What a secret is replaced with."""


def first_line(exc: BaseException | None, default: str = "") -> str:
    """The first line of ``str(exc)`` for a one-line message, or ``default`` when it is empty
    (not redacted: pass the message through :func:`redact`)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else default


# "scheme://" followed by the rest of the token (a URL never holds raw whitespace). The userinfo
# is everything up to the token's LAST "@": libpq splits at the first "@", urllib at the last,
# so masking up to the last one hides the password whichever way it was written, raw "@ # / ?"
# included.
_URL = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<rest>[^\s]*)", re.IGNORECASE)
# key=value secrets: libpq conninfo strings ("password=x host=h"), URL query parameters
# ("?password=x&sslmode=require") and env-style lines ("SESSION_SECRET=x", "csrf_token=x").
_KEY_VALUE = re.compile(
    r"(?P<key>\b[\w.-]*(?:password|passwd|pwd|secret|token|api_?key)\b\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,]+)",
    re.IGNORECASE,
)


_TOKEN_LENGTH = 20


def _mask_userinfo(match: re.Match[str]) -> str:
    rest = match.group("rest")
    at = rest.rfind("@")
    if at < 0:
        return match.group(0)
    userinfo, tail = rest[:at], rest[at:]
    user, colon, _password = userinfo.partition(":")
    if not colon:
        # A user name alone is not a secret, but a long one is a token used as the user
        # (https://<token>@github.com/...): hide that.
        if len(userinfo) < _TOKEN_LENGTH or any(c in userinfo for c in "/?#"):
            return match.group(0)
        return f"{match.group('scheme')}{MASK}{tail}"
    if any(c in user for c in "/?#@"):
        # What precedes the ":" is a path or a mangled password, not a user name: hide it all.
        return f"{match.group('scheme')}{MASK}{tail}"
    return f"{match.group('scheme')}{user}:{MASK}{tail}"


def redact(text: object) -> str:
    """Return ``str(text)`` with every password it holds replaced by ``****``.

    Masks the password of every ``scheme://user:password@host`` URL whatever characters the
    password holds (raw ``@ # / ? :`` included), a user name of 20 characters or more standing
    alone (a token: ``https://<token>@github.com``), and ``password=...`` style pairs of libpq
    connection strings and query strings. User names, hosts, ports and paths stay readable.
    This is the one redaction step renderkit uses for error messages, ``repr``, summaries,
    ``renderkit doctor``, health details and the logging pipeline.
    """
    out = str(text)
    if "://" in out:
        out = _URL.sub(_mask_userinfo, out)
    if "=" in out:
        out = _KEY_VALUE.sub(lambda m: f"{m.group('key')}{MASK}", out)
    return out
