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
    check_blueprint,
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


def test_every_generated_secret_passes_the_doctor_and_its_declaration() -> None:
    """What `renderkit secret` prints is long enough for the doctor and valid for the variable
    it is meant for (the encryption key's 64-hex-character check included)."""
    from renderkit.cli._doctor import build_context, run_checks

    environ = {
        "APP_ENV": "production",
        **{kind.variable: kind.generate() for kind in KINDS.values()},
    }
    findings = run_checks(build_context(environ))
    bad = [f for f in findings if f.check in ("secrets", "settings") and f.status != "ok"]
    assert not bad, bad


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
    """--build-command replaces the pip install line; the build also writes the log config."""
    data = blueprint_yaml(capsys, "--build-command", "pip install '.[all]' uvicorn fastapi")
    assert data["services"][0]["buildCommand"] == (
        "pip install '.[all]' uvicorn fastapi && python -m renderkit.logging > log-config.json"
    )
    assert data["services"][0]["startCommand"].endswith("--log-config log-config.json")


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
        ("services.0.name", "", "must be a non-empty name"),
        ("services.0.type", "lambda", "not a Render service type"),
        ("services.0.envVars.0.value", [1], "must be a single value"),
        ("services.0.envVars.4.fromDatabase.property", "uri", "'uri' is not one of"),
        ("services.0.envVars.5.fromService.type", "web", "connectionString exists only"),
        ("services.0.envVars.5.fromService.property", "url", "'url' is not a property"),
        ("services.0.envVars.7.generateValue", "yes", "must be true"),
        ("services.0.autoDeployTrigger", "always", "'always' is not one of"),
        ("services.0.scaling", {"minInstances": 3, "maxInstances": 2}, "need 1 <= min <= max"),
        ("services.0.disk", {"mountPath": "/data"}, "missing required key 'name'"),
        ("services.1.cronSchedule", "daily", "not a Blueprint key for a worker"),
        ("services.1.type", "cron", "missing required key 'schedule'"),
        ("services.1.startCommand", KeyError, "missing required key 'startCommand'"),
        ("databases.0.plan", "starter", "legacy Postgres instance type"),
        ("databases.0.diskSizeGB", 12, "1 or a multiple of 5"),
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


def test_references_to_resources_outside_the_blueprint_are_warnings() -> None:
    """Render lets a Blueprint reference a service that already exists in the workspace."""
    data = _mutate("services.0.envVars.4.fromDatabase.name", "other-db")
    assert validate_blueprint(data) == []
    warnings = [str(p) for p in check_blueprint(data) if p.severity == "warning"]
    assert any("no database 'other-db' in this Blueprint" in w for w in warnings)
    data = _mutate("services.0.envVars.5.fromService.name", "nope")
    assert any("no keyvalue service 'nope'" in str(p) for p in check_blueprint(data))


# --- the seeds' own render.yaml files -------------------------------------------------------
# Copied from ../shared/seeds: Datifyy's backend guide and Kirby-Gen's infrastructure plan
# (both render.yaml files as written there) and RepoRadar's autoscaling snippet.

DATIFYY = """
services:
  - type: web
    name: datifyy-backend
    env: go
    buildCommand: go build -o server ./cmd/server
    startCommand: ./server
    healthCheckPath: /health
    autoDeploy: true
    envVars:
      - key: ENV
        value: production
      - key: PORT
        value: 8080
      - key: DATABASE_URL
        fromDatabase:
          name: datifyy-postgres
          property: connectionString
      - key: REDIS_URL
        sync: false
      - key: GEMINI_API_KEY
        sync: false
      - key: JWT_SECRET
        generateValue: true
      - key: CORS_ALLOWED_ORIGINS
        sync: false

databases:
  - name: datifyy-postgres
    databaseName: datifyy_prod
    user: datifyy_user
    plan: starter
"""

