"""Tests for renderkit.config: parsers, Settings loading, .env files, environment()."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderkit.config import (
    ByteSize,
    ConfigError,
    ConfigProblem,
    PostgresUrl,
    RedisUrl,
    Seconds,
    Settings,
    env,
    environment,
    explain_environment,
    format_bytes,
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
    read_dotenv,
    redact,
)
from renderkit.platform import detect

SECRET = "hunter2-very-secret"


class AppSettings(Settings):
    """The SPEC's entry-point example."""

    database_url: str = env("DATABASE_URL", secret=True)
    redis_url: str | None = env("REDIS_URL", default=None, secret=True)
    port: int = env("PORT", default=10000)
    request_timeout: timedelta = env("REQUEST_TIMEOUT", default="30s")
    cors_origins: list[str] = env("CORS_ALLOWED_ORIGINS", default=[])


class Typed(Settings):
    """One field of every supported type."""

    name: str = env("NAME", default="app")
    workers: int = env("WORKERS", default=2)
    ratio: float = env("RATIO", default=0.5)
    debug: bool = env("DEBUG", default=False)
    timeout: timedelta = env("TIMEOUT", default="30s")
    interval: Seconds = env("INTERVAL", default="250ms")
    max_body: ByteSize = env("MAX_BODY", default="1MiB")
    hosts: list[str] = env("HOSTS", default=[])
    ports: list[int] = env("PORTS", default="80,443")
    pair: tuple[int, ...] = env("PAIR", default=())
    mode: Literal["memory", "redis"] = env("CACHE_TYPE", default="memory")
    level: int | None = env("LEVEL", default=None)
    database: PostgresUrl = env("DATABASE_URL", default="postgres://u:pw@db:5432/app")
    redis: RedisUrl | None = env("REDIS_URL", default=None)


# --- parse_bool ---------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["true", "TRUE", " yes ", "1", "on", "On", "y", "t"])
def test_parse_bool_true(word: str) -> None:
    """Every documented true word, in any case, is True."""
    assert parse_bool(word) is True


@pytest.mark.parametrize("word", ["false", "False", "0", "no", "OFF", "n", "f"])
def test_parse_bool_false(word: str) -> None:
    """Every documented false word, in any case, is False."""
    assert parse_bool(word) is False


@pytest.mark.parametrize("word", ["", "maybe", "2", "tru", "enabled", "yes please"])
def test_parse_bool_rejects_unknown_words(word: str) -> None:
    """Unknown words raise ValueError naming the accepted words, not the value."""
    with pytest.raises(ValueError, match="true/false"):
        parse_bool(word)


# --- parse_duration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m 5s", timedelta(hours=1, minutes=30, seconds=5)),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5h", timedelta(minutes=90)),
        ("90", timedelta(seconds=90)),
        ("0.5", timedelta(milliseconds=500)),
        ("0", timedelta(0)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("10 minutes", timedelta(minutes=10)),
        ("3SEC", timedelta(seconds=3)),
        ("100us", timedelta(microseconds=100)),
        (" 0.1s ", timedelta(milliseconds=100)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    """Durations with units, combinations and plain seconds parse exactly."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "-5s", "-1", "5x", "s", "1h-30m", "abc", "1e3", "nan", "inf", "5s5", "1..5s"]
)
def test_parse_duration_rejects(text: str) -> None:
    """Negative, unit-less garbage and unknown units raise ValueError."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_parse_duration_too_long() -> None:
    """A duration beyond timedelta's range is a ValueError, not an OverflowError."""
    with pytest.raises(ValueError, match="too long"):
        parse_duration("99999999999999d")


@given(st.text(max_size=40))
def test_parse_duration_only_raises_value_error(text: str) -> None:
    """Any text either parses to a non-negative timedelta or raises ValueError."""
    try:
        result = parse_duration(text)
    except ValueError:
        return
    assert result >= timedelta(0)


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10_000)))
def test_format_duration_round_trips(value: timedelta) -> None:
    """parse_duration reads back exactly what format_duration writes."""
    assert parse_duration(format_duration(value)) == value


def test_format_duration_examples() -> None:
    """Durations format compactly."""
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(milliseconds=250)) == "250ms"
    assert format_duration(timedelta(0)) == "0s"
    assert format_duration(2.5) == "2s500ms"


# --- parse_bytes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1024", 1024),
        ("100MB", 100_000_000),
        ("100mb", 100_000_000),
        ("1.5GiB", 1536 * 1024 * 1024),
        ("512k", 512_000),
        ("512Ki", 512 * 1024),
        ("1 MiB", 1024 * 1024),
        ("2TB", 2 * 1000**4),
        ("0", 0),
        ("10b", 10),
        ("0.5kb", 500),
    ],
)
def test_parse_bytes(text: str, expected: int) -> None:
    """SI units are powers of 1000, IEC units powers of 1024; the result is a ByteSize."""
    result = parse_bytes(text)
    assert result == expected
    assert isinstance(result, ByteSize)


@pytest.mark.parametrize("text", ["", "-1MB", "lots", "1.5", "10XB", "MB", "1e6", "1,000"])
def test_parse_bytes_rejects(text: str) -> None:
    """Negative, fractional byte counts and unknown units raise ValueError."""
    with pytest.raises(ValueError, match="size"):
        parse_bytes(text)


