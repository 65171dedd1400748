"""Property tests for the env-value parsers: bools, numbers, durations, sizes, lists, URLs."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from renderkit.config import (
    MASK,
    ByteSize,
    ConfigError,
    PostgresUrl,
    RedisUrl,
    Settings,
    env,
    format_duration,
    mask_url,
    parse_bool,
    parse_bytes,
    parse_duration,
    parse_float,
    parse_int,
    parse_list,
    parse_postgres_url,
    parse_redis_url,
    redact,
)

FUZZ = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])

ANY_TEXT = st.text(max_size=300)
NUMBERISH = st.from_regex(r"\s*-?[0-9]{0,25}(\.[0-9]{0,8})?\s*[a-zA-Zµ ]{0,8}\s*", fullmatch=True)
DURATIONISH = st.lists(
    st.tuples(
        st.from_regex(r"[0-9]{1,6}(\.[0-9]{0,3})?", fullmatch=True),
        st.sampled_from(["us", "ms", "s", "m", "h", "d", "w", "min", "hours", "", "x", "µs"]),
    ),
    min_size=1,
    max_size=4,
).map(lambda parts: " ".join(n + u for n, u in parts))


@FUZZ
@given(ANY_TEXT)
def test_parse_bool_returns_a_bool_or_raises_valueerror(value: str) -> None:
    """Only the documented words are booleans; everything else is a ValueError."""
    try:
        result = parse_bool(value)
    except ValueError as exc:
        assert "boolean" in str(exc)
        return
    assert isinstance(result, bool)
    assert value.strip().lower() in {"true", "1", "yes", "on", "y", "t"} | {
        "false",
        "0",
        "no",
        "off",
        "n",
        "f",
    }


@FUZZ
@given(st.one_of(ANY_TEXT, NUMBERISH))
@example("1e400")
@example("nan")
@example("-inf")
@example("١٢٣")  # Arabic-Indic digits: not ASCII, refused
def test_number_parsers_return_finite_numbers_or_raise_valueerror(value: str) -> None:
    """parse_int / parse_float never raise anything but ValueError and never return inf/nan."""
    try:
        number = parse_float(value)
    except ValueError:
        pass
    else:
        assert number == number and abs(number) != float("inf")
    try:
        whole = parse_int(value)
    except ValueError:
        pass
    else:
        assert isinstance(whole, int) and value.strip().isascii()


@FUZZ
@given(st.one_of(ANY_TEXT, NUMBERISH, DURATIONISH))
@example("9" * 250 + "w")
@example("1h30m")
@example("-5s")
@example("0.0000001s")
@example("5 m 3")
def test_parse_duration_is_non_negative_and_round_trips(value: str) -> None:
    """A parsed duration is a non-negative timedelta that format_duration writes back exactly."""
    try:
        result = parse_duration(value)
    except ValueError as exc:
        assert "duration" in str(exc)
        return
    assert isinstance(result, timedelta)
    assert result >= timedelta(0)
    assert parse_duration(format_duration(result)) == result


@FUZZ
@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10**6)))
def test_format_duration_output_always_parses_back(value: timedelta) -> None:
    """format_duration's output is valid parse_duration input with the same value."""
    assert parse_duration(format_duration(value)) == value


@FUZZ
@given(st.one_of(ANY_TEXT, NUMBERISH))
@example("1.5GiB")
@example("0.5")
@example("9" * 60 + "tib")
@example("-1kb")
def test_parse_bytes_returns_whole_non_negative_bytes(value: str) -> None:
    """A parsed size is a non-negative whole ByteSize; anything else is a ValueError."""
    try:
        result = parse_bytes(value)
    except ValueError as exc:
        assert "size" in str(exc)
        return
    assert isinstance(result, ByteSize) and result >= 0