KIRBY_GEN = """
services:
  - type: web
    name: kirby-gen-web
    env: static
    buildCommand: cd packages/web && npm install && npm run build
    staticPublishPath: packages/web/dist
    envVars:
      - key: VITE_API_URL
        value: https://kirby-gen-api.onrender.com
  - type: web
    name: kirby-gen-api
    env: node
    buildCommand: cd packages/api && npm install && npm run build
    startCommand: cd packages/api && npm start
    healthCheckPath: /api/health
    autoDeploy: true
    envVars:
      - key: NODE_ENV
        value: production
      - key: PORT
        value: 3000
      - key: DATABASE_URL
        fromDatabase:
          name: kirby-gen-db
          property: connectionString
      - key: REDIS_URL
        fromDatabase:
          name: kirby-gen-redis
          property: connectionString
      - key: CLAUDE_API_KEY
        sync: false
      - key: SESSION_SECRET
        generateValue: true
      - key: SKILLS_BASE_URL
        fromService:
          name: kirby-gen-skills
          type: web
          property: url
  - type: pserv
    name: kirby-gen-skills
    env: python
    buildCommand: cd packages/skills && pip install -r requirements.txt
    startCommand: cd packages/skills && uvicorn src.main:app --host 0.0.0.0 --port $PORT
    healthCheckPath: /health
    envVars:
      - key: ANTHROPIC_API_KEY
        sync: false
  - type: worker
    name: kirby-gen-worker
    env: node
    buildCommand: cd packages/api && npm install && npm run build
    startCommand: cd packages/api && npm run worker
    envVars:
      - key: REDIS_URL
        fromDatabase:
          name: kirby-gen-redis
          property: connectionString
      - key: SKILLS_BASE_URL
        fromService:
          name: kirby-gen-skills
          type: pserv
          property: url

databases:
  - name: kirby-gen-db
    databaseName: kirby_gen
    plan: standard
  - name: kirby-gen-redis
    plan: standard
"""

REPORADAR_SCALING = """
minInstances: 1
maxInstances: 5
targetCPU: 70%
targetMemory: 80%
"""


def _errors(text: str) -> list[str]:
    return [str(p) for p in check_blueprint(yaml.safe_load(text)) if p.severity == "error"]


def test_datifyy_blueprint_is_refused_only_for_its_legacy_database_plan() -> None:
    """Unquoted PORT 8080, env: go, autoDeploy, sync: false, generateValue: all accepted."""
    errors = _errors(DATIFYY)
    assert len(errors) == 1, errors
    assert "databases[0].plan: 'starter' is a legacy Postgres instance type" in errors[0]
    assert "use basic-256mb" in errors[0]
    warnings = {
        p.where for p in check_blueprint(yaml.safe_load(DATIFYY)) if p.severity == "warning"
    }
    assert warnings == {"services[0].env", "services[0].autoDeploy"}  # deprecated, still work
    fixed = DATIFYY.replace("plan: starter", "plan: basic-256mb")
    assert _errors(fixed) == []


def test_kirby_gen_blueprint_flags_redis_under_databases_and_the_url_property() -> None:
    """Redis declared as a database, a url property, a wrong service type, legacy plans."""
    errors = _errors(KIRBY_GEN)
    text = "\n".join(errors)
    assert "databases[1]: 'kirby-gen-redis' looks like Redis" in text
    assert "type: keyvalue, name: kirby-gen-redis" in text  # the fix says what to write
    assert "services[1].envVars[6].fromService.property: 'url' is not a property" in text
    assert "services[3].envVars[1].fromService.property: 'url'" in text
    assert "services[1].envVars[6].fromService.type: 'kirby-gen-skills' is a pserv" in text
    assert sum("legacy Postgres instance type" in e for e in errors) == 2
    assert len(errors) == 6, errors
    problems = check_blueprint(yaml.safe_load(KIRBY_GEN))
    pserv_health = [p for p in problems if p.where == "services[2].healthCheckPath"]
    assert [p.severity for p in pserv_health] == ["warning"]  # accepted, but only TCP-checked
    assert "TCP" in pserv_health[0].message


