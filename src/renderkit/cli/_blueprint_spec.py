"""Check a render.yaml against Render's Blueprint specification, field by field.

The rules follow Render's Blueprint YAML reference (https://render.com/docs/blueprint-spec)
and its JSON Schema (https://render.com/schema/render.yaml.json): which keys each kind of
object takes, which are required, the enumerated values and the documented ranges. Render
reads every service with one set of keys (its error for an unknown key is "field X not found
in type file.Service"), so a key that belongs to some service types is accepted on the others
and has no effect there: that is a *warning* (``healthCheckPath`` on a
private service, which Render checks over TCP only), while a key Render does not know at
all, a missing required key or a wrong value is an *error* (the sync fails).

:func:`check_blueprint` returns every :class:`Problem` with where it is, what is wrong and the
fix; :func:`validate_blueprint` keeps only the errors, as plain strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DATABASE_PLANS",
    "KEYVALUE_PLANS",
    "MAXMEMORY_POLICIES",
    "REGIONS",
    "RUNTIMES",
    "SCHEMA",
    "SERVICE_PLANS",
    "Problem",
    "check_blueprint",
    "validate_blueprint",
]

REGIONS = ("oregon", "ohio", "virginia", "frankfurt", "singapore")
RUNTIMES = ("node", "python", "elixir", "go", "ruby", "rust", "docker", "image", "static")
SERVICE_PLANS = ("free", "starter", "standard", "pro", "pro plus", "pro max", "pro ultra")
KEYVALUE_PLANS = ("free", "starter", "standard", "pro", "pro plus")
MAXMEMORY_POLICIES = (
    "allkeys-lru",
    "volatile-lru",
    "allkeys-lfu",
    "volatile-lfu",
    "allkeys-random",
    "volatile-random",
    "volatile-ttl",
    "noeviction",
)
_CURRENT_DB_PLAN = re.compile(r"free|basic-(256mb|1gb|4gb)|pro-\d+gb|accelerated-\d+gb")
_LEGACY_DB_PLANS = ("starter", "standard", "pro", "pro plus")
DATABASE_PLANS = (
    "free, basic-256mb, basic-1gb, basic-4gb, pro-4gb ... pro-512gb, accelerated-16gb ..."
)
_REDIS_WORDS = re.compile(r"redis|valkey|keyvalue|key-value|\bkv\b|-kv\b|cache", re.IGNORECASE)

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: where in the file, what is wrong, how to fix it, and how bad it is."""

    where: str
    message: str
    fix: str = ""
    severity: Severity = "error"

    def __str__(self) -> str:
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{self.where}: {self.message}{fix}"


@dataclass(frozen=True, slots=True)
class _Object:
    """Allowed and required keys of one kind of Blueprint object, and its enumerated values."""

    allowed: frozenset[str]
    required: frozenset[str] = frozenset()
    enums: Mapping[str, Sequence[Any]] = field(default_factory=dict)


def _obj(allowed: str, required: str = "", **enums: Sequence[Any]) -> _Object:
    return _Object(frozenset(allowed.split()), frozenset(required.split()), enums)


_GIT = "repo branch rootDir buildFilter autoDeploy autoDeployTrigger"
_BUILD = "buildCommand startCommand preDeployCommand dockerCommand dockerfilePath dockerContext"
_RUNNING = "plan region numInstances scaling disk envVars registryCredential image"
_PREVIEWS = "previews previewPlan pullRequestPreviewsEnabled"
_SERVICE = f"type name runtime env {_GIT} {_BUILD} {_RUNNING} {_PREVIEWS}"
_ENUM_RUNTIME = {"runtime": RUNTIMES, "env": RUNTIMES}
_TRIGGERS = ("commit", "checksPass", "off")

_PAID_SERVICE = _obj(
    f"{_SERVICE} maxShutdownDelaySeconds",
    "type name",
    plan=SERVICE_PLANS[1:],
    region=REGIONS,
    autoDeployTrigger=_TRIGGERS,
    **_ENUM_RUNTIME,
)

