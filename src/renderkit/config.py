"""Declarative, typed settings read from environment variables and ``.env`` files.

Subclass :class:`Settings`, declare each field with :func:`env`, and call
:meth:`Settings.load`. Every bad variable is collected before anything is raised, so one
:class:`ConfigError` lists them all, each with the variable name, what was expected, what was
found (``****`` for secrets; passwords inside URLs are always masked) and where the value came
from (the environment, a ``.env`` file, or the default).

The parse functions (:func:`parse_bool`, :func:`parse_duration`, :func:`parse_bytes`,
:func:`parse_list`, :func:`parse_postgres_url`, :func:`parse_redis_url`) are public so that
every ``from_env()`` in renderkit reads values the same way. They raise ``ValueError`` with a
message that never repeats the value (it may be a secret).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal, Self, TypeVar, dataclass_transform

from renderkit import platform as _platform
from renderkit._redact import MASK, redact
from renderkit.errors import ConfigError, ConfigProblem

__all__ = [
    "ENVIRONMENT_VARIABLES",
    "ByteSize",
    "ConfigError",
    "ConfigProblem",
    "ConfigReport",
    "CorsSettings",
    "EnvField",
    "Environment",
    "FieldInfo",
    "FieldReport",
    "PostgresUrl",
    "RedisUrl",
    "Seconds",
    "Settings",
    "cors_options",
    "env",
    "environment",
    "explain_environment",
    "format_bytes",
    "format_duration",
    "mask_url",
    "parse_bool",
    "parse_bytes",
    "parse_duration",
    "parse_float",
    "parse_int",
    "parse_list",
    "parse_postgres_url",
    "parse_redis_url",
    "read_dotenv",
    "redact",
]

T = TypeVar("T")

Environment = Literal["development", "staging", "production"]
"""The values :func:`environment` returns."""

ENVIRONMENTS: tuple[Environment, ...] = ("development", "staging", "production")

_MAX_INPUT = 4096  # longer scalar values are refused rather than parsed


# --- value types -------------------------------------------------------------------------


class ByteSize(int):
    """A number of bytes; as a field type, values like ``"100MB"`` or ``"1.5GiB"`` are accepted."""

    def __repr__(self) -> str:
        return f"ByteSize({int(self)})"


class Seconds(float):
    """Seconds as a float; as a field type, accepts ``"30s"``, ``"5m"``, ``"250ms"``."""

    def __repr__(self) -> str:
        return f"Seconds({float(self)})"


class _Url(str):
    """A validated URL; ``repr()`` and :attr:`masked` hide the password."""

    __slots__ = ()

    @property
    def masked(self) -> str:
        """The URL with its password replaced by ``****``."""
        return mask_url(str(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked!r})"


class PostgresUrl(_Url):
    """A ``postgresql://`` URL with a host; ``postgres://`` is accepted and normalised."""

    __slots__ = ()


class RedisUrl(_Url):
    """A ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL."""

    __slots__ = ()


# --- parse functions ---------------------------------------------------------------------

BOOL_EXPECTED = "a boolean (true/false, 1/0, yes/no, on/off)"


def parse_bool(value: str) -> bool:
    """Parse true/false, 1/0, yes/no, on/off (any case, surrounding spaces ignored).

    Raises ``ValueError`` for anything else, including the empty string.
    """
    word = str(value).strip().lower()
    if word in _platform.TRUE_WORDS:
        return True
    if word in _platform.FALSE_WORDS:
        return False
    raise ValueError(f"expected {BOOL_EXPECTED}")


def parse_int(value: str) -> int:
    """Parse a whole number (``"42"``, ``"-3"``, ``"1_000"``); raises ``ValueError`` otherwise."""
    text = str(value).strip()
    if not text or len(text) > 64 or not text.isascii():
        raise ValueError("expected an integer")
    try:
        return int(text)
    except ValueError:
        pass
    raise ValueError("expected an integer")


def parse_float(value: str) -> float:
    """Parse a finite number (``"0.5"``, ``"2"``, ``"1e-3"``); raises ``ValueError`` otherwise."""
    text = str(value).strip()
    if not text or len(text) > 64 or not text.isascii():
        raise ValueError("expected a number")
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("expected a finite number")
    return number


_DURATION_UNITS: dict[str, Decimal] = {
    "us": Decimal("0.000001"),
    "µs": Decimal("0.000001"),
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "sec": Decimal(1),
    "secs": Decimal(1),
    "second": Decimal(1),
    "seconds": Decimal(1),
    "m": Decimal(60),
    "min": Decimal(60),
    "mins": Decimal(60),
    "minute": Decimal(60),
    "minutes": Decimal(60),
    "h": Decimal(3600),
    "hr": Decimal(3600),
    "hrs": Decimal(3600),
    "hour": Decimal(3600),
    "hours": Decimal(3600),
    "d": Decimal(86400),
    "day": Decimal(86400),
    "days": Decimal(86400),
    "w": Decimal(604800),
    "week": Decimal(604800),
    "weeks": Decimal(604800),
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"\s*({_NUMBER})\s*([a-zµ]+)\s*")
_PLAIN_NUMBER = re.compile(rf"\s*({_NUMBER})\s*")
DURATION_EXPECTED = "a duration such as 30s, 5m, 1h30m, 250ms or a number of seconds"
_MAX_SECONDS = Decimal(timedelta.max.total_seconds()) - 1


def parse_duration(value: str) -> timedelta:
    """Parse a non-negative duration: ``"30s"``, ``"5m"``, ``"1h30m"``, ``"250ms"``, ``"1.5h"``.

    A plain number is seconds (``"90"``, ``"0.5"``). Units: us, ms, s, m, h, d, w (and their
    long names such as ``minutes``), any case, optionally separated by spaces. Negative values
    and anything else raise ``ValueError``.
    """
    text = str(value).strip().lower()
    if not text or len(text) > 256:
        raise ValueError(f"expected {DURATION_EXPECTED}")
    if text.startswith("-"):
        raise ValueError(f"expected {DURATION_EXPECTED}; negative durations are not allowed")
    plain = _PLAIN_NUMBER.fullmatch(text)
    total = Decimal(0)
    if plain:
        total = Decimal(plain.group(1))
    else:
        position = 0
        while position < len(text):
            match = _DURATION_PART.match(text, position)
            if match is None or match.group(2) not in _DURATION_UNITS:
                raise ValueError(f"expected {DURATION_EXPECTED}")
            total += Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)]
            position = match.end()
    if total > _MAX_SECONDS:
        raise ValueError(f"expected {DURATION_EXPECTED}; this one is too long")
    # Whole microseconds, so the value is exact (no float rounding of "0.1s").
    micros = int(total * 1_000_000)
    return timedelta(microseconds=micros)