@FUZZ
@given(
    st.one_of(
        ANY_TEXT,
        st.lists(st.text(max_size=10), max_size=6).map(", ".join),
        st.recursive(
            st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none()),
            lambda inner: st.lists(inner, max_size=3),
            max_leaves=8,
        ).map(lambda v: __import__("json").dumps(v)),
    )
)
@example("[" * 5000)
@example('["a", ["b"]]')
def test_parse_list_returns_stripped_items_or_raises_valueerror(value: str) -> None:
    """parse_list gives stripped non-empty strings (comma or JSON form) or a ValueError."""
    try:
        items = parse_list(value)
    except ValueError:
        return
    assert all(isinstance(i, str) and i and i == i.strip() for i in items)
    try:
        numbers = parse_list(value, parse_int)
    except ValueError:
        return
    assert all(isinstance(n, int) for n in numbers)


URLISH = st.builds(
    lambda scheme, user, pw, host, port, path: (
        f"{scheme}://{user}{':' + pw if pw else ''}{'@' if user or pw else ''}{host}{port}{path}"
    ),
    st.sampled_from(["postgres", "postgresql", "redis", "rediss", "unix", "http", "", "PostGres"]),
    st.sampled_from(["", "user", "u%40x"]),
    st.one_of(st.just(""), st.text(max_size=12)),
    st.sampled_from(["", "localhost", "db.internal", "[::1]", "[::1", "h:x"]),
    st.sampled_from(["", ":5432", ":0", ":65536", ":-1", ":abc", ":٥٤"]),
    st.sampled_from(["", "/0", "/app", "/x/y", "/15?ssl=true", "?host=/tmp"]),
)


@FUZZ
@given(st.one_of(ANY_TEXT, URLISH))
@example("postgres://user:secret@db:5432/app")
@example("redis://:pw@[::1")
@example("redis://h:99999/0")
@example("://:expe")
def test_url_parsers_validate_and_never_echo_the_password(value: str) -> None:
    """URL parsers return a normalised URL or a ValueError whose message holds no part of it."""
    for parser, schemes in (
        (parse_postgres_url, ("postgresql://",)),
        (parse_redis_url, ("redis://", "rediss://", "unix://")),
    ):
        try:
            url = parser(value)
        except ValueError as exc:
            message = str(exc)
            password = value.partition("://")[2].partition("@")[0].partition(":")[2]
            if len(password) >= 4:
                # The same URL with the password replaced: any occurrence of the password's
                # text in that message is the fixed wording ("expe" in "expected"), not a leak.
                try:
                    parser(value.replace(password, "\u2603" * len(password)))
                    baseline = ""
                except ValueError as redacted:
                    baseline = str(redacted)
                assert message.count(password) <= baseline.count(password)
            continue
        assert url.lower().startswith(schemes)
        if "secret" in url:
            assert "secret" not in url.masked and "secret" not in repr(url)


@FUZZ
@given(URLISH.map(lambda u: u.replace("://", "://user:hunter2@", 1)))
def test_mask_url_hides_the_password(value: str) -> None:
    """mask_url never lets a URL's password through."""
    masked = mask_url(value)
    if "://user:hunter2@" in value and not value.startswith("://"):
        assert "hunter2" not in masked and MASK in masked


# --- secrets never leave (issue #15 item 3) ------------------------------------------------

# Passwords as people paste them: letters and digits plus every character URLs reserve.
PASSWORD = st.text(
    alphabet=st.sampled_from("abcdefghXYZ0123456789@#/?:%!$&'()*+,;=[]~-._"),
    min_size=8,
    max_size=24,
)
_WORDING = (
    "expected a postgresql:// URL with a host (postgresql://user:password@host:5432/db); "
    "expected a redis://, rediss:// (TLS) or unix:// URL; percent-encode; "
)


def _pieces(password: str) -> list[str]:
    """The password and each long run of it between reserved characters (a tail leaks too)."""
    import re

    return [password, *(part for part in re.split(r"[@#/?]", password) if len(part) >= 6)]