@given(st.text(max_size=40))
def test_parse_bytes_only_raises_value_error(text: str) -> None:
    """Any text either parses to a non-negative ByteSize or raises ValueError."""
    try:
        result = parse_bytes(text)
    except ValueError:
        return
    assert result >= 0


@given(st.text(max_size=20))
def test_parse_bool_only_raises_value_error(text: str) -> None:
    """Any text is a bool or raises ValueError."""
    try:
        assert parse_bool(text) in (True, False)
    except ValueError:
        pass


def test_format_bytes() -> None:
    """Sizes format with binary units for people."""
    assert format_bytes(512 * 1024 * 1024) == "512 MiB"
    assert format_bytes(1536 * 1024 * 1024) == "1.5 GiB"
    assert format_bytes(900) == "900 B"


# --- numbers, lists, URLs --------------------------------------------------------------------


def test_parse_int_and_float() -> None:
    """Integers and finite floats parse; garbage raises ValueError without the value."""
    assert parse_int(" 42 ") == 42
    assert parse_float("0.5") == 0.5
    for bad in ("", "4.2", "x", "٣"):
        with pytest.raises(ValueError, match="integer"):
            parse_int(bad)
    for bad in ("", "nan", "inf", "x"):
        with pytest.raises(ValueError, match="number"):
            parse_float(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b, c", ["a", "b", "c"]),
        ('["a", "b"]', ["a", "b"]),
        ("", []),
        ("a,,b,", ["a", "b"]),
        ("https://x.com,https://y.com", ["https://x.com", "https://y.com"]),
    ],
)
def test_parse_list_both_forms(text: str, expected: list[str]) -> None:
    """Lists arrive comma-separated or as JSON arrays."""
    assert parse_list(text) == expected


def test_parse_list_items_are_parsed() -> None:
    """The item parser applies to every element, JSON numbers included."""
    assert parse_list("1, 2,3", parse_int) == [1, 2, 3]
    assert parse_list("[1, 2]", parse_int) == [1, 2]
    with pytest.raises(ValueError):
        parse_list("1,x", parse_int)
    with pytest.raises(ValueError):
        parse_list('[["nested"]]')
    with pytest.raises(ValueError):
        parse_list("[1,")
    with pytest.raises(ValueError):
        parse_list("[" * 100_000)


def test_postgres_url_normalised() -> None:
    """postgres:// becomes postgresql://; the repr hides the password."""
    url = parse_postgres_url("postgres://user:pw@db.internal:5432/app?sslmode=require")
    assert url == "postgresql://user:pw@db.internal:5432/app?sslmode=require"
    assert isinstance(url, PostgresUrl)
    assert "pw" not in repr(url)
    assert url.masked == "postgresql://user:****@db.internal:5432/app?sslmode=require"
    assert parse_postgres_url("postgresql:///app?host=/var/run/postgresql")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("mysql://u:pw@h/db", "scheme"),
        ("postgresql:///db", "host"),
        ("postgresql://u:pw@/db", "host"),
        ("db.internal:5432", "scheme"),
        ("postgresql://h:notaport/db", "postgresql"),
        ("", "postgresql"),
    ],
)
def test_postgres_url_rejects(text: str, reason: str) -> None:
    """Wrong schemes and missing hosts raise ValueError that never contains the password."""
    with pytest.raises(ValueError, match=reason) as info:
        parse_postgres_url(text)
    assert "pw" not in str(info.value)


def test_redis_urls() -> None:
    """redis://, rediss:// and unix:// are accepted."""
    assert parse_redis_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert parse_redis_url("rediss://:pw@cache:6380") == "rediss://:pw@cache:6380"
    assert parse_redis_url("unix:///tmp/redis.sock")
    for bad in ("http://h", "redis://", "redis://:pw@", "redis://h/abc", "unix://", "h:6379"):
        with pytest.raises(ValueError, match="redis"):
            parse_redis_url(bad)


def test_mask_url() -> None:
    """Passwords inside any URL are masked; URLs without one are unchanged."""
    assert mask_url("redis://:s3cret@h:6379/0") == "redis://:****@h:6379/0"
    assert mask_url("postgresql://u:p@h/db and amqp://x:y@z") == (
        "postgresql://u:****@h/db and amqp://x:****@z"
    )
    assert mask_url("https://example.com/a@b") == "https://example.com/a@b"


# --- Settings -----------------------------------------------------------------------------


def test_spec_example_loads_with_defaults() -> None:
    """The SPEC's example loads; defaults go through the parser; summary masks secrets."""
    settings = AppSettings.load({"DATABASE_URL": f"postgres://u:{SECRET}@h/db"})
    assert settings.port == 10000
    assert settings.request_timeout == timedelta(seconds=30)
    assert settings.cors_origins == []
    assert settings.redis_url is None
    assert settings.summary() == {
        "DATABASE_URL": "****",
        "REDIS_URL": "(not set)",
        "PORT": "10000",
        "REQUEST_TIMEOUT": "30s",
        "CORS_ALLOWED_ORIGINS": "",
    }
    assert SECRET not in repr(settings)
    assert settings.sources()["DATABASE_URL"] == "environment"
    assert settings.sources()["PORT"] == "default"