_BYTE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_BYTES = re.compile(rf"\s*({_NUMBER})\s*([a-z]*)\s*")
BYTES_EXPECTED = "a size such as 512MB, 1.5GiB, 100k or a number of bytes"


def parse_bytes(value: str) -> ByteSize:
    """Parse a size in bytes: ``"1024"``, ``"512k"``, ``"100MB"``, ``"1.5GiB"``.

    SI units (k, kB, M, MB, G, GB, T, TB) are powers of 1000; IEC units (Ki, KiB, Mi, MiB, Gi,
    GiB, Ti, TiB) are powers of 1024; case is ignored. A fractional result is rounded down to
    whole bytes. Negative sizes and anything else raise ``ValueError``.
    """
    text = str(value).strip().lower()
    match = _BYTES.fullmatch(text) if 0 < len(text) <= 64 else None
    if match is None or match.group(2) not in _BYTE_UNITS:
        raise ValueError(f"expected {BYTES_EXPECTED}")
    number = Decimal(match.group(1)) * _BYTE_UNITS[match.group(2)]
    if number != number.to_integral_value() and match.group(2) in ("", "b"):
        raise ValueError(f"expected {BYTES_EXPECTED}; a byte count must be whole")
    return ByteSize(int(number))


def parse_list(value: str, item: Callable[[str], T] = str) -> list[T]:  # type: ignore[assignment]
    """Parse a list given as ``"a, b, c"`` or as a JSON array ``'["a", "b"]'``.

    Items are stripped and empty items dropped; each item goes through ``item`` (for example
    :func:`parse_int`), whose ``ValueError`` propagates. JSON numbers and booleans reach
    ``item`` as their JSON text. The empty string is the empty list.
    """
    text = str(value).strip()
    if not text:
        return []
    raw: list[str]
    if text.startswith("["):
        import json

        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise ValueError("expected a JSON array or comma-separated values") from None
        if not isinstance(data, list):
            raise ValueError("expected a JSON array or comma-separated values")
        raw = []
        for element in data:
            if isinstance(element, str):
                raw.append(element)
            elif isinstance(element, bool | int | float):
                raw.append(json.dumps(element))
            else:
                raise ValueError("expected a flat JSON array of strings or numbers")
    else:
        raw = text.split(",")
    return [item(part.strip()) for part in raw if part.strip()]


