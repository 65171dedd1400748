"""Tests for ``renderkit secret`` and ``renderkit blueprint``."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from renderkit.cli import main
from renderkit.cli._blueprint import (
    BlueprintOptions,
    build_blueprint,
    start_command,
    to_yaml,
    validate_blueprint,
)
from renderkit.cli._secret import KINDS, generate
from renderkit.health import INSTANCE_HEALTH_PATH

ROOT = Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- secret -------------------------------------------------------------------------------


def test_session_secret_has_64_bytes_of_urlsafe_entropy(capsys: pytest.CaptureFixture[str]) -> None:
    """The default is SESSION_SECRET material: 64 random bytes, URL-safe base64, no padding."""
    code, out, _ = run(capsys, "secret")
    value = out.strip()
    assert code == 0
    assert re.fullmatch(r"[A-Za-z0-9_-]{86}", value)
    assert len(base64.urlsafe_b64decode(value + "==")) == 64


def test_encryption_key_is_64_hex(capsys: pytest.CaptureFixture[str]) -> None:
    """--kind encryption prints a 256-bit key as 64 lowercase hex characters."""
    code, out, _ = run(capsys, "secret", "--kind", "encryption")
    assert code == 0
    assert re.fullmatch(r"[0-9a-f]{64}", out.strip())


def test_env_format_and_custom_name(capsys: pytest.CaptureFixture[str]) -> None:
    """--env prints NAME=value lines, with the kind's variable or --name."""
    _, out, _ = run(capsys, "secret", "--env")
    assert re.fullmatch(r"SESSION_SECRET=[A-Za-z0-9_-]{86}\n", out)
    _, out, _ = run(capsys, "secret", "--kind", "token", "--env", "--name", "WEBHOOK_KEY")
    assert re.fullmatch(r"WEBHOOK_KEY=[A-Za-z0-9_-]{43}\n", out)


