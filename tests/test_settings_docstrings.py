"""A settings field's help is its attribute docstring, read lazily from the source.

``env(help=...)`` still works and wins; a class without source has empty help, never an error;
nothing reads source at import or on a successful ``load()`` / ``from_env()``.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from renderkit.config import ConfigError, Seconds, Settings, env


class _Documented(Settings):
    """Fields documented by docstrings, by help= and by both."""

    ttl: Seconds = env("RK_DOC_TTL", default="300s", minimum="1ms")
    """Default time to live of an entry."""
    token: str = env("RK_DOC_TOKEN", secret=True)
    """The API token; generate one with
    `renderkit secret`   (wrapped lines are joined)."""
    given: int = env("RK_DOC_GIVEN", default=1, help="Given in the call.")
    both: int = env("RK_DOC_BOTH", default=2, help="The call's text.")
    """The docstring's text."""
    bare: int = env("RK_DOC_BARE", default=3)
    note = "not a field"
    """A docstring after a plain assignment is not a field's."""


class _Child(_Documented):
    bare: int = env("RK_DOC_BARE", default=4)
    """Now documented."""
    extra: bool = env("RK_DOC_EXTRA", default=False)
    """A field of the subclass."""


def _help(cls: type[Settings]) -> dict[str, str]:
    return {info.variable: info.help for info in cls.describe()}


_DOCUMENTED_HELP = {
    "RK_DOC_TTL": "Default time to live of an entry.",
    "RK_DOC_TOKEN": "The API token; generate one with `renderkit secret` (wrapped lines are "
    "joined).",
    "RK_DOC_GIVEN": "Given in the call.",
    "RK_DOC_BOTH": "The call's text.",  # help= wins over the docstring
    "RK_DOC_BARE": "",
}


def test_the_docstring_is_the_help() -> None:
    """describe() shows each field's docstring, its lines joined by single spaces."""
    assert _help(_Documented) == _DOCUMENTED_HELP


def test_a_subclass_reads_its_bases_and_its_own_docstrings() -> None:
    assert _help(_Child) == {
        **_DOCUMENTED_HELP,
        "RK_DOC_BARE": "Now documented.",
        "RK_DOC_EXTRA": "A field of the subclass.",
    }
    assert _help(_Documented)["RK_DOC_BARE"] == ""  # the base keeps its own


def test_the_required_error_quotes_the_docstring() -> None:
    with pytest.raises(ConfigError) as caught:
        _Documented.load({})
    message = str(caught.value)
    assert "RK_DOC_TOKEN" in message
    assert "(The API token; generate one with `renderkit secret`" in message


def test_help_given_in_the_call_is_quoted_too() -> None:
    class Called(Settings):
        url: str = env("RK_DOC_CALLED", help="Where the thing lives.")

    with pytest.raises(ConfigError, match=r"not set; expected .*\(Where the thing lives\.\)"):
        Called.load({})


def test_a_class_without_source_has_empty_help() -> None:
    """exec() and type() classes: no source, so no docstring help, and no error either."""
    namespace: dict[str, Any] = {"Settings": Settings, "env": env, "__name__": "rk_exec_mod"}
    exec(
        textwrap.dedent(
            '''
            class ExecSettings(Settings):
                name: str = env("RK_EXEC_NAME")
                """Documented, but nobody can read it."""
                given: str = env("RK_EXEC_GIVEN", default="x", help="Still shown.")
            '''
        ),
        namespace,
    )
    made = type(
        "MadeSettings",
        (Settings,),
        {"__annotations__": {"port": "int"}, "port": env("RK_MADE_PORT", default=1)},
    )
    assert _help(namespace["ExecSettings"]) == {"RK_EXEC_NAME": "", "RK_EXEC_GIVEN": "Still shown."}
    assert _help(made) == {"RK_MADE_PORT": ""}
    with pytest.raises(ConfigError) as caught:
        namespace["ExecSettings"].load({})
    assert str(caught.value).endswith("not set; expected a non-empty string")


