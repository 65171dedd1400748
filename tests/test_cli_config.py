"""Tests for ``renderkit config check`` and ``renderkit doctor``."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from renderkit.cli import main
from renderkit.cli._doctor import CHECKS, DoctorContext, Finding, build_context, run_checks

SECRET = "pw-that-must-not-print"
_counter = itertools.count()

SETTINGS_SOURCE = """
from datetime import timedelta
from renderkit.config import PostgresUrl, Settings, env

class AppSettings(Settings):
    database_url: PostgresUrl = env("RK_TEST_DATABASE_URL", secret=True)
    port: int = env("RK_TEST_PORT", default=10000)
    timeout: timedelta = env("RK_TEST_TIMEOUT", default="30s")

NotSettings = dict
"""


@pytest.fixture
def settings_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh importable module holding AppSettings; returns its module name."""
    name = f"rk_cli_settings_{next(_counter)}"
    (tmp_path / f"{name}.py").write_text(SETTINGS_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APP_ENV", "development")
    for var in ("RK_TEST_DATABASE_URL", "RK_TEST_PORT", "RK_TEST_TIMEOUT", "PORT"):
        monkeypatch.delenv(var, raising=False)
    yield name
    sys.modules.pop(name, None)


def test_config_check_valid(
    settings_module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid settings print a masked table and exit 0."""
    monkeypatch.setenv("RK_TEST_DATABASE_URL", f"postgres://u:{SECRET}@db/app")
    code = main(["config", "check", f"{settings_module}:AppSettings"])
    out = capsys.readouterr().out
    assert code == 0
    assert "RK_TEST_DATABASE_URL" in out and "****" in out
    assert "RK_TEST_TIMEOUT" in out and "30s" in out and "default" in out
    assert "OK" in out
    assert SECRET not in out


def test_config_check_lists_every_error(
    settings_module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invalid settings print every problem (secrets masked) and exit 1."""
    monkeypatch.setenv("RK_TEST_DATABASE_URL", f"mysql://u:{SECRET}@db/app")
    monkeypatch.setenv("RK_TEST_PORT", "eighty")
    monkeypatch.setenv("RK_TEST_TIMEOUT", "-1s")
    code = main(["config", "check", f"{settings_module}:AppSettings"])
    out = capsys.readouterr().out
    assert code == 1
    assert "3 problems" in out
    for var in ("RK_TEST_DATABASE_URL", "RK_TEST_PORT", "RK_TEST_TIMEOUT"):
        assert f"- {var}" in out
    assert SECRET not in out


def test_config_check_json_and_dotenv(
    settings_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dotenv reads a file and --json prints a machine-readable report naming its source."""
    dotenv = tmp_path / "app.env"
    dotenv.write_text(f"RK_TEST_DATABASE_URL=postgres://u:{SECRET}@db/app\nRK_TEST_PORT=x\n")
    code = main(
        ["config", "check", f"{settings_module}:AppSettings", "--dotenv", str(dotenv), "--json"]
    )
    out = capsys.readouterr().out
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    (problem,) = data["problems"]
    assert problem["variable"] == "RK_TEST_PORT"
    assert problem["source"] == f".env file {dotenv}"
    assert SECRET not in out


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_such_module_xyz:AppSettings", "could not import"),
        ("{mod}:Missing", "no attribute"),
        ("{mod}:NotSettings", "not a renderkit.config.Settings"),
        ("justaname", "module:Class"),
    ],
)
def test_config_check_import_errors_exit_2(
    settings_module: str, reference: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reference that cannot be imported exits 2 with a clear message on stderr."""
    code = main(["config", "check", reference.format(mod=settings_module)])
    assert code == 2
    assert message in capsys.readouterr().err


def test_config_check_dotted_reference(
    settings_module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """module.Class works as well as module:Class."""
    monkeypatch.setenv("RK_TEST_DATABASE_URL", "postgresql://db/app")
    assert main(["config", "check", f"{settings_module}.AppSettings"]) == 0


def test_config_without_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """``renderkit config`` alone shows its help and exits 2."""
    assert main(["config"]) == 2
    assert "check" in capsys.readouterr().out


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "RENDER",
        "RENDER_SERVICE_ID",
        "IS_PULL_REQUEST",
        "DYNO",
        "FLY_APP_NAME",
        "K_SERVICE",
        "KUBERNETES_SERVICE_HOST",
        "ECS_CONTAINER_METADATA_URI_V4",
        "ENV",
        "ENVIRONMENT",
        "PORT",
        "RENDER_CPU_COUNT",
    ):
        monkeypatch.delenv(var, raising=False)


def test_doctor_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The doctor prints platform, environment, resources and findings."""
    _clean_env(monkeypatch)
    monkeypatch.setenv("RENDER", "true")
    monkeypatch.setenv("RENDER_CPU_COUNT", "0.5")
    monkeypatch.setenv("RENDER_SERVICE_NAME", "api")
    monkeypatch.delenv("APP_ENV", raising=False)
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("memory cpu")
    (root / "memory.max").write_text(str(512 * 1024 * 1024))
    code = main(["doctor", "--cgroup-root", str(root)])
    out = capsys.readouterr().out
    assert code == 0
    assert "render" in out and "api" in out
    assert "production" in out
    assert "512 MiB (cgroup)" in out
    assert "0.5" in out and "RENDER_CPU_COUNT" in out
    assert "WARN  cpu" in out and "fix:" in out


def test_doctor_json_with_settings(
    settings_module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json with --settings includes the config report; a bad setting fails with exit 1."""
    _clean_env(monkeypatch)
    monkeypatch.setenv("APP_ENV", "development")
    code = main(["doctor", "--settings", f"{settings_module}:AppSettings", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["platform"]["provider"] == "local"
    assert data["environment"] == "development"
    assert data["settings"]["ok"] is False
    fails = [f for f in data["findings"] if f["status"] == "fail"]
    assert fails and fails[0]["check"] == "config"
    assert "RK_TEST_DATABASE_URL" in fails[0]["message"]


def test_doctor_bad_settings_reference(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unimportable --settings is a failing finding, not a crash."""
    _clean_env(monkeypatch)
    code = main(["doctor", "--settings", "no_such_module_abc:X"])
    captured = capsys.readouterr()
    assert code == 1
    assert "could not import" in captured.out
    assert "could not import" in captured.err


def test_doctor_bad_environment_and_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A garbled APP_ENV fails and a garbled PORT warns."""
    _clean_env(monkeypatch)
    monkeypatch.setenv("APP_ENV", "prodd")
    monkeypatch.setenv("PORT", "http")
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  environment" in out
    assert "WARN  port" in out


def test_development_on_paas_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    """APP_ENV=development on a PaaS is flagged: secure defaults would be off."""
    ctx = build_context({"RENDER": "true", "APP_ENV": "development"})
    (finding,) = [f for f in run_checks(ctx) if f.check == "environment"]
    assert finding.status == "warn"


def test_a_crashing_check_becomes_a_failure() -> None:
    """Checks are pluggable; one that raises is reported as a fail finding."""

    def check_boom(ctx: DoctorContext) -> list[Finding]:
        raise RuntimeError("nope")

    def check_fine(ctx: DoctorContext) -> list[Finding]:
        return [Finding("fine", "ok", "all good")]

    ctx = build_context({})
    findings = run_checks(ctx, [check_boom, check_fine])
    assert [(f.check, f.status) for f in findings] == [("boom", "fail"), ("fine", "ok")]
    assert check_boom not in CHECKS


# --- production findings (issue #15 item 6) -----------------------------------------------


def _findings(environ: dict[str, str]) -> dict[str, list[Finding]]:
    ctx = build_context(environ, cgroup_root=None)
    out: dict[str, list[Finding]] = {}
    for finding in run_checks(ctx):
        out.setdefault(finding.check, []).append(finding)
    return out


def test_doctor_flags_a_bad_boolean_and_a_bad_key_through_the_modules_declarations() -> None:
    """FORCE_HTTPS=maybe and SESSION_ENCRYPTION_KEY=zz fail, named, the key never echoed."""
    found = _findings(
        {"APP_ENV": "production", "FORCE_HTTPS": "maybe", "SESSION_ENCRYPTION_KEY": "zz"}
    )
    messages = [f.message for f in found["settings"] if f.status == "fail"]
    assert any(m.startswith("FORCE_HTTPS") and "boolean" in m for m in messages), messages
    key = [m for m in messages if m.startswith("SESSION_ENCRYPTION_KEY")]
    assert key and all("zz" not in m.split("):", 1)[1] for m in key), key
    # One finding per bad variable: the invalid key is not also measured as a short secret.
    assert not [
        f
        for f in found.get("secrets", [])
        if f.details.get("variable", "").startswith("SESSION_ENC")
    ]
    assert len(key) == 1


def test_doctor_is_quiet_about_valid_and_unset_variables() -> None:
    """Nothing set, nothing wrong: an app that uses no module gets no settings failure."""
    found = _findings({"APP_ENV": "development"})
    assert [f.status for f in found["settings"]] == ["ok"]


@pytest.mark.parametrize(
    ("environ", "status"),
    [
        ({"APP_ENV": "production", "WEB_CONCURRENCY": "4"}, "fail"),
        ({"APP_ENV": "development", "WEB_CONCURRENCY": "4"}, "warn"),
        ({"APP_ENV": "production", "WEB_CONCURRENCY": "4", "REDIS_URL": "redis://r:6379"}, "ok"),
        ({"APP_ENV": "production", "WEB_CONCURRENCY": "1"}, "ok"),
        ({"APP_ENV": "production", "WEB_CONCURRENCY": "lots"}, "warn"),
    ],
)
def test_doctor_flags_memory_state_under_several_workers(
    environ: dict[str, str], status: str
) -> None:
    """WEB_CONCURRENCY>1 without REDIS_URL: per-worker sessions and limits are called out."""
    (finding,) = _findings(environ)["workers"]
    assert finding.status == status, finding
    if status == "fail":
        assert "REDIS_URL" in finding.message and "4 times" in finding.message


def test_doctor_flags_short_secrets_without_printing_them() -> None:
    """A 5-byte SESSION_SECRET fails in production; its value appears nowhere in the output."""
    environ = {
        "APP_ENV": "production",
        "SESSION_SECRET": "abcde",
        "SECRET_KEY": "k" * 40,
        "HEALTH_TOKEN": "tok",
    }
    ctx = build_context(environ, cgroup_root=None)
    findings = run_checks(ctx)
    short = {f.details.get("variable"): f for f in findings if f.check == "secrets"}
    assert short["SESSION_SECRET"].status == "fail" and "5 bytes" in short["SESSION_SECRET"].message
    assert "HEALTH_TOKEN" in short and "SECRET_KEY" not in short
    from renderkit.cli._doctor import as_json, format_text

    text = format_text(ctx, findings) + json.dumps(as_json(ctx, findings))
    assert "abcde" not in text and "k" * 40 not in text


def test_doctor_output_masks_any_password(capsys: pytest.CaptureFixture[str]) -> None:
    """A DATABASE_URL password with raw '#' and '@' is never printed, text or JSON."""
    environ = {"APP_ENV": "development", "DATABASE_URL": "postgresql://app:pw#x@y@h/app"}
    ctx = build_context(environ, cgroup_root=None)
    findings = run_checks(ctx)
    from renderkit.cli._doctor import as_json, format_text

    database = [f for f in findings if f.check == "database"]
    assert database and database[0].status == "fail"
    assert "percent-encode" in database[0].message
    text = format_text(ctx, findings) + json.dumps(as_json(ctx, findings))
    assert "pw#x" not in text and "x@y" not in text


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """``renderkit --version`` prints the installed version and exits 0."""
    from renderkit import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("renderkit ") and out.split()[1][:3] == __version__[:3]


def test_doctor_modules_have_no_import_cycle() -> None:
    """_connectivity and _production import the shared types, never the doctor runner."""
    import ast

    for name in ("_connectivity", "_production", "_findings"):
        path = Path(__file__).parent.parent / "src" / "renderkit" / "cli" / f"{name}.py"
        tree = ast.parse(path.read_text())
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert "renderkit.cli._doctor" not in imported, name


def test_one_eviction_advice_everywhere() -> None:
    """Docs, examples and the blueprint generator advise the doctor's policy and no other."""
    import re

    from renderkit._redis import EVICTION_POLICY

    root = Path(__file__).parent.parent
    sources = [
        *sorted((root / "docs").glob("*.md")),
        *sorted((root / "examples").glob("*.yaml")),
        root / "src" / "renderkit" / "cli" / "_blueprint.py",
    ]
    # What a page or a generated render.yaml advises: `maxmemoryPolicy: x` (YAML) or a
    # `"maxmemoryPolicy": "x"` entry written by the generator (not a value it reads).
    yaml_advice = re.compile(r"maxmemoryPolicy:[ \t]*([a-z][a-z-]+)")
    code_advice = re.compile(r'"maxmemoryPolicy":\s*"([a-z-]+)"')
    wrong = [
        f"{path.relative_to(root)}: {policy}"
        for path in sources
        if path.exists()
        for policy in (code_advice if path.suffix == ".py" else yaml_advice).findall(
            path.read_text(encoding="utf-8")
        )
        if policy != EVICTION_POLICY
    ]
    assert not wrong, f"advise maxmemoryPolicy {EVICTION_POLICY} (EVICTION_REASON says why)"


def test_doctor_flags_state_pinned_to_memory_under_several_workers() -> None:
    """SESSION_STORE=memory or RATELIMIT_STORAGE_URL=memory:// with 3 workers is called out."""
    environ = {
        "APP_ENV": "production",
        "WEB_CONCURRENCY": "3",
        "REDIS_URL": "redis://r:6379",
        "SESSION_STORE": "memory",
        "RATELIMIT_STORAGE_URL": "memory://",
    }
    found = {f.details.get("variable") for f in _findings(environ)["workers"]}
    assert {"SESSION_STORE", "RATELIMIT_STORAGE_URL"} <= found