def mask_url(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``****`` (an alias of :func:`redact`)."""
    return redact(text)


PERCENT_ENCODE_HINT = (
    "the user name or password holds a raw @, #, /, ?, [ or ] (or a % that starts no %XX "
    "escape), "
    "which libpq and redis-py would each split differently: percent-encode it "
    "(@ is %40, # is %23, / is %2F, ? is %3F, % is %25, [ is %5B, ] is %5D; "
    "urllib.parse.quote(password, safe='') does it)"
)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _userinfo_problem(text: str) -> str | None:
    """Why libpq and redis-py would read the URL's userinfo differently, or None.

    libpq takes a userinfo when an ``@`` comes before the first ``/`` (and splits at the
    first ``@``); urllib (hence redis-py) ends the authority at the first ``/ ? #`` and splits
    at the last ``@``. They agree, and both find the host that was meant, when the only raw
    ``@`` is the one ending the userinfo, with no ``? # [ ]`` and no stray ``%`` before it.
    """
    rest = text.partition("://")[2]
    slash = rest.find("/")
    head, tail = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in tail or head.count("@") > 1:
        return PERCENT_ENCODE_HINT
    at = head.find("@")
    if at >= 0:
        userinfo = head[:at]
        if any(c in userinfo for c in "?#[]") or _BAD_ESCAPE.search(userinfo):
            return PERCENT_ENCODE_HINT
        from urllib.parse import unquote

        try:
            decoded = unquote(userinfo, errors="strict")
        except UnicodeDecodeError:
            return "the user name or password decodes to invalid UTF-8; percent-encode its text"
        if "\x00" in decoded:
            return "the user name or password holds %00 (a NUL byte), which libpq refuses"
    return None


def _split_url(text: str, *, multi_host: bool = False) -> Any:
    from urllib.parse import urlsplit

    if not text or len(text) > _MAX_INPUT or any(c.isspace() for c in text):
        return None
    try:
        parts = urlsplit(text)
        if multi_host and "," in parts.netloc:
            # libpq's "host1:5432,host2:5433": check each port on its own.
            for host in parts.netloc.rpartition("@")[2].split(","):
                _ = urlsplit(f"//{host}").port
        else:
            _ = parts.port  # raises ValueError for a port that is not a number 0-65535
    except ValueError:
        return None
    return parts


POSTGRES_EXPECTED = "a postgresql:// URL with a host (postgresql://user:password@host:5432/db)"


def parse_postgres_url(value: str) -> PostgresUrl:
    """Validate a Postgres URL and return it with ``postgres://`` normalised to ``postgresql://``.

    The URL needs a host, either in the authority or as a ``host=`` query parameter (a unix
    socket directory). Raises ``ValueError`` (without the URL) otherwise.
    """
    text = str(value).strip()
    problem = _userinfo_problem(text)
    if problem is not None:
        raise ValueError(f"expected {POSTGRES_EXPECTED}; {problem}")
    parts = _split_url(text, multi_host=True)
    if parts is None:
        raise ValueError(f"expected {POSTGRES_EXPECTED}")
    scheme = parts.scheme.lower()
    if scheme not in ("postgres", "postgresql"):
        shown = f"'{scheme}://'" if scheme else "no scheme"
        raise ValueError(f"expected {POSTGRES_EXPECTED}; the scheme is {shown}")
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError(f"expected {POSTGRES_EXPECTED}; the host is missing")
    return PostgresUrl("postgresql" + text[len(parts.scheme) :])


REDIS_EXPECTED = (
    "a redis://, rediss:// (TLS), valkey://, valkeys://, unix://, "
    "redis+cluster://host:port,host:port or redis+sentinel://host:port,host:port/service URL"
)


def parse_redis_url(value: str) -> RedisUrl:
    """Validate a Redis URL: ``redis://``, ``rediss://``, ``valkey://`` or ``valkeys://`` with
    a host, ``unix:///path``, ``redis+cluster://h1:p1,h2:p2`` or
    ``redis+sentinel://h1:p1,h2:p2/service[/db]``.

    A database number in the path (``/0``) must be a whole number. Raises ``ValueError``
    (without the URL) otherwise.
    """
    text = str(value).strip()
    problem = _userinfo_problem(text)
    if problem is not None:
        raise ValueError(f"expected {REDIS_EXPECTED}; {problem}")
    parts = _split_url(text, multi_host="+" in text.partition("://")[0])
    if parts is None:
        raise ValueError(f"expected {REDIS_EXPECTED}")
    scheme = parts.scheme.lower()
    if scheme in ("redis+cluster", "redis+sentinel", "rediss+cluster", "rediss+sentinel"):
        _check_redis_hosts(scheme, parts)
    elif scheme in ("redis", "rediss", "valkey", "valkeys"):
        if not parts.hostname:
            raise ValueError(f"expected {REDIS_EXPECTED}; the host is missing")
        db = parts.path.strip("/")
        if db and not (db.isascii() and db.isdigit()):
            raise ValueError(f"expected {REDIS_EXPECTED}; the database must be a number (/0)")
    elif scheme == "unix":
        if not parts.path:
            raise ValueError(f"expected {REDIS_EXPECTED}; the socket path is missing")
    else:
        shown = f"'{scheme}://'" if scheme else "no scheme"
        raise ValueError(f"expected {REDIS_EXPECTED}; the scheme is {shown}")
    return RedisUrl(text)


def _check_redis_hosts(scheme: str, parts: Any) -> None:
    """``host:port,host:port`` of a cluster or Sentinel URL; a Sentinel service name."""
    from urllib.parse import urlsplit

    for host in parts.netloc.rpartition("@")[2].split(","):
        try:
            if not urlsplit(f"//{host}").hostname:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"expected {REDIS_EXPECTED}; each host of a {scheme}:// URL needs a name and a "
                "numeric port (host:6379,host:6380)"
            ) from None
    if scheme.endswith("sentinel"):
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ValueError(
                f"expected {REDIS_EXPECTED}; a {scheme}:// URL needs the service name after "
                "the hosts (redis+sentinel://host:26379,host2:26379/mymaster)"
            )
        if len(path) > 2 or (len(path) == 2 and not (path[1].isascii() and path[1].isdigit())):
            raise ValueError(
                f"expected {REDIS_EXPECTED}; the database after the service name must be a "
                "number (/mymaster/0)"
            )


# --- formatting --------------------------------------------------------------------------


def format_duration(value: timedelta | float) -> str:
    """Format a duration compactly (``"1h30m"``, ``"250ms"``, ``"0s"``); parse_duration reads it."""
    if isinstance(value, timedelta):
        micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    else:
        micros = round(float(value) * 1_000_000)
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400_000_000), ("h", 3600_000_000), ("m", 60_000_000)):
        count, micros = divmod(micros, size)
        if count:
            out.append(f"{count}{unit}")
    seconds, micros = divmod(micros, 1_000_000)
    if seconds:
        out.append(f"{seconds}s")
    millis, micros = divmod(micros, 1000)
    if millis:
        out.append(f"{millis}ms")
    if micros:
        out.append(f"{micros}us")
    return sign + "".join(out)


def format_bytes(value: int) -> str:
    """Format a size for people: ``"512 MiB"``, ``"1.5 GiB"``, ``"900 B"`` (binary units)."""
    number = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(number) < 1024 or unit == "TiB":
            text = f"{number:.2f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
        number /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


# --- environment -------------------------------------------------------------------------

_ENV_ALIASES: dict[str, Environment] = {
    "production": "production",
    "prod": "production",
    "prd": "production",
    "live": "production",
    "staging": "staging",
    "stage": "staging",
    "stg": "staging",
    "preview": "staging",
    "development": "development",
    "dev": "development",
    "develop": "development",
    "local": "development",
    "test": "development",
    "testing": "development",
}
ENVIRONMENT_VARIABLES = ("APP_ENV", "ENV", "ENVIRONMENT")
"""The variables :func:`environment` reads, in order."""


def explain_environment(environ: Mapping[str, str] | None = None) -> tuple[Environment, str]:
    """Return ``(environment, reason)``, the reason saying which variable or rule decided it.

    Raises :class:`ConfigError` when APP_ENV, ENV or ENVIRONMENT holds an unknown word.
    """
    env = os.environ if environ is None else environ
    for name in ENVIRONMENT_VARIABLES:
        raw = env.get(name)
        if raw is None or not raw.strip():
            continue
        if name == "ENV" and "/" in raw:
            continue  # POSIX shells use ENV for a startup-file path
        word = raw.strip().lower()
        if word in _ENV_ALIASES:
            return _ENV_ALIASES[word], f"{name}={raw.strip()}"
        shown = raw.strip() if len(raw) <= 40 else raw.strip()[:37] + "..."
        raise ConfigError(
            ConfigProblem(
                name,
                f"expected one of development, staging, production (or dev, stage, prod); "
                f"got {shown!r}",
                "environment",
                expected="development, staging or production",
                found=repr(shown),
            )
        )
    provider, preview = _platform.detect_provider(env)
    on_paas = provider != "local"
    if preview:
        return "staging", "preview instance on a PaaS"
    if on_paas:
        return "production", "running on a PaaS"
    return "development", "no APP_ENV, ENV or ENVIRONMENT and no PaaS detected"


def environment(environ: Mapping[str, str] | None = None) -> Environment:
    """Return ``"development"``, ``"staging"`` or ``"production"``.

    Read from APP_ENV, then ENV, then ENVIRONMENT (aliases such as ``prod``, ``dev`` and
    ``stage`` are accepted, case-insensitively); when none is set, ``"staging"`` on a PaaS
    preview or pull-request instance, ``"production"`` on any other PaaS instance, else
    ``"development"``. Raises :class:`ConfigError` for an unknown word.
    """
    return explain_environment(environ)[0]


# --- .env files --------------------------------------------------------------------------

_DOTENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def _unquote_double(body: str) -> str:
    out: list[str] = []
    chars = iter(body)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
        else:
            out.append(ch)
    return "".join(out)


def read_dotenv(path: str | os.PathLike[str]) -> tuple[dict[str, str], list[ConfigProblem]]:
    """Read a ``.env`` file: ``KEY=VALUE`` lines, ``#`` comments, quotes, ``export`` prefixes.

    Single-quoted values are literal; double-quoted values understand ``\\n``, ``\\t``,
    ``\\"`` and ``\\\\`` and may span lines; unquoted values end at `` #``. Variables are not
    expanded. Returns the values and one problem per line that could not be read; a missing
    file gives ``({}, [])``.
    """
    source = f".env file {os.fspath(path)}"
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError) as exc:
        reason = type(exc).__name__
        return {}, [ConfigProblem(os.fspath(path), f"could not be read ({reason})", source)]
    values: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep or not _DOTENV_KEY.fullmatch(key):
            problems.append(
                ConfigProblem(f"line {number}", "expected KEY=VALUE", source, "KEY=VALUE")
            )
            continue
        rest = rest.strip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            end = _closing_quote(body, quote)
            # A double-quoted value may continue on the following lines.
            while end < 0 and quote == '"' and index < len(lines):
                body += "\n" + lines[index]
                index += 1
                end = _closing_quote(body, quote)
            if end < 0:
                problems.append(
                    ConfigProblem(key, f"the {quote} quote is never closed (line {number})", source)
                )
                continue
            inner = body[:end]
            values[key] = _unquote_double(inner) if quote == '"' else inner
        else:
            comment = re.search(r"\s#", rest)
            values[key] = (rest[: comment.start()] if comment else rest).strip()
    return values, problems


def _closing_quote(body: str, quote: str) -> int:
    position = 0
    while position < len(body):
        ch = body[position]
        if ch == "\\" and quote == '"':
            position += 2
            continue
        if ch == quote:
            return position
        position += 1
    return -1


# --- fields ------------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "<required>"


_MISSING: Any = _Missing()


@dataclass(eq=False, repr=False, slots=True)
class EnvField:
    """A settings field bound to one environment variable; made by :func:`env`.

    ``help`` is the ``help=`` text; :meth:`Settings.describe` falls back to the attribute's
    docstring when it is empty.
    """

    name: str
    default: Any
    secret: bool
    required_in: tuple[str, ...]
    help: str
    aliases: tuple[str, ...] = ()
    minimum: Any = None
    maximum: Any = None
    validate: Callable[[Any], Any] | None = None
    attribute: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """The variable and its aliases, in the order they are looked up."""
        return (self.name, *self.aliases)

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    @property
    def required(self) -> bool:
        """True when the field has no default, so the variable must be set everywhere."""
        return self.default is _MISSING

    def __repr__(self) -> str:
        return f"env({self.name!r})"


def env(
    name: str,
    *,
    default: Any = _MISSING,
    secret: bool = False,
    required_in: Iterable[str] = (),
    help: str = "",
    aliases: Iterable[str] = (),
    minimum: Any = None,
    maximum: Any = None,
    validate: Callable[[Any], Any] | None = None,
) -> Any:
    """Declare a settings field read from environment variable ``name``.

    ``default`` is used when the variable is unset; a string default goes through the same
    parser as the variable (``default="30s"`` becomes a ``timedelta``). Without a default the
    variable is required. ``secret=True`` masks the value in errors, ``summary()`` and
    ``repr()``. ``required_in=("production",)`` makes the variable required in those
    environments even though it has a default.

    A field's help is its attribute docstring: the string in triple quotes on the line after
    ``ttl: Seconds = env("CACHE_TTL", default="300s")`` (the convention of Sphinx autodoc and
    pydantic's ``use_attribute_docstrings``; docs/config.md shows one). ``describe()``, the
    "required but not set" error, the CLI and docs/environment.md show it: write it for the
    person setting the variable. It is read from the class's source only when help is shown
    (never at import, nor by a :meth:`Settings.load` that succeeds), its lines joined by single
    spaces; where the source is not available (a class made by ``exec()`` or ``type()``) the
    help is empty. ``help=`` gives the text in the call instead (for a field shared by several
    classes, which has no docstring of its own); given both, ``help=`` wins and the docstring
    is documentation only.

    ``aliases`` are further variables read, in order, when ``name`` is unset
    (``env("RATELIMIT_STORAGE_URL", aliases=("REDIS_URL",))``). ``minimum`` / ``maximum``
    bound a number, duration or size (strings go through the field's parser: ``"1ms"``).
    ``validate`` receives the parsed value and returns the value to keep, or raises
    ``ValueError`` with a message that must not repeat the value.
    """
    if not isinstance(name, str) or not name:
        raise TypeError("env() needs the variable name as its first argument")
    stages = tuple(required_in) if not isinstance(required_in, str) else (required_in,)
    unknown = [stage for stage in stages if stage not in ENVIRONMENTS]
    if unknown:
        raise TypeError(
            f"env({name!r}, required_in=...): unknown environment {unknown[0]!r}; "
            f"use {', '.join(ENVIRONMENTS)}"
        )
    alias_names = (aliases,) if isinstance(aliases, str) else tuple(aliases)
    return EnvField(
        name,
        default,
        bool(secret),
        stages,
        help,
        aliases=alias_names,
        minimum=minimum,
        maximum=maximum,
        validate=validate,
    )


@dataclass(frozen=True, slots=True)
class _Parser:
    parse: Callable[[str], Any]
    expected: str
    optional: bool
    is_list: bool
    type_name: str
    empty: Callable[[], Any] | None = None  # the value of an empty string, when it has one
    is_url: bool = False  # a rejected value is never shown, even masked

    @property
    def hides_input(self) -> bool:
        """URLs are never echoed: a raw space or quote would end redaction early."""
        return self.is_url


def _literal_parser(choices: tuple[Any, ...]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        stripped = text.strip()
        for choice in choices:
            if str(choice) == stripped:
                return choice
        for choice in choices:
            if isinstance(choice, str) and choice.lower() == stripped.lower():
                return choice
        raise ValueError("expected " + _literal_expected(choices))

    return parse


def _literal_expected(choices: tuple[Any, ...]) -> str:
    return "one of " + ", ".join(repr(c) for c in choices)


def _str(text: str) -> str:
    if not text.strip():
        raise ValueError("expected a non-empty string")
    return text


def _as_seconds(text: str) -> Seconds:
    return Seconds(parse_duration(text).total_seconds())


def _none() -> None:
    return None


OFF_WORDS = frozenset({"off", "none", "disabled", "never"})
"""Words an optional duration (``Seconds | None``) reads as "not set": ``REQUEST_TIMEOUT=off``."""


def _or_off(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_off(text: str) -> Any:
        return None if text.strip().lower() in OFF_WORDS else parse(text)

    return parse_or_off


_SCALARS: dict[Any, tuple[Callable[[str], Any], str]] = {
    str: (_str, "a non-empty string"),
    int: (parse_int, "an integer"),
    float: (parse_float, "a number"),
    bool: (parse_bool, BOOL_EXPECTED),
    timedelta: (parse_duration, DURATION_EXPECTED),
    Seconds: (_as_seconds, DURATION_EXPECTED),
    ByteSize: (parse_bytes, BYTES_EXPECTED),
    PostgresUrl: (parse_postgres_url, POSTGRES_EXPECTED),
    RedisUrl: (parse_redis_url, REDIS_EXPECTED),
}


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _build_parser(annotation: Any, where: str) -> _Parser:
    import types
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    optional = False
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) != 1:
            raise TypeError(f"{where}: only 'X | None' unions are supported, not {annotation}")
        optional = True
        annotation = rest[0]
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
    name = _type_name(annotation)
    if annotation in _SCALARS:
        parse, expected = _SCALARS[annotation]
        is_url = annotation in (PostgresUrl, RedisUrl)
        if optional and annotation in (timedelta, Seconds):
            parse, expected = _or_off(parse), f"{expected}, or off"
        return _Parser(parse, expected, optional, False, name, _none if optional else None, is_url)
    if origin is Literal:
        return _Parser(
            _literal_parser(args),
            _literal_expected(args),
            optional,
            False,
            name,
            _none if optional else None,
        )
    if origin in (list, Sequence, tuple) or annotation is list:
        item = args[0] if args else str
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise TypeError(f"{where}: use list[X] or tuple[X, ...] for lists")
        inner = _build_parser(item, where)
        if inner.optional or inner.is_list:
            raise TypeError(f"{where}: list items must be a plain type, not {item}")
        item_parse = inner.parse
        expected = f"a comma-separated list or JSON array, each item {inner.expected}"
        if origin is tuple:

            def parse_tuple(text: str) -> Any:
                return tuple(parse_list(text, item_parse))

            return _Parser(parse_tuple, expected, optional, True, name, tuple, inner.is_url)

        def parse(text: str) -> Any:
            return parse_list(text, item_parse)

        return _Parser(parse, expected, optional, True, name, list, inner.is_url)
    raise TypeError(
        f"{where}: unsupported settings type {annotation!r}; use str, int, float, bool, "
        "timedelta, Seconds, ByteSize, PostgresUrl, RedisUrl, Literal[...], list[X] or X | None"
    )


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What a settings field reads, for docs and the CLI (see :meth:`Settings.describe`)."""

    attribute: str
    variable: str
    type: str
    expected: str
    default: str | None  # display form; None when the variable is required
    required: bool
    required_in: tuple[str, ...]
    secret: bool
    help: str
    aliases: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class FieldReport:
    """One field after loading: its display value (masked), where it came from, any problem."""

    attribute: str
    variable: str
    display: str
    source: str
    secret: bool
    problem: ConfigProblem | None = None

    @property
    def ok(self) -> bool:
        """True when this field loaded without a problem."""
        return self.problem is None


@dataclass(frozen=True, slots=True)
class ConfigReport:
    """The full outcome of loading settings: every field, every problem, and the settings."""

    settings_class: str
    environment: str | None
    fields: tuple[FieldReport, ...]
    problems: tuple[ConfigProblem, ...]
    settings: Settings | None

    @property
    def ok(self) -> bool:
        """True when there is no problem (``settings`` is then set)."""
        return not self.problems

    def error(self) -> ConfigError:
        """A :class:`ConfigError` listing every problem (only meaningful when not ``ok``)."""
        return ConfigError(list(self.problems))


def _display(value: Any, parser: _Parser | None = None) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Seconds):
        return format_duration(float(value))
    if isinstance(value, ByteSize):
        return format_bytes(int(value))
    if isinstance(value, list | tuple):
        return ",".join(_display(v) for v in value)
    return mask_url(str(value))


def _found(raw: str, secret: bool) -> str:
    if secret:
        return MASK
    shown = mask_url(raw)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return repr(shown)


def _attribute_docstrings(klass: type) -> dict[str, str]:
    """``{attribute: docstring}`` of ``klass``'s own body, read from its source once and cached.

    A docstring is a string statement right after an annotated assignment
    (``ttl: Seconds = env(...)``, then the text in triple quotes); its lines are joined by
    single spaces. Help is documentation: a class without readable source (``exec()``,
    ``type()``, a REPL, a wheel without .py files) or one the parser does not understand has
    none, never an error.
    """
    cached = klass.__dict__.get("__renderkit_docs__")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    try:
        docs = _read_attribute_docstrings(klass)
    except Exception:  # never let documentation hide the error being reported
        docs = {}
    type.__setattr__(klass, "__renderkit_docs__", docs)
    return docs


def _read_attribute_docstrings(klass: type) -> dict[str, str]:
    import ast
    import inspect
    import textwrap

    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):  # no source file: exec(), type(), a REPL, bytecode only
        return {}
    if source[:1].isspace():  # a multi-line string less indented than the nested class
        source = "def _():\n" + source
    node = next((n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef)), None)
    if node is None or node.name != klass.__name__:
        return {}
    docs: dict[str, str] = {}
    for statement, following in zip(node.body, node.body[1:], strict=False):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