def test_unreadable_source_degrades_to_empty_help(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(obj: object) -> str:
        raise OSError("could not get source code")

    monkeypatch.setattr(inspect, "getsource", broken)

    class NoSource(Settings):
        name: str = env("RK_NOSOURCE_NAME")
        """Not readable."""

    assert _help(NoSource) == {"RK_NOSOURCE_NAME": ""}
    with pytest.raises(ConfigError, match="RK_NOSOURCE_NAME"):
        NoSource.load({})


def test_a_class_nested_in_a_function_with_a_dedented_string() -> None:
    """Source less indented than the class (a multi-line string) still parses."""

    class Nested(Settings):
        level: str = env(
            "RK_NESTED_LEVEL",
            default="""a
multi-line default""",
        )
        """Read from a class nested in a function."""

    assert _help(Nested) == {"RK_NESTED_LEVEL": "Read from a class nested in a function."}


def test_the_source_is_read_once_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = inspect.getsource

    def counting(obj: Any) -> str:
        calls.append(obj)
        return real(obj)

    monkeypatch.setattr(inspect, "getsource", counting)

    class Counted(Settings):
        a: int = env("RK_COUNTED_A", default=1)
        """First."""
        b: int = env("RK_COUNTED_B")
        """Second."""

    Counted.describe()
    Counted.describe()
    for _ in range(3):
        with pytest.raises(ConfigError):
            Counted.load({})
    assert calls == [Counted]


def test_loading_reads_no_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """Declaring a class and a load() that succeeds never call inspect.getsource."""

    calls: list[object] = []  # recorded, not raised: a failed read is swallowed as no help

    def recording(obj: object) -> str:
        calls.append(obj)
        raise OSError("no source")

    monkeypatch.setattr(inspect, "getsource", recording)

    class Fresh(Settings):
        ttl: Seconds = env("RK_FRESH_TTL", default="1s")
        """A docstring nobody needs yet."""
        name: str = env("RK_FRESH_NAME")
        """Required."""

    assert Fresh.load({"RK_FRESH_NAME": "x"}).ttl == 1.0
    assert Fresh(name="y").name == "y"
    assert Fresh.check({"RK_FRESH_NAME": "x"}).ok
    assert calls == []


_FROM_ENV = """
import inspect

real = inspect.getsource
read = []  # recorded, not raised: a failed read is swallowed as no help

def recording(obj):
    mro = getattr(obj, "__mro__", ())
    if any(k.__module__ == "renderkit.config" and k.__name__ == "Settings" for k in mro):
        read.append(obj)
    return real(obj)  # anyio reads its own source at import

inspect.getsource = recording

from renderkit.cli._config import discover_settings

classes, skipped = discover_settings(strict=True)  # imports every renderkit module
assert len(classes) >= 10 and not skipped, (classes, skipped)
environ = {"DATABASE_URL": "postgresql://u:p@localhost:5432/db"}
for cls in classes:
    cls.load(environ)

from renderkit.cache import Cache
from renderkit.config import cors_options
from renderkit.health import Health
from renderkit.metrics import RequestMetrics
from renderkit.ratelimit import RateLimiter
from renderkit.resilience import TimeoutMiddleware
from renderkit.security import SecurityHeaders
from renderkit.shutdown import ShutdownCoordinator

Cache.from_env({})
cors_options({})
Health.from_env({})
RequestMetrics.from_env({})
RateLimiter.from_env({})
TimeoutMiddleware.from_env(lambda scope, receive, send: None, {})
SecurityHeaders.from_env({})
ShutdownCoordinator.from_env({})
assert not read, read
print("ok")
"""


def test_import_and_from_env_read_no_source() -> None:
    """A fresh interpreter: importing renderkit and every from_env() touch no source."""
    result = subprocess.run(
        [sys.executable, "-c", _FROM_ENV], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