def test_every_type_parses_from_strings() -> None:
    """Every supported type parses from its string form."""
    s = Typed.load(
        {
            "NAME": "api",
            "WORKERS": "4",
            "RATIO": "0.25",
            "DEBUG": "yes",
            "TIMEOUT": "1h30m",
            "INTERVAL": "2s",
            "MAX_BODY": "10MB",
            "HOSTS": '["a.com", "b.com"]',
            "PORTS": "1, 2",
            "PAIR": "3,4",
            "CACHE_TYPE": "Redis",
            "LEVEL": "3",
            "DATABASE_URL": "postgres://u:pw@db/app",
            "REDIS_URL": "rediss://:pw@cache:6380/1",
        }
    )
    assert s.name == "api"
    assert s.workers == 4
    assert s.ratio == 0.25
    assert s.debug is True
    assert s.timeout == timedelta(hours=1, minutes=30)
    assert s.interval == 2.0 and isinstance(s.interval, Seconds)
    assert s.max_body == 10_000_000
    assert s.hosts == ["a.com", "b.com"]
    assert s.ports == [1, 2]
    assert s.pair == (3, 4)
    assert s.mode == "redis"
    assert s.level == 3
    assert s.database == "postgresql://u:pw@db/app"
    assert s.redis == "rediss://:pw@cache:6380/1"


def test_defaults_of_every_type() -> None:
    """String defaults are parsed, other defaults used as given."""
    s = Typed.load({})
    assert s.timeout == timedelta(seconds=30)
    assert s.interval == 0.25
    assert s.max_body == 1024 * 1024
    assert s.ports == [80, 443]
    assert s.database == "postgresql://u:pw@db:5432/app"
    assert s.level is None


def test_summary_masks_url_passwords_of_non_secret_fields() -> None:
    """A non-secret URL field still never shows its password."""
    s = Typed.load({"REDIS_URL": f"redis://:{SECRET}@cache:6379/0"})
    summary = s.summary()
    assert summary["REDIS_URL"] == "redis://:****@cache:6379/0"
    assert summary["DATABASE_URL"] == "postgresql://u:****@db:5432/app"
    assert SECRET not in repr(s)


def test_empty_values() -> None:
    """Empty strings are errors for plain types, None for optional fields, [] for lists."""
    s = Typed.load({"LEVEL": "", "HOSTS": "", "REDIS_URL": " "})
    assert s.level is None and s.hosts == [] and s.redis is None
    with pytest.raises(ConfigError) as info:
        Typed.load({"WORKERS": "", "NAME": "  "})
    names = {p.variable for p in info.value.errors}
    assert names == {"WORKERS", "NAME"}
    assert "empty" in str(info.value)


def test_all_bad_input_in_one_error() -> None:
    """Every bad variable is reported at once, each with what was expected and its source."""
    bad = {
        "WORKERS": "four",
        "RATIO": "",
        "DEBUG": "maybe",
        "TIMEOUT": "-5s",
        "INTERVAL": "soon",
        "MAX_BODY": "-1MB",
        "PORTS": "80,http",
        "CACHE_TYPE": "disk",
        "DATABASE_URL": f"mysql://u:{SECRET}@h/db",
        "REDIS_URL": f"redis://:{SECRET}@",
    }
    with pytest.raises(ConfigError) as info:
        Typed.load(bad)
    err = info.value
    assert [p.variable for p in err.errors] == [
        "WORKERS",
        "RATIO",
        "DEBUG",
        "TIMEOUT",
        "INTERVAL",
        "MAX_BODY",
        "PORTS",
        "CACHE_TYPE",
        "DATABASE_URL",
        "REDIS_URL",
    ]
    assert all(p.source == "environment" for p in err.errors)
    assert all(p.expected for p in err.errors)
    text = str(err)
    assert "10 configuration problems" in text
    assert "negative" in text
    assert "'four'" in text
    assert "scheme" in text and "host" in text
    assert SECRET not in text
    assert SECRET not in repr(err)
    assert SECRET not in repr(err.errors)
    assert err.__context__ is None and err.__cause__ is None


def test_secret_value_never_echoed() -> None:
    """A secret's bad value is shown as **** in the message, repr and the problem's fields."""

    class S(Settings):
        database_url: PostgresUrl = env("DATABASE_URL", secret=True)
        pin: int = env("PIN", secret=True)

    with pytest.raises(ConfigError) as info:
        S.load({"DATABASE_URL": SECRET, "PIN": SECRET})
    err = info.value
    assert SECRET not in str(err) and SECRET not in repr(err)
    assert [p.found for p in err.errors] == ["****", "****"]


def test_missing_required_variable() -> None:
    """A field without a default is required, and the error says what to set."""
    with pytest.raises(ConfigError) as info:
        AppSettings.load({})
    (problem,) = info.value.errors
    assert problem.variable == "DATABASE_URL"
    assert "required" in problem.message
    assert problem.found == "not set"


