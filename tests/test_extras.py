"""Each extra installs what its feature needs, and a missing one is named where it is needed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["optional-dependencies"]  # type: ignore[no-any-return]


def test_extras_bring_what_the_features_import() -> None:
    """renderkit[testing] has fakeredis with Lua and pytest-asyncio, renderkit[cli] has httpx,
    the correlation integrations have their own extras, and [all] holds the runtime ones."""
    found = extras()
    assert any(d.startswith("fakeredis[lua]") for d in found["testing"])
    assert any(d.startswith("pytest-asyncio") for d in found["testing"])
    assert any(d.startswith("httpx") for d in found["cli"])
    assert any(d.startswith("sentry-sdk") for d in found["sentry"])
    assert any(d.startswith("celery") for d in found["celery"])
    everything = found["all"][0]
    for extra in ("sentry", "celery", "cli", "redis", "postgres", "flask"):
        assert extra in everything


def test_fakeredis_fixtures_fail_loudly_naming_the_extra_without_lua(tmp_path: Path) -> None:
    """Without lupa a test using renderkit_fakeredis errors with `pip install
    'renderkit[testing]'` instead of passing on a silent memory fallback."""
    (tmp_path / "conftest.py").write_text("import sys\nsys.modules['lupa'] = None\n")
    (tmp_path / "test_app.py").write_text(
        textwrap.dedent(
            """
            def test_uses_redis(renderkit_fakeredis):
                renderkit_fakeredis.set("k", "v")
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "pip install 'renderkit[testing]'" in result.stdout
    assert "lupa" in result.stdout


def test_verify_without_httpx_names_the_cli_extra() -> None:
    """renderkit verify exits 2 and says which extra brings httpx."""
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "from renderkit.cli import main\n"
        "sys.exit(main(['verify', 'http://127.0.0.1:9']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "pip install 'renderkit[cli]'" in result.stdout + result.stderr