def _leaks(password: str, *outputs: str) -> list[str]:
    text = "\n".join(outputs)
    return [piece for piece in _pieces(password) if piece in text and piece not in _WORDING]


@FUZZ
@given(PASSWORD)
@example("pw#x@y/z?q")
@example("p@ss@word")
def test_redact_masks_the_whole_password_whatever_it_holds(password: str) -> None:
    """redact() leaves scheme, user, host, port and path, and nothing of the password."""
    for url, masked in (
        (f"postgresql://app:{password}@db.internal:5432/app", "postgresql://app:****@db.internal"),
        (f"redis://:{password}@cache:6379/0", "redis://:****@cache:6379/0"),
    ):
        out = redact(f"connect failed for {url} (attempt 2)")
        assert out.startswith(f"connect failed for {masked}"), out
        assert not _leaks(password, out)


@FUZZ
@given(PASSWORD)
@example("pw#x@y/z?q")
def test_url_validation_agrees_with_libpq_and_redis_py(password: str) -> None:
    """An accepted URL means the same password and host to libpq and redis-py; a rejected one
    says to percent-encode and echoes no part of the password."""
    from urllib.parse import quote, unquote

    from psycopg.conninfo import conninfo_to_dict
    from redis.connection import parse_url

    for raw in (password, quote(password, safe="")):
        pg = f"postgresql://app:{raw}@db.internal:5432/app"
        rd = f"redis://:{raw}@cache:6379/0"
        try:
            parse_postgres_url(pg)
        except ValueError as exc:
            assert raw == password and "percent-encode" in str(exc)
            assert not _leaks(password, str(exc))
        else:
            libpq = conninfo_to_dict(pg)
            assert (libpq["host"], libpq["password"]) == ("db.internal", unquote(raw))
        try:
            parse_redis_url(rd)
        except ValueError as exc:
            assert raw == password and "percent-encode" in str(exc)
            assert not _leaks(password, str(exc))
        else:
            parsed = parse_url(rd)
            assert (parsed["host"], parsed["password"]) == ("cache", unquote(raw))


class _UrlSettings(Settings):
    database_url: PostgresUrl = env("FUZZ_DATABASE_URL")  # deliberately not secret=True
    redis_url: RedisUrl | None = env("FUZZ_REDIS_URL", default=None)
    token: str = env("FUZZ_TOKEN", default="", secret=True)


@FUZZ
@given(PASSWORD)
@example("pw#x@y/z?q")
def test_no_password_in_config_errors_summary_or_repr(password: str) -> None:
    """Config errors, summary() and repr() never show a password, even of a non-secret field."""
    from urllib.parse import quote

    environ = {
        "FUZZ_DATABASE_URL": f"postgresql://app:{password}@db/app",
        "FUZZ_REDIS_URL": f"redis://:{password}@cache:6379/0",
        "FUZZ_TOKEN": password,
    }
    outputs: list[str] = []
    try:
        _UrlSettings.load(environ)
    except ConfigError as exc:
        outputs += [str(exc), repr(exc), *(p.found for p in exc.errors)]
    encoded = {
        **environ,
        "FUZZ_DATABASE_URL": f"postgresql://app:{quote(password, safe='')}@db/app",
        "FUZZ_REDIS_URL": f"redis://:{quote(password, safe='')}@cache:6379/0",
    }
    settings_ = _UrlSettings.load(encoded)
    outputs += [repr(settings_), str(settings_.summary()), str(_UrlSettings.check(encoded))]
    assert not _leaks(password, *outputs)
    assert not _leaks(quote(password, safe=""), *outputs)


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(PASSWORD)
@example("pw#x@y/z?q")
def test_no_password_in_doctor_output(password: str) -> None:
    """renderkit doctor's text and JSON never show a password (refused or unreachable URLs)."""
    import json
    from urllib.parse import quote

    from renderkit.cli._doctor import as_json, build_context, format_text, run_checks

    for raw in (password, quote(password, safe="")):
        environ = {
            "APP_ENV": "production",
            "DATABASE_URL": f"postgresql://app:{raw}@127.0.0.1:1/app",
            "REDIS_URL": f"redis://:{raw}@127.0.0.1:1/0",
            "SESSION_SECRET": raw,
        }
        ctx = build_context(environ)
        findings = run_checks(ctx)
        text = format_text(ctx, findings) + json.dumps(as_json(ctx, findings))
        assert not _leaks(password, text)
        assert not _leaks(raw, text)