def test_required_in_production() -> None:
    """required_in=("production",) needs the variable in production only."""

    class S(Settings):
        secret_key: str = env(
            "SECRET_KEY", default="dev-key", secret=True, required_in=("production",)
        )

    assert S.load({}).secret_key == "dev-key"
    assert S.load({"APP_ENV": "staging"}).secret_key == "dev-key"
    with pytest.raises(ConfigError, match="required in production") as info:
        S.load({"APP_ENV": "production"})
    assert "dev-key" not in str(info.value)
    with pytest.raises(ConfigError):
        S.load({"RENDER": "true"})  # production by platform detection
    assert S.load({"APP_ENV": "prod", "SECRET_KEY": "x"}).secret_key == "x"


def test_bad_environment_is_one_of_the_problems() -> None:
    """A garbled APP_ENV is reported together with the other problems."""
    with pytest.raises(ConfigError) as info:
        AppSettings.load({"APP_ENV": "prodd"})
    assert {p.variable for p in info.value.errors} == {"APP_ENV", "DATABASE_URL"}


def test_settings_are_immutable_and_comparable() -> None:
    """Settings cannot be changed in place; replace() returns a parsed copy."""
    s = AppSettings.load({"DATABASE_URL": "x"})
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]
    t = s.replace(port="8080")
    assert t.port == 8080 and s.port == 10000
    assert s == AppSettings.load({"DATABASE_URL": "x"})
    assert s != t
    assert hash(s) == hash(AppSettings.load({"DATABASE_URL": "x"}))


def test_direct_construction() -> None:
    """Settings can be built from keyword arguments; strings are parsed, errors collected."""
    s = AppSettings(database_url="x", request_timeout="5m")
    assert s.request_timeout == timedelta(minutes=5)
    with pytest.raises(ConfigError) as info:
        AppSettings(port="x")  # type: ignore[call-arg, arg-type]
    assert {p.variable for p in info.value.errors} == {"DATABASE_URL", "PORT"}
    with pytest.raises(TypeError, match="unknown"):
        AppSettings(database_url="x", nope=1)  # type: ignore[call-arg]


def test_describe_lists_fields() -> None:
    """describe() lists each field with its variable, type, default and secrecy."""
    info = {f.variable: f for f in AppSettings.describe()}
    assert info["DATABASE_URL"].required and info["DATABASE_URL"].default is None
    assert info["DATABASE_URL"].secret
    assert info["REQUEST_TIMEOUT"].default == "30s"
    assert info["PORT"].default == "10000"
    assert info["REDIS_URL"].type == "str | None"
    assert info["CORS_ALLOWED_ORIGINS"].as_dict()["variable"] == "CORS_ALLOWED_ORIGINS"


def test_check_returns_a_report() -> None:
    """check() reports every field and problem without raising."""
    report = AppSettings.check({"PORT": "x"})
    assert not report.ok and report.settings is None
    rows = {f.variable: f for f in report.fields}
    assert rows["PORT"].display == "(invalid)" and not rows["PORT"].ok
    assert rows["DATABASE_URL"].display == "(not set)"
    assert rows["REQUEST_TIMEOUT"].display == "30s"
    assert isinstance(report.error(), ConfigError)


def test_unsupported_type_is_a_type_error() -> None:
    """An annotation renderkit cannot parse is a programming error, raised as TypeError."""

    class Bad(Settings):
        data: dict[str, str] = env("DATA", default="{}")

    with pytest.raises(TypeError, match="unsupported"):
        Bad.load({})


def test_env_rejects_unknown_environment_name() -> None:
    """A typo in required_in is caught when the class is defined."""
    with pytest.raises(TypeError, match="prodution"):
        env("X", required_in=("prodution",))


def test_inheritance_adds_fields() -> None:
    """A subclass has its parent's fields plus its own."""

    class Child(AppSettings):
        workers: int = env("WEB_CONCURRENCY", default=1)

    s = Child.load({"DATABASE_URL": "x", "WEB_CONCURRENCY": "3"})
    assert s.workers == 3 and s.port == 10000


def test_problem_is_a_config_problem() -> None:
    """ConfigError.errors holds ConfigProblem objects."""
    with pytest.raises(ConfigError) as info:
        AppSettings.load({})
    assert isinstance(info.value.errors[0], ConfigProblem)
    assert isinstance(info.value, ValueError)


# --- .env files -----------------------------------------------------------------------------


DOTENV = """\
# comment
export DATABASE_URL=postgres://u:pw@db/app
PORT=9000   # inline comment
REQUEST_TIMEOUT='1m'
CORS_ALLOWED_ORIGINS="https://a.com,https://b.com"
MULTI="line one
line two"
ESCAPED="tab\\there \\"quoted\\""
LITERAL='no \\n escape # kept'
EMPTY=
"""


def test_read_dotenv(tmp_path: Path) -> None:
    """The .env reader understands export, comments, quotes and multi-line double quotes."""
    path = tmp_path / ".env"
    path.write_text(DOTENV)
    values, problems = read_dotenv(path)
    assert problems == []
    assert values["DATABASE_URL"] == "postgres://u:pw@db/app"
    assert values["PORT"] == "9000"
    assert values["REQUEST_TIMEOUT"] == "1m"
    assert values["MULTI"] == "line one\nline two"
    assert values["ESCAPED"] == 'tab\there "quoted"'
    assert values["LITERAL"] == "no \\n escape # kept"
    assert values["EMPTY"] == ""