SCHEMA: dict[str, _Object] = {
    "root": _obj(
        "services databases envVarGroups projects ungrouped previews previewsEnabled "
        "previewsExpireAfterDays"
    ),
    "web": _obj(
        f"{_SERVICE} healthCheckPath maxShutdownDelaySeconds domains",
        "type name",
        plan=SERVICE_PLANS,
        region=REGIONS,
        autoDeployTrigger=_TRIGGERS,
        **_ENUM_RUNTIME,
    ),
    "static": _obj(
        f"type name runtime env {_GIT} buildCommand envVars domains headers routes "
        f"staticPublishPath previews pullRequestPreviewsEnabled",
        "type name buildCommand staticPublishPath",
        autoDeployTrigger=_TRIGGERS,
        **_ENUM_RUNTIME,
    ),
    # Private services and background workers take the same keys (no free plan).
    "pserv": _PAID_SERVICE,
    "worker": _PAID_SERVICE,
    "cron": _obj(
        f"type name runtime env {_GIT} {_BUILD} plan region envVars registryCredential image "
        "schedule",
        "type name schedule",
        plan=SERVICE_PLANS[1:5],
        region=REGIONS,
        autoDeployTrigger=_TRIGGERS,
        **_ENUM_RUNTIME,
    ),
    "keyvalue": _obj(
        "type name plan region ipAllowList maxmemoryPolicy previewPlan",
        "type name ipAllowList",
        plan=KEYVALUE_PLANS,
        region=REGIONS,
        maxmemoryPolicy=MAXMEMORY_POLICIES,
        previewPlan=KEYVALUE_PLANS,
    ),
    "database": _obj(
        "name databaseName user plan previewPlan diskSizeGB previewDiskSizeGB region "
        "ipAllowList postgresMajorVersion readReplicas highAvailability",
        "name",
        region=REGIONS,
    ),
    "envVarGroup": _obj("name envVars", "name"),
    "envVar": _obj("key value generateValue sync fromDatabase fromService fromGroup"),
    "fromDatabase": _obj(
        "name property",
        "name property",
        property=("host", "port", "database", "user", "password", "connectionString"),
    ),
    "fromService": _obj(
        "type name property envVarKey",
        "type name",
        type=("web", "pserv", "worker", "cron", "keyvalue", "redis"),
        property=("host", "port", "hostport", "connectionString"),
    ),
    "ipAllow": _obj("source description", "source"),
    "disk": _obj("name mountPath sizeGB", "name mountPath"),
    "scaling": _obj(
        "minInstances maxInstances targetMemoryPercent targetCPUPercent",
        "minInstances maxInstances",
    ),
    "servicePreviews": _obj("generation numInstances plan", generation=("manual", "automatic")),
    "rootPreviews": _obj("generation expireAfterDays", generation=("off", "manual", "automatic")),
    "project": _obj("name environments envVarGroups", "name environments"),
    "environment": _obj("name services databases envVarGroups networking permissions", "name"),
    "ungrouped": _obj("services databases envVarGroups"),
}
"""The keys Render documents for each kind of Blueprint object (service types: web, static
(``type: web`` with ``runtime: static``), pserv, worker, cron, keyvalue)."""

_SERVICE_KINDS = ("web", "static", "pserv", "worker", "cron", "keyvalue")
_ANY_SERVICE_KEY = frozenset().union(*(SCHEMA[k].allowed for k in _SERVICE_KINDS))
_NOT_FOR = {
    "healthCheckPath": "Render sends HTTP health checks to web services only; a private "
    "service gets TCP checks on its port (https://render.com/docs/health-checks)",
}
_DEPRECATED = {
    "env": "use runtime: (env still works but Render discourages it)",
    "autoDeploy": "use autoDeployTrigger: commit (or off)",
    "pullRequestPreviewsEnabled": "use previews: {generation: automatic}",
    "previewsEnabled": "use previews: {generation: automatic}",
    "previewsExpireAfterDays": "use previews: {expireAfterDays: N}",
}


def _join(where: str, key: str) -> str:
    return key if where in ("", "render.yaml") else f"{where}.{key}"


# A key in the wrong place or under another name: where it belongs.
_MISPLACED = {
    "minInstances": "a service's scaling: {minInstances: 1, maxInstances: 5, targetCPUPercent: 70}",
    "maxInstances": "a service's scaling: {minInstances: 1, maxInstances: 5, targetCPUPercent: 70}",
    "targetCPU": "a service's scaling block, as targetCPUPercent: 70 (a number, no %)",
    "targetMemory": "a service's scaling block, as targetMemoryPercent: 80 (a number, no %)",
    "targetCPUPercent": "a service's scaling block",
    "targetMemoryPercent": "a service's scaling block",
    "healthCheck": "healthCheckPath: /health on a web service",
    "startCmd": "startCommand",
    "buildCmd": "buildCommand",
    "environment": "envVars (a list of {key, value})",
}


