"""The examples in docs/testing.md run, as written, as an app team's test files would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
SECTION = "## Testing your app with renderkit.testing and fakeredis"


def doc_examples() -> list[str]:
    """Every python block of the 'Testing your app' section that defines a test."""
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"docs/testing.md lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return [b for b in blocks if "def test_" in b]


def test_the_section_has_examples_for_every_fixture() -> None:
    """The page shows each new fixture in a runnable example."""
    joined = "\n".join(doc_examples())
    for fixture in (
        "renderkit_client",
        "renderkit_cache",
        "renderkit_limiter",
        "renderkit_platform",
        "renderkit_health_probe",
        "renderkit_fakeredis",
        "renderkit_session_store",
    ):
        assert fixture in joined, fixture


def test_doc_examples_pass(pytester: pytest.Pytester) -> None:
    """Each block, written to its own test file, passes under the installed plugin."""
    examples = doc_examples()
    for i, block in enumerate(examples):
        pytester.makepyfile(**{f"test_doc_example_{i}": block})
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    expected = sum(len(re.findall(r"^(?:async )?def test_", b, re.MULTILINE)) for b in examples)
    assert outcomes.get("passed") == expected, result.stdout.str()[-3000:]
    assert "failed" not in outcomes
    assert "error" not in outcomes