def test_read_dotenv_bad_lines(tmp_path: Path) -> None:
    """Malformed lines are reported with their line number; a missing file is empty."""
    path = tmp_path / ".env"
    path.write_text(f"GOOD=1\nthis is not a setting {SECRET}\nOPEN='never closed\n")
    values, problems = read_dotenv(path)
    assert values == {"GOOD": "1"}
    assert [p.variable for p in problems] == ["line 2", "OPEN"]
    assert all(str(path) in p.source for p in problems)
    assert SECRET not in str(problems)
    assert read_dotenv(tmp_path / "missing") == ({}, [])


def test_dotenv_never_overrides_environment(tmp_path: Path) -> None:
    """Real environment variables win over the .env file, and sources say which is which."""
    path = tmp_path / ".env"
    path.write_text(DOTENV)
    s = AppSettings.load({"PORT": "7000"}, dotenv=path)
    assert s.port == 7000
    assert s.request_timeout == timedelta(minutes=1)
    assert s.database_url == "postgres://u:pw@db/app"
    sources = s.sources()
    assert sources["PORT"] == "environment"
    assert sources["REQUEST_TIMEOUT"] == f".env file {path}"


def test_dotenv_true_reads_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dotenv=True reads ./.env; a missing file is ignored."""
    monkeypatch.chdir(tmp_path)
    assert AppSettings.load({"DATABASE_URL": "x"}, dotenv=True).port == 10000
    (tmp_path / ".env").write_text("DATABASE_URL=y\nPORT=1234\n")
    assert AppSettings.load({}, dotenv=True).port == 1234


def test_error_names_the_dotenv_file(tmp_path: Path) -> None:
    """A bad value from a .env file says which file it came from."""
    path = tmp_path / "prod.env"
    path.write_text("DATABASE_URL=x\nPORT=eighty\n")
    with pytest.raises(ConfigError) as info:
        AppSettings.load({}, dotenv=path)
    (problem,) = info.value.errors
    assert problem.variable == "PORT"
    assert problem.source == f".env file {path}"
    assert str(path) in str(info.value)


def test_app_env_in_dotenv_counts(tmp_path: Path) -> None:
    """APP_ENV from the .env file decides the environment for required_in."""

    class S(Settings):
        key: str = env("KEY", default="k", required_in=("production",))

    path = tmp_path / ".env"
    path.write_text("APP_ENV=production\n")
    with pytest.raises(ConfigError):
        S.load({}, dotenv=path)


# --- environment() --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_vars", "expected"),
    [
        ({}, "development"),
        ({"APP_ENV": "production"}, "production"),
        ({"APP_ENV": "prod"}, "production"),
        ({"APP_ENV": "Stage"}, "staging"),
        ({"APP_ENV": "dev"}, "development"),
        ({"ENV": "staging"}, "staging"),
        ({"ENVIRONMENT": "production"}, "production"),
        ({"APP_ENV": "development", "ENV": "production"}, "development"),
        ({"ENV": "staging", "ENVIRONMENT": "production"}, "staging"),
        ({"APP_ENV": "", "ENV": "prod"}, "production"),
        ({"ENV": "/home/me/.shrc"}, "development"),
        ({"RENDER": "true"}, "production"),
        ({"RENDER": "true", "IS_PULL_REQUEST": "true"}, "staging"),
        ({"RENDER": "true", "IS_PULL_REQUEST": "true", "APP_ENV": "production"}, "production"),
        ({"DYNO": "web.1"}, "production"),
        ({"DYNO": "web.1", "HEROKU_PR_NUMBER": "3"}, "staging"),
        ({"FLY_APP_NAME": "x"}, "production"),
        ({"K_SERVICE": "x"}, "production"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "production"),
        ({"RAILWAY_ENVIRONMENT_NAME": "app-pr-4"}, "staging"),
        ({"IS_PULL_REQUEST": "true"}, "development"),
    ],
)
def test_environment(env_vars: dict[str, str], expected: str) -> None:
    """APP_ENV > ENV > ENVIRONMENT; otherwise PaaS detection decides."""
    assert environment(env_vars) == expected


@pytest.mark.parametrize("value", ["prodd", "qa-2", "PRODUCTION!"])
def test_environment_garbage_raises(value: str) -> None:
    """An unknown environment word raises ConfigError naming the variable."""
    with pytest.raises(ConfigError) as info:
        environment({"ENVIRONMENT": value})
    assert info.value.errors[0].variable == "ENVIRONMENT"


def test_explain_environment() -> None:
    """explain_environment says which variable or rule decided."""
    assert explain_environment({"ENV": "prod"}) == ("production", "ENV=prod")
    assert explain_environment({"RENDER": "true"})[1] == "running on a PaaS"


@pytest.mark.parametrize(
    "env_vars",
    [
        {},
        {"RENDER": "true"},
        {"RENDER": "true", "IS_PULL_REQUEST": "true"},
        {"RENDER": "false"},
        {"RENDER_SERVICE_ID": "srv"},
        {"DYNO": "web.1"},
        {"DYNO": "web.1", "HEROKU_PR_NUMBER": "9"},
        {"FLY_ALLOC_ID": "a"},
        {"FLY_MACHINE_ID": "m"},
        {"RAILWAY_PROJECT_ID": "p"},
        {"RAILWAY_ENVIRONMENT": "shop-pr-1"},
        {"K_SERVICE": "s"},
        {"CLOUD_RUN_JOB": "j"},
        {"ECS_CONTAINER_METADATA_URI": "http://x"},
        {"KUBERNETES_SERVICE_HOST": "h"},
    ],
)
def test_environment_agrees_with_platform_detection(
    env_vars: dict[str, str], tmp_path: Path
) -> None:
    """environment() and renderkit.platform.detect() agree on PaaS and preview."""
    platform = detect(env_vars, tmp_path, proc_self_cgroup=None)
    expected = (
        "staging" if platform.is_preview else "production" if platform.is_paas else "development"
    )
    assert environment(env_vars) == expected


def test_unresolvable_annotation_is_a_type_error() -> None:
    """An annotation naming a local-only type raises TypeError with a hint, not NameError."""
    Local = int

    class Bad(Settings):
        value: Local = env("VALUE", default="1")  # type: ignore[valid-type]

    with pytest.raises(TypeError, match="module level"):
        Bad.load({})


# --- one vocabulary for every from_env() (issue #12 item 2) -------------------------------


class _Vocabulary(Settings):
    storage: str = env("RK_STORAGE_URL", default="memory://", aliases=("RK_REDIS_URL",))
    ttl: timedelta = env("RK_TTL", default="5m", minimum="1ms", maximum="1d")
    workers: int = env("RK_WORKERS", default=1, minimum=1)
    timeout: Seconds | None = env("RK_TIMEOUT", default="30s")
    name: str = env("RK_NAME", default="app", validate=lambda v: v.lower())
    kind: str = env("RK_KIND", default="memory")

    def cross_check(self) -> Iterable[tuple[str, str]]:
        if self.kind == "redis" and self.storage == "memory://":
            yield "RK_KIND", "is redis but RK_STORAGE_URL (or RK_REDIS_URL) is not set"


def test_aliases_are_read_in_order_and_named_in_errors() -> None:
    """An alias fills the field when the main variable is unset; the main one wins."""
    assert _Vocabulary.load({"RK_REDIS_URL": "redis://r"}).storage == "redis://r"
    both = {"RK_REDIS_URL": "redis://r", "RK_STORAGE_URL": "redis://s"}
    assert _Vocabulary.load(both).storage == "redis://s"
    assert _Vocabulary.load({"RK_STORAGE_URL": " ", "RK_REDIS_URL": "redis://r"}).storage == (
        "redis://r"
    )


def test_bounds_validators_and_cross_checks_join_one_error() -> None:
    """minimum/maximum, validate= and cross_check() problems all arrive in one ConfigError."""
    with pytest.raises(ConfigError) as info:
        _Vocabulary.load({"RK_TTL": "2d", "RK_WORKERS": "0", "RK_KIND": "redis"})
    by_var = {p.variable: p.message for p in info.value.errors}
    assert set(by_var) == {"RK_TTL", "RK_WORKERS"}  # cross checks run once fields parse
    assert "at most 1d" in by_var["RK_TTL"] and "at least 1" in by_var["RK_WORKERS"]
    with pytest.raises(ConfigError) as info:
        _Vocabulary.load({"RK_KIND": "redis"})
    assert [p.variable for p in info.value.errors] == ["RK_KIND"]
    assert _Vocabulary.load({"RK_NAME": "MyApp"}).name == "myapp"


def test_optional_durations_read_off_as_unset() -> None:
    """``Seconds | None`` takes off/none/disabled/never as None; a real duration as seconds."""
    for word in ("off", "OFF", "none", "disabled", "never"):
        assert _Vocabulary.load({"RK_TIMEOUT": word}).timeout is None
    assert _Vocabulary.load({"RK_TIMEOUT": "2m"}).timeout == 120.0
    with pytest.raises(ConfigError, match="RK_TIMEOUT"):
        _Vocabulary.load({"RK_TIMEOUT": "soon"})


def test_raw_gives_the_text_as_set() -> None:
    """Settings.raw() returns unparsed text (aliases resolved), None for unset variables."""
    raw = _Vocabulary.raw({"RK_REDIS_URL": "redis://r", "RK_TTL": "garbage"})
    assert raw["RK_STORAGE_URL"] == "redis://r" and raw["RK_TTL"] == "garbage"
    assert raw["RK_WORKERS"] is None


def test_a_url_field_never_echoes_its_value_even_when_not_secret() -> None:
    """A rejected URL is shown as ****: a space or quote could end masking early."""

    class S(Settings):
        url: PostgresUrl = env("RK_PG_URL")

    with pytest.raises(ConfigError) as info:
        S.load({"RK_PG_URL": "postgresql://app:pa ss@h/db"})
    assert "pa ss" not in str(info.value) and info.value.errors[0].found == "****"


def test_truthy_words_are_defined_once() -> None:
    """parse_bool reads exactly platform's TRUE_WORDS / FALSE_WORDS."""
    from renderkit.platform import FALSE_WORDS, TRUE_WORDS

    assert all(parse_bool(w) for w in TRUE_WORDS) and not any(parse_bool(w) for w in FALSE_WORDS)
    assert not TRUE_WORDS & FALSE_WORDS