def test_secrets_are_fresh_each_time(capsys: pytest.CaptureFixture[str]) -> None:
    """--count 5 prints five different values."""
    _, out, _ = run(capsys, "secret", "--count", "5")
    values = out.split()
    assert len(values) == 5
    assert len(set(values)) == 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "BAD-NAME"], "not an environment variable name"),
        (["--name", "1X"], "not an environment variable name"),
        (["--count", "0"], "--count must be from 1 to 100"),
        (["--count", "1000"], "--count must be from 1 to 100"),
    ],
)
def test_secret_bad_options_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Bad --name/--count exit 2 with a message and print no secret."""
    code, out, err = run(capsys, "secret", "--env", *argv)
    assert code == 2
    assert out == ""
    assert message in err


def test_unknown_kind_is_rejected() -> None:
    """generate() names the known kinds; argparse rejects an unknown --kind."""
    with pytest.raises(ValueError, match="session, encryption, token"):
        generate("pgp")
    with pytest.raises(SystemExit):
        main(["secret", "--kind", "pgp"])
    assert set(KINDS) == {"session", "encryption", "token"}


# --- blueprint ----------------------------------------------------------------------------


def blueprint_yaml(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, "blueprint", *argv)
    assert code == 0, err
    data = yaml.safe_load(out)
    assert isinstance(data, dict)
    return data


def test_blueprint_wires_database_keyvalue_and_secret(capsys: pytest.CaptureFixture[str]) -> None:
    """The web service gets DATABASE_URL/REDIS_URL from its resources and a generated secret."""
    data = blueprint_yaml(capsys, "--name", "shop")
    web = data["services"][0]
    env = {v["key"]: v for v in web["envVars"]}
    assert env["DATABASE_URL"]["fromDatabase"] == {
        "name": "shop-db",
        "property": "connectionString",
    }
    assert env["REDIS_URL"]["fromService"] == {
        "type": "keyvalue",
        "name": "shop-kv",
        "property": "connectionString",
    }
    assert env["SESSION_SECRET"] == {"key": "SESSION_SECRET", "generateValue": True}
    assert env["APP_ENV"]["value"] == "production"
    assert web["healthCheckPath"] == INSTANCE_HEALTH_PATH == "/health/instance"
    assert web["maxShutdownDelaySeconds"] == 30
    kv = next(s for s in data["services"] if s["type"] == "keyvalue")
    assert kv["name"] == "shop-kv"
    assert kv["ipAllowList"] == []
    assert data["databases"][0]["name"] == "shop-db"
    assert validate_blueprint(data) == []


def test_uvicorn_start_command_drains_inside_the_shutdown_delay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """uvicorn binds $PORT, runs WEB_CONCURRENCY workers, drains 5 s before SIGKILL."""
    data = blueprint_yaml(capsys, "--max-shutdown-delay", "60", "--plan", "standard")
    command = data["services"][0]["startCommand"]
    assert "--port $PORT" in command
    assert "--host 0.0.0.0" in command
    assert "--workers ${WEB_CONCURRENCY:-2}" in command
    assert "--timeout-graceful-shutdown 55" in command
    # renderkit reads X-Forwarded-* itself (right-most hops); uvicorn must not rewrite the peer.
    assert "--no-proxy-headers" in command
    assert "--forwarded-allow-ips" not in command
    assert data["services"][0]["maxShutdownDelaySeconds"] == 60
    env = {v["key"]: v.get("value") for v in data["services"][0]["envVars"]}
    assert env["SHUTDOWN_GRACE_PERIOD"] == "55s"  # the coordinator's budget matches uvicorn's


def test_gunicorn_start_command_for_flask() -> None:
    """--server gunicorn gives a WSGI command with a graceful timeout under the delay."""
    command = start_command(BlueprintOptions(server="gunicorn", app="app:app"))
    assert command.startswith("gunicorn app:app --bind 0.0.0.0:$PORT")
    assert "--graceful-timeout 25" in command
    assert "${WEB_CONCURRENCY:-1}" in command


def test_with_worker_adds_a_worker_sharing_the_resources(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--with-worker adds a worker with DATABASE_URL and REDIS_URL but no health check."""
    data = blueprint_yaml(capsys, "--with-worker", "--worker-command", "python -m jobs")
    worker = next(s for s in data["services"] if s["type"] == "worker")
    assert worker["startCommand"] == "python -m jobs"
    assert "healthCheckPath" not in worker
    assert {v["key"] for v in worker["envVars"]} >= {"DATABASE_URL", "REDIS_URL"}
    assert validate_blueprint(data) == []


def test_build_command_option(capsys: pytest.CaptureFixture[str]) -> None:
    """--build-command replaces the default pip install line."""
    data = blueprint_yaml(capsys, "--build-command", "pip install '.[all]' uvicorn fastapi")
    assert data["services"][0]["buildCommand"] == "pip install '.[all]' uvicorn fastapi"


def test_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o writes the file and says so on stderr."""
    target = tmp_path / "render.yaml"
    code, out, err = run(capsys, "blueprint", "-o", str(target))
    assert code == 0
    assert out == ""
    assert "wrote" in err
    assert validate_blueprint(yaml.safe_load(target.read_text())) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "My App"], "--name 'My App'"),
        (["--plan", "huge"], "--plan 'huge'"),
        (["--region", "mars"], "--region 'mars'"),
        (["--kv-plan", "massive"], "--kv-plan"),
        (["--db-plan", "big"], "--db-plan"),
        (["--health-path", "health"], "--health-path"),
        (["--max-shutdown-delay", "301"], "1 to 300"),
        (["--max-shutdown-delay", "0"], "1 to 300"),
        (["--app", "not a module"], "--app"),
        (["--python-version", "3"], "--python-version"),
    ],
)
def test_blueprint_bad_options_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Every bad option is named with what to use instead; nothing is printed on stdout."""
    code, out, err = run(capsys, "blueprint", *argv)
    assert code == 2
    assert out == ""
    assert message in err