def test_kirby_gen_blueprint_passes_once_fixed_as_the_validator_says() -> None:
    """Applying each fix gives a file Render accepts (a keyvalue service, hostport)."""
    fixed = yaml.safe_load(KIRBY_GEN)
    fixed["databases"] = [
        {"name": "kirby-gen-db", "databaseName": "kirby_gen", "plan": "basic-1gb"}
    ]
    fixed["services"].append({"type": "keyvalue", "name": "kirby-gen-redis", "ipAllowList": []})
    redis_ref = {"type": "keyvalue", "name": "kirby-gen-redis", "property": "connectionString"}
    skills_ref = {"type": "pserv", "name": "kirby-gen-skills", "property": "hostport"}
    for service in fixed["services"]:
        for var in service.get("envVars", []):
            if var.get("key") == "REDIS_URL":
                var.pop("fromDatabase")
                var["fromService"] = dict(redis_ref)
            if var.get("key") == "SKILLS_BASE_URL":
                var["key"] = "SKILLS_HOSTPORT"
                var["fromService"] = dict(skills_ref)
    assert validate_blueprint(fixed) == []


def test_reporadar_dashboard_scaling_snippet_is_placed_by_the_fix() -> None:
    """Scaling keys at the top level are refused, each with where it belongs."""
    errors = _errors(REPORADAR_SCALING)
    assert len(errors) == 4
    assert all("not a Blueprint key for the top level" in e for e in errors)
    assert any("targetCPUPercent: 70 (a number, no %)" in e for e in errors)


def test_unquoted_numbers_and_booleans_are_values_render_accepts() -> None:
    """Render's own examples write value: 10000; YAML numbers are passed as strings."""
    data = _valid()
    data["services"][0]["envVars"].append({"key": "PORT", "value": 3000})
    data["services"][0]["envVars"].append({"key": "FEATURE", "value": True})
    assert validate_blueprint(data) == []


def test_a_redis_read_through_from_database_is_caught_whatever_its_name() -> None:
    """REDIS_URL: fromDatabase names a Postgres: flagged even when named neutrally."""
    data = _valid()
    data["databases"].append({"name": "fast-store"})
    data["services"][1]["envVars"].append(
        {
            "key": "REDIS_URL_2",
            "fromDatabase": {"name": "fast-store", "property": "connectionString"},
        }
    )
    assert any("'fast-store' looks like Redis" in e for e in validate_blueprint(data))


# --- multi-service blueprints ---------------------------------------------------------------


def test_every_service_kind_the_options_add_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """Worker, cron, private service, static site, env group, secrets, scaling, pre-deploy."""
    data = blueprint_yaml(
        capsys,
        "--name", "kirby", "--with-worker", "--cron", "0 3 * * *", "python -m app.nightly",
        "--private-service", "skills", "uvicorn skills:app --host 0.0.0.0 --port $PORT",
        "--static-site", "web/dist", "--env-group", "--secret", "CLAUDE_API_KEY",
        "--session-store", "postgres", "--autoscale", "1:5",
    )  # fmt: skip
    assert check_blueprint(data) == []
    kinds = [(s["type"], s.get("runtime")) for s in data["services"]]
    assert kinds == [
        ("web", "python"), ("worker", "python"), ("pserv", "python"), ("cron", "python"),
        ("web", "static"), ("keyvalue", None),
    ]  # fmt: skip
    web = data["services"][0]
    assert web["preDeployCommand"] == "renderkit sessions migrate"
    assert web["scaling"] == {
        "minInstances": 1, "maxInstances": 5, "targetCPUPercent": 70, "targetMemoryPercent": 80,
    }  # fmt: skip
    env = {v.get("key", v.get("fromGroup")): v for v in web["envVars"]}
    assert env["kirby-shared"] == {"fromGroup": "kirby-shared"}
    assert env["CLAUDE_API_KEY"] == {"key": "CLAUDE_API_KEY", "sync": False}
    assert env["SKILLS_HOSTPORT"]["fromService"] == {
        "type": "pserv", "name": "kirby-skills", "property": "hostport",
    }  # fmt: skip
    group = {v["key"]: v["value"] for v in data["envVarGroups"][0]["envVars"]}
    assert group["SESSION_STORE"] == "postgres"
    assert group["LOG_FORMAT"] == "json"
    assert "DATABASE_URL" not in group  # groups cannot reference databases (Render's rule)
    assert data["services"][3]["schedule"] == "0 3 * * *"
    assert "preDeployCommand" not in data["services"][1]  # migrations run once, on the web