# --- redaction and URL validation (issue #15 item 3) --------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:pw#x@h/app", "postgresql://app:****@h/app"),
        ("redis://:p@ss@h:6379/0", "redis://:****@h:6379/0"),
        ("postgresql://app:p/w?x@h/db", "postgresql://app:****@h/db"),
        ("x=postgresql://u:p@h/db y", "x=postgresql://u:****@h/db y"),
        ("host=h password=s3cr3t dbname=x", "host=h password=**** dbname=x"),
        ("SESSION_SECRET=abc123 PORT=1", "SESSION_SECRET=**** PORT=1"),
        ("csrf_token=xyz&max_tokens=5", "csrf_token=****&max_tokens=5"),
        (
            "postgresql://h/db?password=zz&sslmode=require",
            "postgresql://h/db?password=****&sslmode=require",
        ),
        ("https://example.com/a@b", "https://example.com/a@b"),
        ("postgresql://postgres@127.0.0.1/db", "postgresql://postgres@127.0.0.1/db"),
        (
            "https://ghp_0123456789abcdefghijKLMN@github.com/o/r.git",
            "https://****@github.com/o/r.git",
        ),
    ],
)
def test_redact(text: str, expected: str) -> None:
    """Any URL's password is masked whatever it holds; user, host and path stay readable."""
    assert redact(text) == expected
    assert mask_url(text) == expected


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pw#x@h/app",
        "postgresql://app:p@ss@h/app",
        "postgresql://app:p/w@h/app",
        "postgresql://app:p?w@h/app",
        "postgresql://app:p%zz@h/app",
        "postgresql://app:p[1]@h/app",
    ],
)
def test_ambiguous_urls_are_refused_with_a_percent_encode_hint(url: str) -> None:
    """What libpq and redis-py would split differently is refused; the message says how to fix
    it and the ConfigError names the variable without any of the password."""
    with pytest.raises(ValueError, match="percent-encode"):
        parse_postgres_url(url)
    with pytest.raises(ValueError, match="percent-encode"):
        parse_redis_url(url.replace("postgresql://app", "redis://"))

    class S(Settings):
        url: PostgresUrl = env("DATABASE_URL")

    with pytest.raises(ConfigError) as info:
        S.load({"DATABASE_URL": url})
    assert info.value.errors[0].variable == "DATABASE_URL"
    password = url.split("app:", 1)[1].rsplit("@h", 1)[0]
    assert password not in str(info.value)