def test_yaml_round_trips_awkward_strings() -> None:
    """Strings YAML would misread (yes, 1.0, ': ', '#', leading space) are quoted."""
    data = {
        "services": [
            {
                "a": "yes",
                "b": "1.10",
                "c": "x: y",
                "d": "# not a comment",
                "e": " lead",
                "f": "0x1F",
                "g": "",
                "h": "1e5",
                "i": "null",
                "j": [],
                "k": True,
                "l": 30,
            }
        ]
    }
    assert yaml.safe_load(to_yaml(data, header="a comment\n\nmore")) == data


def _valid() -> dict[str, Any]:
    return build_blueprint(BlueprintOptions(with_worker=True))


def _mutate(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(_valid())
    target: Any = data
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("services.0.healthcheckPath", "/h", "not a Blueprint key for a web"),
        ("services.0.plan", "giant", "'giant' is not one of"),
        ("services.0.runtime", "cobol", "'cobol' is not one of"),
        ("services.0.region", "mars", "'mars' is not one of"),
        ("services.0.maxShutdownDelaySeconds", 500, "must be 1 to 300"),
        ("services.0.healthCheckPath", "health", "must start with /"),
        ("services.0.name", "Bad Name", "lower-case letters"),
        ("services.0.type", "lambda", "not a Render service type"),
        ("services.0.envVars.0.value", 1, "quote it"),
        ("services.0.envVars.3.fromDatabase.name", "other-db", "no database 'other-db'"),
        ("services.0.envVars.3.fromDatabase.property", "uri", "'uri' is not one of"),
        ("services.0.envVars.4.fromService.name", "nope", "no keyvalue service 'nope'"),
        ("services.0.envVars.4.fromService.type", "web", "connectionString exists only"),
        ("services.0.envVars.6.generateValue", "yes", "must be true"),
        ("services.2.ipAllowList", KeyError, "missing required key 'ipAllowList'"),
        ("services.2.maxmemoryPolicy", "lru", "'lru' is not one of"),
        ("databases.0.plan", "galactic", "not a Render Postgres plan"),
        ("databases.0.size", 1, "not a Blueprint key for a database"),
        ("services.1.name", "app", "defined twice"),
    ],
)
def test_validator_catches_each_mistake(path: str, value: Any, message: str) -> None:
    """The schema check names the exact key and what is wrong with it."""
    problems = validate_blueprint(_mutate(path, value))
    assert any(message in p for p in problems), problems


def test_validator_on_env_var_shapes() -> None:
    """Two sources on one var, none at all, and fromGroup with extra keys are all reported."""
    data = _valid()
    data["services"][0]["envVars"] = [
        {"key": "A", "value": "1", "generateValue": True},
        {"key": "B"},
        {"fromGroup": "shared", "key": "C"},
        {"key": "D", "sync": False},
        {"fromGroup": "shared"},
    ]
    problems = validate_blueprint(data)
    assert sum("exactly one of" in p for p in problems) == 2
    assert any("fromGroup takes no other key" in p for p in problems)
    assert len(problems) == 3


def test_validator_rejects_non_mappings() -> None:
    """A list at the root or a string service is a problem, not a crash."""
    assert validate_blueprint([1, 2]) != []
    assert any("expected a mapping" in p for p in validate_blueprint({"services": ["web"]}))
    assert any("not a Blueprint key" in p for p in validate_blueprint({"servics": []}))


def test_committed_example_blueprint_is_valid() -> None:
    """examples/render.yaml (generated by this command) passes the schema check."""
    path = ROOT / "examples" / "render.yaml"
    if not path.exists():
        pytest.fail("examples/render.yaml is missing: renderkit blueprint -o examples/render.yaml")
    assert validate_blueprint(yaml.safe_load(path.read_text())) == []
    assert any(
        "envVars: expected a list" in p
        for p in validate_blueprint(
            {"services": [{"type": "web", "name": "a", "runtime": "python", "envVars": 5}]}
        )
    )
    assert validate_blueprint({"services": {"a": 1}}) == ["services: expected a list, got dict"]