@settings(deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(PASSWORD)
@example("pw#x@y/z?q")
def test_no_password_in_database_errors(password: str) -> None:
    """Database(url) refuses an ambiguous URL without echoing any of its password."""
    import pytest

    pytest.importorskip("psycopg_pool")
    from renderkit.db import Database

    url = f"postgresql://app:{password}@db.internal/app"
    try:
        Database(url)
    except Exception as exc:
        assert not _leaks(password, str(exc), repr(exc))
    else:  # accepted: it must then mean what libpq reads
        from psycopg.conninfo import conninfo_to_dict

        assert conninfo_to_dict(url)["host"] == "db.internal"


@settings(deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(PASSWORD)
@example("pw#x@y/z?q")
def test_no_password_in_health_details(password: str) -> None:
    """A check whose exception and details hold a URL with the password shows none of it."""
    import json

    from renderkit.health import CheckResult, Health

    url = f"postgresql://app:{password}@db.internal:5432/app"

    def failing() -> None:
        raise ConnectionError(f"could not connect to {url}")

    def detailed() -> CheckResult:
        return CheckResult("degraded", message=f"slow: {url}", details={"dsn": url})

    health = Health()
    health.add("db", failing, critical=True)
    health.add("replica", detailed, critical=False)
    report = health.run_sync(fresh=True)
    assert not _leaks(password, json.dumps(report.to_dict(detail=True), default=str))


@settings(deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(PASSWORD)
@example("pw#x@y/z?q")
def test_no_password_in_the_logging_pipeline(password: str) -> None:
    """A log line (event, extra field, exception text) holding a URL shows no password."""
    import io
    import logging

    import structlog

    from renderkit.logging import configure_logging

    url = f"redis://:{password}@cache:6379/0"
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging(environ={"APP_ENV": "production"}, stream=stream)
        log = logging.getLogger("renderkit.fuzz")
        log.warning("redis unreachable at %s", url, extra={"url": url})
        try:
            raise ConnectionError(f"Error connecting to {url}")
        except ConnectionError:
            log.exception("cache outage")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
    assert not _leaks(password, stream.getvalue())


@FUZZ
@given(PASSWORD)
@example("pw#x@y/z?q")
def test_no_password_in_any_renderkit_error(password: str) -> None:
    """Every RenderKitError masks URL passwords in its text, str() and repr()."""
    from renderkit.errors import BackendUnavailable, RenderKitError, SessionError

    url = f"postgresql://app:{password}@db.internal:5432/app"
    for error in (
        BackendUnavailable(f"could not connect to {url}"),
        SessionError(f"store {url} refused the write"),
        RenderKitError(f"{url} failed", 3),
        ConfigError(f"DATABASE_URL={url} is odd"),
    ):
        assert not _leaks(password, str(error), repr(error), *map(str, error.args)), error


@FUZZ
@given(st.text(alphabet=st.sampled_from("AB_=#'\"\\ \t\n\r\x00xé$"), max_size=200))
def test_read_dotenv_never_raises_and_never_echoes_a_value(content: str) -> None:
    """Any .env file gives values and problems; a problem names a key or a line, never a value."""
    import tempfile
    from pathlib import Path

    from renderkit.config import read_dotenv

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ".env"
        path.write_text(content + "\nSECRET_ONE='hunter2-hunter2\n", encoding="utf-8")
        values, problems = read_dotenv(path)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
    assert all("hunter2" not in str(problem) for problem in problems)