def test_disk_is_attached_and_cannot_be_combined_with_scaling(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--disk adds a persistent disk; with --autoscale it is refused, as Render refuses it."""
    data = blueprint_yaml(capsys, "--disk", "/var/data", "--disk-size", "5")
    assert data["services"][0]["disk"] == {
        "name": "app-data",
        "mountPath": "/var/data",
        "sizeGB": 5,
    }
    assert check_blueprint(data) == []
    code, out, err = run(capsys, "blueprint", "--disk", "/var/data", "--autoscale", "1:3")
    assert (code, out) == (2, "")
    assert "cannot scale a service with a disk" in err
    data["services"][0]["numInstances"] = 2
    assert any("cannot be scaled" in e for e in validate_blueprint(data))


def test_keyvalue_uses_the_one_eviction_advice() -> None:
    """The blueprint's maxmemoryPolicy is renderkit._redis.EVICTION_POLICY: noeviction."""
    from renderkit._redis import EVICTION_POLICY

    keyvalue = next(s for s in _valid()["services"] if s["type"] == "keyvalue")
    assert keyvalue["maxmemoryPolicy"] == EVICTION_POLICY == "noeviction"


def test_check_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check prints every problem: exit 1 on errors, 0 with warnings only, 2 without a file."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(KIRBY_GEN)
    code, out, _ = run(capsys, "blueprint", "--check", str(bad))
    assert code == 1
    assert "ERROR" in out and "WARNING" in out
    assert out.rstrip().endswith("Render would refuse this file")
    ok = tmp_path / "ok.yaml"
    ok.write_text(DATIFYY.replace("plan: starter", "plan: basic-256mb"))
    code, out, _ = run(capsys, "blueprint", "--check", str(ok))
    assert code == 0
    assert "0 errors, 2 warnings: Render accepts this file" in out
    code, _, err = run(capsys, "blueprint", "--check", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "missing.yaml" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("services: [\n")
    code, _, err = run(capsys, "blueprint", "--check", str(broken))
    assert code == 1
    assert "not valid YAML" in err


@pytest.mark.e2e
def test_eviction_policies_against_a_real_full_redis() -> None:
    """Why noeviction: volatile-lru evicts sessions and limit windows when the cache fills."""
    import shutil
    import socket
    import subprocess
    import time

    redis = pytest.importorskip("redis")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    kept: dict[str, tuple[int, int]] = {}
    for policy in ("volatile-lru", "noeviction"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
             "--maxmemory", "4mb", "--maxmemory-policy", policy],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            for i in range(100):  # what sessions and the rate limiter write: keys with a TTL
                client.set(f"session:{i}", "s" * 500, ex=86400)
                client.set(f"ratelimit:{i}", 1, ex=3600)
            for i in range(8000):  # then the cache fills the instance
                try:
                    client.set(f"cache:{i}", "c" * 1000, ex=300)
                except redis.ResponseError:
                    pass
            sessions = sum(client.exists(f"session:{i}") for i in range(100))
            limits = sum(client.exists(f"ratelimit:{i}") for i in range(100))
            kept[policy] = (sessions, limits)
            client.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    assert kept["noeviction"] == (100, 100)
    assert kept["volatile-lru"][0] < 50 and kept["volatile-lru"][1] < 50


def test_check_adds_renderkits_advice_as_warnings() -> None:
    """Render's default eviction, uvicorn trusting X-Forwarded-For, no health check path."""
    data = {
        "services": [
            {"type": "web", "name": "api", "runtime": "python", "buildCommand": "pip install .",
             "startCommand": "uvicorn app:app --forwarded-allow-ips='*' --port $PORT"},
            {"type": "keyvalue", "name": "kv", "ipAllowList": []},
        ]
    }  # fmt: skip
    problems = check_blueprint(data)
    assert validate_blueprint(data) == []  # Render accepts all of it
    advice = {p.where: p for p in problems}
    assert set(advice) == {"services[0].startCommand", "services[0]", "services[1].maxmemoryPolicy"}
    assert all(p.severity == "warning" for p in problems)
    assert (
        "allkeys-lru (renderkit advises noeviction)"
        in advice["services[1].maxmemoryPolicy"].message
    )
    assert "--no-proxy-headers" in advice["services[0].startCommand"].fix
    assert advice["services[0]"].fix == "healthCheckPath: /health/instance"


def test_a_read_replica_is_referenced_like_a_database() -> None:
    """fromDatabase may name a read replica (Render's spec): no warning."""
    data = _valid()
    data["databases"][0]["readReplicas"] = [{"name": "app-db-replica"}]
    ref = {"name": "app-db-replica", "property": "connectionString"}
    data["services"][1]["envVars"].append({"key": "REPLICA_URL", "fromDatabase": ref})
    assert check_blueprint(data) == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("server", "app", "access_logger"),
    [
        ("uvicorn", "examples.fastapi_app:app", "uvicorn.access"),
        ("gunicorn", "examples.flask_app:app", "gunicorn.access"),
    ],
)
def test_the_blueprints_commands_run_the_demo_apps_as_render_would(
    tmp_path: Path, server: str, app: str, access_logger: str
) -> None:
    """Build step (log config), start command and env vars of a generated Blueprint, for real:
    the server starts, healthCheckPath answers, every log line is JSON, verify passes."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from renderkit.cli._verify import run_verify

    data = build_blueprint(BlueprintOptions(name="demo", server=server, app=app))
    web = data["services"][0]
    log_step = web["buildCommand"].split(" && ", 1)[1]  # the part after pip install
    assert log_step == "python -m renderkit.logging > log-config.json"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env |= {v["key"]: v["value"] for v in web["envVars"] if "value" in v}
    env |= {"PORT": str(port), "RENDER": "true", "SESSION_SECRET": "e2e-" + "s" * 60}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run(log_step.replace("python", sys.executable, 1), shell=True, check=True,
                   cwd=tmp_path, env=env, timeout=60)  # fmt: skip
    command = web["startCommand"].replace(server, f"{sys.executable} -m {server}", 1)
    process = subprocess.Popen(
        command, shell=True, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}{web['healthCheckPath']}", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the start command exited"
                assert time.monotonic() < deadline, f"{server} did not answer within 30 s"
                time.sleep(0.2)
        assert health.status_code == 200
        report = run_verify(f"http://127.0.0.1:{port}", timeout=5)
        assert report.ok, [c.as_dict() for c in report.checks if c.status == "fail"]
        assert report.observatory is not None
        assert report.observatory.grade == "A+"
    finally:
        os.killpg(process.pid, 15)  # the shell and the server: this test's own process group
        output, _ = process.communicate(timeout=30)
    lines = [line for line in output.decode().splitlines() if line.strip()]
    assert lines, f"{server} printed nothing"
    assert all(isinstance(json.loads(line), dict) for line in lines), lines[:5]
    assert any(json.loads(line).get("logger") == access_logger for line in lines)


def test_projects_environments_and_ungrouped_resources_are_checked_like_the_root() -> None:
    """Services, databases and groups inside projects[].environments[] and ungrouped."""
    text = """
projects:
  - name: shop
    environments:
      - name: production
        networking: {isolation: enabled}
        services:
          - type: web
            name: api
            runtime: python
            buildCommand: pip install .
            startCommand: uvicorn app:app --port $PORT
            healthCheckPath: /health/instance
            envVars:
              - key: DATABASE_URL
                fromDatabase: {name: shop-db, property: connectionString}
              - fromGroup: shop-shared
        databases:
          - name: shop-db
            plan: basic-256mb
        envVarGroups:
          - name: shop-shared
            envVars:
              - {key: APP_ENV, value: production}
ungrouped:
  services:
    - type: keyvalue
      name: shop-kv
      ipAllowList: []
      maxmemoryPolicy: noeviction
"""
    data = yaml.safe_load(text)
    assert check_blueprint(data) == []
    data["projects"][0]["environments"][0]["services"][0]["plann"] = "pro"
    data["ungrouped"]["databases"] = [{"name": "shop-redis"}]
    errors = validate_blueprint(data)
    assert any(
        "projects[0].environments[0].services[0].plann: not a Blueprint key" in e for e in errors
    )
    assert any("ungrouped.databases[0]: 'shop-redis' looks like Redis" in e for e in errors)