@dataclass(slots=True)
class _Checker:
    """Collects problems while walking one Blueprint."""

    problems: list[Problem] = field(default_factory=list)
    services: dict[str, str] = field(default_factory=dict)  # name -> kind
    databases: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)

    def error(self, where: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(where, message, fix, "error"))

    def warn(self, where: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(where, message, fix, "warning"))

    def mapping(self, obj: Any, where: str, what: str) -> bool:
        if isinstance(obj, Mapping):
            return True
        self.error(where, f"expected a mapping for a {what}, got {type(obj).__name__}")
        return False

    def items(self, obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
        value = obj.get(key, [])
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.error(_join(where, key), f"expected a list, got {type(value).__name__}")
        return []

    def keys(
        self, kind: str, obj: Mapping[str, Any], where: str, known: Iterable[str] = ()
    ) -> None:
        """Unknown keys, missing required keys and enumerated values of one object."""
        spec = SCHEMA[kind]
        label = {"static": "static site", "root": "the top level"}.get(kind, kind)
        label = label if kind == "root" else f"a {label}"
        for key in obj:
            if key in spec.allowed:
                if key in _DEPRECATED:
                    self.warn(_join(where, key), "is deprecated", _DEPRECATED[key])
            elif key in known:
                reason = _NOT_FOR.get(key, f"Render ignores {key} on {label}")
                self.warn(_join(where, key), f"has no effect on {label}: {reason}", f"remove {key}")
            else:
                hint = f"it belongs in {_MISPLACED[key]}" if key in _MISPLACED else ""
                self.error(_join(where, key), f"not a Blueprint key for {label}", hint)
        for key in sorted(spec.required - set(obj)):
            self.error(where, f"missing required key {key!r} for {label}")
        for key, values in spec.enums.items():
            if key in obj and obj[key] not in values:
                allowed = ", ".join(map(str, values))
                self.error(_join(where, key), f"{obj[key]!r} is not one of {allowed}")


# --- services --------------------------------------------------------------------------------


def _service_kind(service: Mapping[str, Any]) -> str | None:
    kind = service.get("type")
    runtime = service.get("runtime", service.get("env"))
    if kind == "redis":
        return "keyvalue"
    if kind == "web" and runtime == "static":
        return "static"
    return kind if kind in _SERVICE_KINDS else None


def _check_runtime(c: _Checker, kind: str, service: Mapping[str, Any], where: str) -> None:
    runtime = service.get("runtime", service.get("env"))
    if kind == "keyvalue":
        return
    if runtime is None:
        c.error(
            where,
            f"missing required key 'runtime' for a {kind}",
            f"add runtime: one of {', '.join(RUNTIMES)}",
        )
        return
    if runtime == "image" and "image" not in service:
        c.error(
            where,
            "runtime image needs image: {url: ...}",
            "add image: {url: docker.io/you/app:tag}",
        )
    if kind != "static" and runtime not in ("docker", "image"):
        for key in ("buildCommand", "startCommand"):
            if key not in service:
                c.error(where, f"missing required key {key!r} for a {runtime} {kind}")


def _check_scaling(c: _Checker, service: Mapping[str, Any], where: str) -> None:
    scaling, disk = service.get("scaling"), service.get("disk")
    if scaling is not None and c.mapping(scaling, f"{where}.scaling", "scaling block"):
        c.keys("scaling", scaling, f"{where}.scaling")
        low, high = scaling.get("minInstances"), scaling.get("maxInstances")
        if isinstance(low, int) and isinstance(high, int) and not 1 <= low <= high:
            c.error(
                f"{where}.scaling",
                f"minInstances {low} / maxInstances {high}: need 1 <= min <= max",
            )
        targets = [t for t in ("targetCPUPercent", "targetMemoryPercent") if t in scaling]
        if not targets:
            c.error(
                f"{where}.scaling",
                "needs targetCPUPercent or targetMemoryPercent",
                "add targetCPUPercent: 70",
            )
        for target in targets:
            value = scaling[target]
            if not (isinstance(value, int) and 1 <= value <= 90):
                c.error(
                    f"{where}.scaling.{target}", f"{value!r} must be a whole number from 1 to 90"
                )
    if disk is not None and c.mapping(disk, f"{where}.disk", "disk"):
        c.keys("disk", disk, f"{where}.disk")
        size = disk.get("sizeGB", 10)
        if not (isinstance(size, int) and size >= 1):
            c.error(f"{where}.disk.sizeGB", f"{size!r} must be a whole number of GB, 1 or more")
        instances = service.get("numInstances", 1)
        if scaling is not None or (isinstance(instances, int) and instances > 1):
            c.error(
                f"{where}.disk",
                "a service with a persistent disk cannot be scaled (Render: one instance)",
                "remove scaling/numInstances, or keep the data in Postgres or object storage",
            )
    count = service.get("numInstances")
    if count is not None and not (isinstance(count, int) and count >= 1):
        c.error(f"{where}.numInstances", f"{count!r} must be a whole number, 1 or more")


_CRON_FIELD = re.compile(r"[\d*/,\-A-Za-z?LW#]+")


def _check_service_values(c: _Checker, kind: str, service: Mapping[str, Any], where: str) -> None:
    delay = service.get("maxShutdownDelaySeconds")
    if delay is not None and not (isinstance(delay, int) and 1 <= delay <= 300):
        c.error(f"{where}.maxShutdownDelaySeconds", f"{delay!r} must be 1 to 300")
    path = service.get("healthCheckPath")
    if path is not None and not (isinstance(path, str) and path.startswith("/")):
        c.error(f"{where}.healthCheckPath", f"{path!r} must start with /")
    schedule = service.get("schedule")
    if kind == "cron" and schedule is not None:
        fields = str(schedule).split()
        if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
            c.error(
                f"{where}.schedule",
                f"{schedule!r} is not a 5-field cron expression",
                "e.g. '0 3 * * *' (quoted)",
            )
    previews = service.get("previews")
    if previews is not None and c.mapping(previews, f"{where}.previews", "previews block"):
        c.keys("servicePreviews", previews, f"{where}.previews")
    if kind in ("web", "pserv", "worker", "cron", "static"):
        _check_scaling(c, service, where)
    if kind == "keyvalue":
        for j, entry in enumerate(c.items(service, "ipAllowList", where)):
            if c.mapping(entry, f"{where}.ipAllowList[{j}]", "ipAllowList entry"):
                c.keys("ipAllow", entry, f"{where}.ipAllowList[{j}]")


def _check_service(c: _Checker, service: Any, where: str) -> None:
    if not c.mapping(service, where, "service"):
        return
    kind = _service_kind(service)
    if kind is None:
        c.error(
            f"{where}.type",
            f"{service.get('type')!r} is not a Render service type",
            "use web, pserv, worker, cron or keyvalue",
        )
        return
    if service.get("type") == "redis":
        c.warn(f"{where}.type", "redis is a deprecated alias", "use type: keyvalue")
    c.keys(kind, service, where, _ANY_SERVICE_KEY)
    _check_runtime(c, kind, service, where)
    _check_service_values(c, kind, service, where)
    name = service.get("name")
    if not isinstance(name, str) or not name.strip():
        c.error(f"{where}.name", f"{name!r} must be a non-empty name")
    elif name in c.services:
        c.error(f"{where}.name", f"{name!r} is defined twice", "give every service its own name")
    else:
        c.services[name] = "web" if kind == "static" else kind


# --- databases and env vars ------------------------------------------------------------------


def _check_database(c: _Checker, database: Any, where: str, redis_refs: set[str]) -> None:
    if not c.mapping(database, where, "database"):
        return
    c.keys("database", database, where)
    name = database.get("name")
    plan = database.get("plan")
    if plan in _LEGACY_DB_PLANS:
        c.error(
            f"{where}.plan",
            f"{plan!r} is a legacy Postgres instance type: Render creates no new database on it",
            "use basic-256mb (or basic-1gb, pro-4gb, ...); a database that already exists on a "
            "legacy type keeps it",
        )
    elif plan is not None and not (isinstance(plan, str) and _CURRENT_DB_PLAN.fullmatch(plan)):
        c.error(
            f"{where}.plan",
            f"{plan!r} is not a Render Postgres plan",
            f"use one of {DATABASE_PLANS}",
        )
    size = database.get("diskSizeGB")
    if size is not None and not (
        isinstance(size, int) and (size == 1 or (size > 0 and size % 5 == 0))
    ):
        c.error(f"{where}.diskSizeGB", f"{size!r} must be 1 or a multiple of 5")
    version = database.get("postgresMajorVersion")
    if version is not None and not isinstance(version, str):
        c.warn(
            f"{where}.postgresMajorVersion",
            f"{version!r} should be a string",
            f"quote it: '{version}'",
        )
    if isinstance(name, str) and (_REDIS_WORDS.search(name) or name in redis_refs):
        c.error(
            where,
            f"{name!r} looks like Redis, but Render's databases: holds Postgres only (this "
            "would create a Postgres instance)",
            f"declare it under services: as '- type: keyvalue, name: {name}, ipAllowList: []' "
            f"and read it with fromService: {{type: keyvalue, name: {name}, property: "
            "connectionString}",
        )
    if isinstance(name, str):
        c.databases.add(name)
    for replica in c.items(database, "readReplicas", where):  # referenced like a database
        if isinstance(replica, Mapping) and isinstance(replica.get("name"), str):
            c.databases.add(replica["name"])


def _check_env_var(c: _Checker, var: Any, where: str, in_group: bool) -> None:
    if not c.mapping(var, where, "env var"):
        return
    c.keys("envVar", var, where)
    if "fromGroup" in var:
        if len(var) != 1:
            c.error(
                where,
                "fromGroup takes no other key",
                "put the group on its own line: - fromGroup: NAME",
            )
        if in_group:
            c.error(where, "an environment group cannot include another group")
        return
    if "key" not in var:
        c.error(where, "missing required key 'key'")
    sources = [
        s for s in ("value", "generateValue", "sync", "fromDatabase", "fromService") if s in var
    ]
    if len(sources) != 1:
        c.error(
            where,
            "exactly one of value, generateValue, sync, fromDatabase, fromService is needed, "
            f"got {sources or 'none'}",
        )
    if "value" in var and isinstance(var["value"], (list, dict)):
        c.error(f"{where}.value", "must be a single value (Render passes it as a string)")
    if "generateValue" in var and var["generateValue"] is not True:
        c.error(f"{where}.generateValue", "must be true")
    if "sync" in var and var["sync"] is not False:
        c.error(f"{where}.sync", "must be false (a value you fill in on the dashboard)")
    if in_group and "sync" in var:
        c.warn(
            where,
            "Render ignores sync: false inside an environment group",
            "declare it on each service instead",
        )
    if in_group and ("fromDatabase" in var or "fromService" in var):
        c.error(
            where,
            "an environment group cannot reference services or databases",
            "declare it on each service",
        )
    if "fromDatabase" in var and c.mapping(
        var["fromDatabase"], f"{where}.fromDatabase", "fromDatabase"
    ):
        c.keys("fromDatabase", var["fromDatabase"], f"{where}.fromDatabase")
    if "fromService" in var and c.mapping(
        var["fromService"], f"{where}.fromService", "fromService"
    ):
        _check_from_service(c, var["fromService"], f"{where}.fromService")


_PROPERTY_FIX = {
    "url": "there is no url property: use property: hostport and build http://$VAR in your "
    "code (private network), or set the public https://NAME.onrender.com URL as a value",
}


def _check_from_service(c: _Checker, ref: Mapping[str, Any], where: str) -> None:
    prop = ref.get("property")
    if prop in _PROPERTY_FIX:
        c.error(
            f"{where}.property", f"{prop!r} is not a property Render provides", _PROPERTY_FIX[prop]
        )
        return
    c.keys("fromService", ref, where)
    if ("property" in ref) == ("envVarKey" in ref):
        c.error(where, "give exactly one of property, envVarKey")
    kind = "keyvalue" if ref.get("type") == "redis" else ref.get("type")
    if prop == "connectionString" and kind != "keyvalue":
        c.error(
            f"{where}.property", "connectionString exists only on keyvalue (Postgres: fromDatabase)"
        )
    if prop in ("host", "port", "hostport") and kind not in ("web", "pserv"):
        c.error(f"{where}.property", f"{prop} exists only on web and pserv services")


def _check_references(c: _Checker, var: Mapping[str, Any], where: str) -> None:
    db = var.get("fromDatabase")
    if isinstance(db, Mapping) and db.get("name") not in c.databases:
        c.warn(
            f"{where}.fromDatabase.name",
            f"no database {db.get('name')!r} in this Blueprint: it must already exist in your "
            "workspace",
            "check the name against databases:",
        )
    ref = var.get("fromService")
    if isinstance(ref, Mapping):
        kind = "keyvalue" if ref.get("type") == "redis" else ref.get("type")
        actual = c.services.get(ref.get("name", ""))
        if actual is None:
            c.warn(
                f"{where}.fromService",
                f"no {ref.get('type')} service {ref.get('name')!r} in this Blueprint: it must "
                "already exist in your workspace",
            )
        elif actual != kind:
            c.error(
                f"{where}.fromService.type",
                f"{ref.get('name')!r} is a {actual}, not a {ref.get('type')}",
                f"type: {actual}",
            )
    group = var.get("fromGroup")
    if group is not None and group not in c.groups:
        c.warn(
            f"{where}.fromGroup",
            f"no environment group {group!r} in this Blueprint: it must already exist",
        )


# --- the whole file --------------------------------------------------------------------------


def _redis_refs(services: Iterable[Any]) -> set[str]:
    """Databases read into a variable named like Redis (REDIS_URL: fromDatabase ...)."""
    names: set[str] = set()
    for service in services:
        env_vars = service.get("envVars") if isinstance(service, Mapping) else None
        for var in env_vars if isinstance(env_vars, list) else []:
            source = var.get("fromDatabase") if isinstance(var, Mapping) else None
            if isinstance(source, Mapping) and _REDIS_WORDS.search(str(var.get("key", ""))):
                names.add(str(source.get("name")))
    return names


def _check_resources(c: _Checker, holder: Mapping[str, Any], where: str) -> list[tuple[str, Any]]:
    """services, databases and envVarGroups of the root, an environment, or ungrouped."""
    prefix = f"{where}." if where else ""
    services = c.items(holder, "services", where or "render.yaml")
    for i, group in enumerate(c.items(holder, "envVarGroups", where or "render.yaml")):
        gwhere = f"{prefix}envVarGroups[{i}]"
        if c.mapping(group, gwhere, "environment group"):
            c.keys("envVarGroup", group, gwhere)
            c.groups.add(str(group.get("name")))
            for j, var in enumerate(c.items(group, "envVars", gwhere)):
                _check_env_var(c, var, f"{gwhere}.envVars[{j}]", in_group=True)
    refs = _redis_refs(services)
    for i, database in enumerate(c.items(holder, "databases", where or "render.yaml")):
        _check_database(c, database, f"{prefix}databases[{i}]", refs)
    env_vars: list[tuple[str, Any]] = []
    for i, service in enumerate(services):
        swhere = f"{prefix}services[{i}]"
        _check_service(c, service, swhere)
        if isinstance(service, Mapping):
            for j, var in enumerate(c.items(service, "envVars", swhere)):
                _check_env_var(c, var, f"{swhere}.envVars[{j}]", in_group=False)
                env_vars.append((f"{swhere}.envVars[{j}]", var))
    return env_vars


def check_blueprint(data: Any) -> list[Problem]:
    """Every problem in a Blueprint: errors (Render refuses the file) and warnings."""
    c = _Checker()
    if not c.mapping(data, "render.yaml", "Blueprint (the file's top level)"):
        return c.problems
    c.keys("root", data, "render.yaml")
    if isinstance(data.get("previews"), Mapping):
        c.keys("rootPreviews", data["previews"], "previews")
    env_vars = _check_resources(c, data, "")
    if isinstance(data.get("ungrouped"), Mapping):
        c.keys("ungrouped", data["ungrouped"], "ungrouped")
        env_vars += _check_resources(c, data["ungrouped"], "ungrouped")
    for i, project in enumerate(c.items(data, "projects", "render.yaml")):
        pwhere = f"projects[{i}]"
        if not c.mapping(project, pwhere, "project"):
            continue
        c.keys("project", project, pwhere)
        for j, environment in enumerate(c.items(project, "environments", pwhere)):
            ewhere = f"{pwhere}.environments[{j}]"
            if c.mapping(environment, ewhere, "environment"):
                c.keys("environment", environment, ewhere)
                env_vars += _check_resources(c, environment, ewhere)
    for where, var in env_vars:
        if isinstance(var, Mapping):
            _check_references(c, var, where)
    return c.problems


def validate_blueprint(data: Any) -> list[str]:
    """The errors in a Blueprint, one string each (an empty list when Render accepts it)."""
    return [str(p) for p in check_blueprint(data) if p.severity == "error"]