# --- settings ----------------------------------------------------------------------------


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(env,))
class Settings:
    """Base class for typed settings; declare fields with :func:`env` and call :meth:`load`.

    Instances are immutable. ``repr()`` and :meth:`summary` mask secrets. A subclass can also
    be built directly with keyword arguments (``AppSettings(database_url="...")``); string
    values then go through the same parsers as environment variables.
    """

    __renderkit_fields__: dict[str, tuple[EnvField, _Parser]]

    def __init__(self, **values: Any) -> None:
        cls = type(self)
        spec = cls._spec()
        unknown = sorted(set(values) - set(spec))
        if unknown:
            raise TypeError(f"{cls.__name__}() got unknown settings: {', '.join(unknown)}")
        given = {spec[attr][0].name: (value, "argument") for attr, value in values.items()}
        report = cls._collect(given, None, "argument")
        if not report.ok:
            raise report.error()
        assert report.settings is not None
        object.__setattr__(self, "_renderkit_values", report.settings._renderkit_values)
        object.__setattr__(self, "_renderkit_sources", report.settings._renderkit_sources)
        for attr, value in report.settings._renderkit_values.items():
            object.__setattr__(self, attr, value)

    @classmethod
    def _spec(cls) -> dict[str, tuple[EnvField, _Parser]]:
        cached = cls.__dict__.get("__renderkit_fields__")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        import typing

        try:
            hints = typing.get_type_hints(cls)
        except NameError as exc:
            raise TypeError(
                f"{cls.__name__}: a field annotation names something not importable from its "
                f"module ({exc}); define settings classes at module level"
            ) from None
        spec: dict[str, tuple[EnvField, _Parser]] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, EnvField):
                    if attr not in hints:
                        raise TypeError(f"{cls.__name__}.{attr}: add a type annotation")
                    where = f"{cls.__name__}.{attr}"
                    spec[attr] = (value, _build_parser(hints[attr], where))
        type.__setattr__(cls, "__renderkit_fields__", spec)
        return spec

    @classmethod
    def _help_texts(cls) -> dict[str, str]:
        """``{attribute: help}``: ``help=``, else the attribute docstring (read once, lazily)."""
        cached = cls.__dict__.get("__renderkit_help__")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        texts: dict[str, str] = {}
        for attr, (field, _) in cls._spec().items():
            owner = next((k for k in cls.__mro__ if vars(k).get(attr) is field), cls)
            texts[attr] = field.help or _attribute_docstrings(owner).get(attr, "")
        type.__setattr__(cls, "__renderkit_help__", texts)
        return texts

    @classmethod
    def describe(cls) -> list[FieldInfo]:
        """List every field with its variable, type, default and help, for docs and doctor."""
        infos: list[FieldInfo] = []
        help_texts = cls._help_texts()
        for attr, (field, parser) in cls._spec().items():
            if field.required:
                default = None
            elif field.secret and field.default is not None:
                default = MASK
            elif isinstance(field.default, str):
                default = mask_url(field.default)
            else:
                default = _display(field.default)
            infos.append(
                FieldInfo(
                    attribute=attr,
                    variable=field.name,
                    type=parser.type_name + (" | None" if parser.optional else ""),
                    expected=parser.expected,
                    default=default,
                    required=field.required,
                    required_in=field.required_in,
                    secret=field.secret,
                    help=help_texts[attr],
                    aliases=field.aliases,
                )
            )
        return infos

    @classmethod
    def raw(cls, environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
        """Return ``{VARIABLE: text as set, or None}`` for every field, unparsed and unchecked.

        For tools that judge values themselves (``renderkit doctor`` measures secret lengths);
        aliases are resolved, so the key is the field's main variable. Handle with care: the
        text of secrets is included.
        """
        env_map = os.environ if environ is None else environ
        given = {key: (value, "environment") for key, value in env_map.items()}
        out: dict[str, str | None] = {}
        for field, _ in cls._spec().values():
            _, value, source = _lookup(field, given)
            out[field.name] = value if source != "default" and isinstance(value, str) else None
        return out

    @classmethod
    def check(
        cls,
        environ: Mapping[str, str] | None = None,
        dotenv: str | os.PathLike[str] | bool | None = None,
    ) -> ConfigReport:
        """Load like :meth:`load` but return a :class:`ConfigReport` instead of raising."""
        env_map = os.environ if environ is None else environ
        given: dict[str, tuple[Any, str]] = {}
        problems: list[ConfigProblem] = []
        dotenv_values: dict[str, str] = {}
        if dotenv:
            path = os.path.abspath(".env" if dotenv is True else os.fspath(dotenv))
            dotenv_values, problems = read_dotenv(path)
            source = f".env file {path}"
            for key, value in dotenv_values.items():
                given[key] = (value, source)
        for key, value in env_map.items():
            given[key] = (value, "environment")  # real variables always win over .env
        merged = {**dotenv_values, **env_map}
        return cls._collect(given, merged, "environment", problems)

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        dotenv: str | os.PathLike[str] | bool | None = None,
    ) -> Self:
        """Read, parse and validate every field; raise :class:`ConfigError` listing all problems.

        ``environ`` defaults to ``os.environ``. ``dotenv`` is a ``.env`` path, or ``True`` for
        ``./.env``; its values fill only variables the environment does not set, and a missing
        file is ignored (a deployed app usually has none).
        """
        report = cls.check(environ, dotenv)
        if report.settings is None:
            raise report.error()
        return report.settings  # type: ignore[return-value]  # _collect builds a cls

    @classmethod
    def _collect(
        cls,
        given: Mapping[str, tuple[Any, str]],
        env_map: Mapping[str, str] | None,
        default_source: str,
        problems: list[ConfigProblem] | None = None,
    ) -> ConfigReport:
        problems = list(problems or [])
        stage: str | None = None
        if env_map is not None:
            try:
                stage = environment(env_map)
            except ConfigError as exc:
                problems.extend(exc.errors)
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        reports: list[FieldReport] = []
        for attr, (field, parser) in cls._spec().items():
            value, report = _load_field(cls, attr, field, parser, given, stage, default_source)
            reports.append(report)
            if report.problem is not None:
                problems.append(report.problem)
            else:
                values[attr] = value
                sources[attr] = report.source
        settings: Settings | None = None
        if not problems:
            settings = object.__new__(cls)
            object.__setattr__(settings, "_renderkit_values", values)
            object.__setattr__(settings, "_renderkit_sources", sources)
            for attr, value in values.items():
                object.__setattr__(settings, attr, value)
            problems.extend(settings._cross_problems(default_source))
            if problems:
                settings = None
        return ConfigReport(cls.__name__, stage, tuple(reports), tuple(problems), settings)

    def cross_check(self) -> Iterable[tuple[str, str]]:
        """Override to check fields against each other; yield ``(VARIABLE, message)`` pairs.

        Runs after every field parsed; its problems join the same :class:`ConfigError`
        (``yield "REDIS_URL", "is required when CACHE_TYPE=redis"``). Never put a secret's
        value in the message.
        """
        return ()

    def _cross_problems(self, default_source: str) -> list[ConfigProblem]:
        spec = type(self)._spec()
        by_name = {field.name: attr for attr, (field, _) in spec.items()}
        problems = []
        for variable, message in self.cross_check():
            attr = by_name.get(variable)
            source = self._renderkit_sources.get(attr, default_source) if attr else default_source
            problems.append(ConfigProblem(variable, message, source))
        return problems

    _renderkit_values: dict[str, Any]
    _renderkit_sources: dict[str, str]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use replace(**changes)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def replace(self, **changes: Any) -> Self:
        """Return a copy with some fields changed (string values are parsed)."""
        current = dict(self._renderkit_values)
        current.update(changes)
        return type(self)(**current)

    def summary(self) -> dict[str, str]:
        """Return ``{VARIABLE: display value}``; secrets show ``****``, URL passwords are masked."""
        out: dict[str, str] = {}
        for attr, (field, _) in type(self)._spec().items():
            value = self._renderkit_values[attr]
            out[field.name] = MASK if field.secret and value is not None else _display(value)
        return out

    def sources(self) -> dict[str, str]:
        """Return ``{VARIABLE: where the value came from}`` (environment, .env file, default)."""
        spec = type(self)._spec()
        return {spec[attr][0].name: source for attr, source in self._renderkit_sources.items()}

    def as_dict(self) -> dict[str, Any]:
        """Return ``{attribute: value}`` with real values (secrets included: handle with care)."""
        return dict(self._renderkit_values)

    def options(self, *attributes: str) -> dict[str, Any]:
        """Constructor options: ``{attribute: value}`` of the named fields (all when none is
        named) that are not None, so an unset optional variable leaves the constructor's own
        default (``Health(**HealthSettings.load().options("timeout", "cache_ttl"))``)."""
        names = attributes or tuple(self._renderkit_values)
        values = self._renderkit_values
        return {name: values[name] for name in names if values[name] is not None}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Settings)
        return self._renderkit_values == other._renderkit_values

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.summary().items()))))

    def __repr__(self) -> str:
        spec = type(self)._spec()
        parts = []
        for attr, (field, _) in spec.items():
            value = self._renderkit_values[attr]
            shown = MASK if field.secret and value is not None else _display(value)
            parts.append(f"{attr}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _lookup(field: EnvField, given: Mapping[str, tuple[Any, str]]) -> tuple[str, Any, str]:
    """(variable read, raw value, source): the first of the field's names that is set."""
    for name in field.names:
        entry = given.get(name)
        if entry is not None and not (isinstance(entry[0], str) and not entry[0].strip()):
            return name, entry[0], entry[1]
    entry = given.get(field.name)
    if entry is not None:
        return field.name, entry[0], entry[1]
    return field.name, field.default, "default"


def _load_field(
    owner: type[Settings],
    attr: str,
    field: EnvField,
    parser: _Parser,
    given: Mapping[str, tuple[Any, str]],
    stage: str | None,
    default_source: str,
) -> tuple[Any, FieldReport]:
    """Read, parse and check one field; the report carries its display value or its problem."""
    variable, raw, source = _lookup(field, given)
    problem: ConfigProblem | None = None
    value: Any = None
    missing = raw is _MISSING or (
        source == "default" and stage is not None and stage in field.required_in
    )
    if missing:
        where = "" if raw is _MISSING else f" in {stage}"
        help_text = owner._help_texts()[attr]  # the error path: the source may be read
        hint = f" ({help_text})" if help_text else ""
        problem = ConfigProblem(
            field.name,
            f"is required{where} but not set; expected {parser.expected}{hint}",
            default_source,
            expected=parser.expected,
            found="not set",
        )
    elif isinstance(raw, str):
        value, problem = _parse_field(field, parser, raw, source, variable)
    else:
        value = list(raw) if isinstance(raw, list) else raw
        found = MASK if field.secret or parser.hides_input else _found(repr(raw), False)
        value, why = _constrain(field, parser, value) if value is not None else (None, None)
        if why is not None:
            problem = ConfigProblem(
                variable, f"{why}; got {found}", source, expected=parser.expected, found=found
            )
    if problem is not None:
        display, shown = ("(not set)", default_source) if missing else ("(invalid)", source)
        return None, FieldReport(attr, variable, display, shown, field.secret, problem)
    display = MASK if field.secret and value is not None else _display(value)
    return value, FieldReport(attr, variable, display, source, field.secret)


def _bound(parser: _Parser, bound: Any) -> Any:
    return parser.parse(bound) if isinstance(bound, str) else bound


def _constrain(field: EnvField, parser: _Parser, value: Any) -> tuple[Any, str | None]:
    """(value to keep, None) or (None, why it is refused): bounds, then the validator."""
    low, high = field.minimum, field.maximum
    try:
        if low is not None and value < _bound(parser, low):
            return None, f"expected {parser.expected}, at least {_display(_bound(parser, low))}"
        if high is not None and value > _bound(parser, high):
            return None, f"expected {parser.expected}, at most {_display(_bound(parser, high))}"
    except TypeError:
        return None, f"expected {parser.expected}"
    if field.validate is not None:
        try:
            value = field.validate(value)
        except ConfigError as exc:  # a validator reusing a from_env() parser
            return None, "; ".join(p.message for p in exc.errors) or f"expected {parser.expected}"
        except ValueError as exc:
            return None, redact(str(exc)) or f"expected {parser.expected}"
    return value, None


def _parse_field(
    field: EnvField, parser: _Parser, raw: str, source: str, variable: str
) -> tuple[Any, ConfigProblem | None]:
    """Parse one raw string; the problem never carries a secret or a URL password."""
    found = _found(raw, field.secret or parser.hides_input)
    if not raw.strip():
        if parser.empty is not None:
            return parser.empty(), None
        reason = f"expected {parser.expected}; the value is empty"
        found = "''"
    elif len(raw) > _MAX_INPUT and not parser.is_list:
        reason = f"expected {parser.expected}; the value is too long"
    else:
        try:
            value = parser.parse(raw)
        except ValueError as exc:
            # A list's item parser names the item type; the list's own message names the format.
            reason = f"expected {parser.expected}" if parser.is_list else redact(str(exc))
            if not reason.startswith("expected"):
                reason = f"expected {parser.expected} ({reason})"
        else:
            if value is None:
                return None, None
            value, why = _constrain(field, parser, value)
            if why is None:
                return value, None
            reason = why  # a validator's own words: what the value must be
    return None, ConfigProblem(
        variable, f"{reason}; got {found}", source, expected=parser.expected, found=found
    )


# --- CORS --------------------------------------------------------------------------------


def _origin(text: str) -> str:
    """One CORS origin: ``*`` or ``scheme://host[:port]`` (a trailing ``/`` is dropped)."""
    from urllib.parse import urlsplit

    origin = text.strip().rstrip("/")
    if origin == "*":
        return origin
    try:
        parts = urlsplit(origin)
        _ = parts.port
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise ValueError(
            "expected origins such as https://app.example.com (scheme and host, no path)"
        )
    return origin


def _origins(values: list[str]) -> list[str]:
    return [_origin(value) for value in values]


class CorsSettings(Settings):
    """Cross-origin requests (CORS), read by :func:`cors_options`."""

    allowed_origins: list[str] | None = env(
        "CORS_ALLOWED_ORIGINS", default=None, aliases=("APP_URL",), validate=_origins
    )
    """Origins allowed to call the app from a browser, comma-separated
    (https://app.example.com,https://www.example.com); APP_URL is read when unset. '*' allows any
    origin without credentials."""
    allow_credentials: bool = env("CORS_ALLOW_CREDENTIALS", default=False)
    """Let browsers send cookies and Authorization headers cross-origin."""
    allow_methods: list[str] = env(
        "CORS_ALLOW_METHODS", default="GET,POST,PUT,PATCH,DELETE,OPTIONS"
    )
    """Methods allowed on cross-origin requests."""
    allow_headers: list[str] = env(
        "CORS_ALLOW_HEADERS", default="Authorization,Content-Type,X-Request-ID"
    )
    """Request headers a cross-origin request may send."""
    expose_headers: list[str] = env(
        "CORS_EXPOSE_HEADERS",
        default="X-Request-ID,Retry-After,RateLimit-Limit,RateLimit-Remaining,RateLimit-Reset",
    )
    """Response headers browser code may read."""
    max_age: Seconds = env("CORS_MAX_AGE", default="10m", minimum="0s", maximum="1d")
    """How long browsers may cache a preflight answer."""

    def cross_check(self) -> Iterable[tuple[str, str]]:
        """Browsers refuse ``*`` together with credentials; say so at start-up."""
        if self.allow_credentials and "*" in (self.allowed_origins or []):
            yield (
                "CORS_ALLOWED_ORIGINS",
                "is '*' while CORS_ALLOW_CREDENTIALS=true, which browsers refuse; "
                "list the origins instead",
            )


def cors_options(
    environ: Mapping[str, str] | None = None,
    *,
    framework: Literal["starlette", "flask"] = "starlette",
) -> dict[str, Any]:
    """Keyword arguments for Starlette's ``CORSMiddleware`` (or flask-cors' ``CORS``) from env.

    Reads CORS_ALLOWED_ORIGINS (else APP_URL), CORS_ALLOW_CREDENTIALS, CORS_ALLOW_METHODS,
    CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS and CORS_MAX_AGE. With no origin configured the
    result allows no cross-origin request (never ``*`` by accident). Raises
    :class:`ConfigError` listing every bad variable.
    ``app.add_middleware(CORSMiddleware, **cors_options())``;
    ``CORS(app, **cors_options(framework="flask"))``.
    """
    settings = CorsSettings.load(environ)
    origins = list(settings.allowed_origins or [])
    if framework == "flask":
        return {
            "origins": origins,
            "supports_credentials": settings.allow_credentials,
            "methods": list(settings.allow_methods),
            "allow_headers": list(settings.allow_headers),
            "expose_headers": list(settings.expose_headers),
            "max_age": int(settings.max_age),
        }
    if framework != "starlette":
        raise ValueError("cors_options(framework=...): use 'starlette' or 'flask'")
    return {
        "allow_origins": origins,
        "allow_credentials": settings.allow_credentials,
        "allow_methods": list(settings.allow_methods),
        "allow_headers": list(settings.allow_headers),
        "expose_headers": list(settings.expose_headers),
        "max_age": int(settings.max_age),
    }