def test_percent_encoded_and_multi_host_urls_are_accepted() -> None:
    """The encoded form of the same passwords passes, as do libpq's multi-host URLs."""
    from urllib.parse import quote

    for password in ("pw#x", "p@ss", "p/w?x", "100%"):
        url = f"postgresql://app:{quote(password, safe='')}@h/app"
        assert parse_postgres_url(url) == url
    assert parse_postgres_url("postgresql://h1:5432,h2:5433/db")


# --- CORS (issue #16 item 7) ----------------------------------------------------------------


def test_cors_options_drive_starlettes_cors_middleware() -> None:
    """cors_options() from CORS_ALLOWED_ORIGINS: a listed origin gets its preflight answered,
    another origin gets no Access-Control-Allow-Origin."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from renderkit.config import cors_options

    environ = {
        "CORS_ALLOWED_ORIGINS": "https://app.example.com/, https://www.example.com",
        "CORS_ALLOW_CREDENTIALS": "true",
    }
    options = cors_options(environ)
    assert options["allow_origins"] == ["https://app.example.com", "https://www.example.com"]
    app = Starlette(
        routes=[Route("/api", lambda request: PlainTextResponse("ok"))],
        middleware=[Middleware(CORSMiddleware, **options)],
    )
    with TestClient(app) as client:
        preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
        answer = client.options("/api", headers=preflight)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "https://app.example.com"
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert answer.headers["access-control-max-age"] == "600"
        other = client.get("/api", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_cors_options_read_app_url_and_refuse_what_browsers_refuse() -> None:
    """APP_URL stands in for the list; '*' with credentials and origins with paths are errors;
    flask-cors gets its own keyword names; nothing configured allows no origin."""
    from renderkit.config import cors_options

    assert cors_options({"APP_URL": "https://repo.example.com"})["allow_origins"] == [
        "https://repo.example.com"
    ]
    assert cors_options({})["allow_origins"] == []
    flask = cors_options({"CORS_ALLOWED_ORIGINS": "https://a.example"}, framework="flask")
    assert flask["origins"] == ["https://a.example"] and "supports_credentials" in flask
    with pytest.raises(ConfigError) as info:
        cors_options({"CORS_ALLOWED_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": "yes"})
    assert info.value.errors[0].variable == "CORS_ALLOWED_ORIGINS"
    with pytest.raises(ConfigError, match="no path"):
        cors_options({"CORS_ALLOWED_ORIGINS": "https://a.example/app"})


@pytest.mark.integration
@pytest.mark.e2e
def test_a_percent_encoded_password_with_reserved_characters_reaches_a_real_redis(
    tmp_path: Path,
) -> None:
    """Attack: a Redis whose password is 'p@ss#w/rd?x:%'. The raw URL is refused with the
    percent-encode hint; the encoded one passes validation and authenticates with redis-py."""
    import sys
    from urllib.parse import quote

    redis = pytest.importorskip("redis")
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from _redis_topology import free_ports, start_server
    finally:
        sys.path.pop(0)
    password = "p@ss#w/rd?x:%"
    server = start_server(tmp_path / "redis", free_ports(1)[0])
    try:
        assert server.cli("config", "set", "requirepass", password) == "OK"
        raw = f"redis://:{password}@127.0.0.1:{server.port}/0"
        with pytest.raises(ValueError, match="percent-encode"):
            parse_redis_url(raw)
        encoded = parse_redis_url(f"redis://:{quote(password, safe='')}@127.0.0.1:{server.port}/0")
        client = redis.Redis.from_url(str(encoded), socket_timeout=5)
        try:
            assert client.ping() is True
        finally:
            client.close()
        assert password not in redact(f"connected to {encoded}") and quote(
            password, safe=""
        ) not in redact(str(encoded))
    finally:
        server.kill()


def test_a_validator_raising_configerror_keeps_one_flat_message() -> None:
    """A validator that reuses a parser raising ConfigError yields its message, not a nested
    "1 configuration problem" block."""

    def limit(value: str) -> str:
        raise ConfigError(ConfigProblem("RK_LIMIT", "expected a limit such as 100/hour", "code"))

    class S(Settings):
        rule: str = env("RK_LIMIT", default="x", validate=limit)

    with pytest.raises(ConfigError) as info:
        S.load({"RK_LIMIT": "lots"})
    (problem,) = info.value.errors
    assert problem.message == "expected a limit such as 100/hour; got 'lots'"


def test_a_nul_byte_in_the_password_is_refused_as_libpq_does() -> None:
    """%00 decodes to NUL, which libpq refuses: renderkit says so at start-up (fuzz finding)."""
    for parse in (parse_postgres_url, parse_redis_url):
        with pytest.raises(ValueError, match="NUL byte"):
            parse(
                "postgresql://app:p%00w@h/app".replace(
                    "postgresql", "redis" if parse is parse_redis_url else "postgresql"
                )
            )


def test_cors_options_drive_flask_cors() -> None:
    """cors_options(framework="flask") configures flask-cors: the listed origin is echoed."""
    flask = pytest.importorskip("flask")
    flask_cors = pytest.importorskip("flask_cors")
    from renderkit.config import cors_options

    app = flask.Flask(__name__)
    app.add_url_rule("/api", "api", lambda: "ok")
    environ = {"CORS_ALLOWED_ORIGINS": "https://app.example.com", "CORS_ALLOW_CREDENTIALS": "1"}
    flask_cors.CORS(app, **cors_options(environ, framework="flask"))
    client = app.test_client()
    answer = client.get("/api", headers={"Origin": "https://app.example.com"})
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    other = client.get("/api", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_options_leave_out_unset_fields() -> None:
    """``options()`` gives the set fields only, so a constructor keeps its own defaults."""

    class OptionSettings(Settings):
        timeout: Seconds | None = env("OPT_TIMEOUT", default=None)
        name: str = env("OPT_NAME", default="app")

    settings = OptionSettings.load({"OPT_NAME": "api"})
    assert settings.options() == {"name": "api"}
    assert settings.options("timeout") == {}
    assert OptionSettings.load({"OPT_TIMEOUT": "2s"}).options("timeout") == {"timeout": 2.0}


_SHARED_URL = env("RK_SHARED_URL", default=None, secret=True, help="The app's Redis.")


class _ParsedReader(Settings):
    url: RedisUrl | None = _SHARED_URL


class _RawReader(Settings):
    url: str | None = _SHARED_URL


def test_one_field_serves_several_classes_each_with_its_own_type() -> None:
    """A shared declaration (renderkit/_variables.py) is parsed by each class's annotation."""
    good = {"RK_SHARED_URL": "redis://cache:6379/0"}
    assert isinstance(_ParsedReader.load(good).url, RedisUrl)
    assert type(_RawReader.load(good).url) is str
    bad = {"RK_SHARED_URL": "http://cache"}
    with pytest.raises(ConfigError, match="RK_SHARED_URL"):
        _ParsedReader.load(bad)
    assert _RawReader.load(bad).url == "http://cache"  # doctor judges the raw text itself
    infos = [_ParsedReader.describe()[0], _RawReader.describe()[0]]
    assert {(i.variable, i.help, i.secret) for i in infos} == {
        ("RK_SHARED_URL", "The app's Redis.", True)
    }
    assert "cache:6379" not in repr(_RawReader.load(good))  # secret in both
