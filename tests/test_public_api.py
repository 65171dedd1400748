"""The public names of each module are exactly what ``__all__`` lists, and importable."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PUBLIC: dict[str, set[str]] = {
    "renderkit.testing": {
        "ClientFactory",
        "HealthProbe",
        "PLATFORM_ENV",
        "PlatformFactory",
        "renderkit_async_cache",
        "renderkit_async_fakeredis",
        "renderkit_cache",
        "renderkit_client",
        "renderkit_database_url",
        "renderkit_fakeredis",
        "renderkit_fakeredis_server",
        "renderkit_health_probe",
        "renderkit_limiter",
        "renderkit_platform",
        "renderkit_redis_url",
        "renderkit_session_store",
        "require_services",
    },
    "renderkit.ratelimit": {
        "Charge",
        "Check",
        "DEFAULT_LIMIT",
        "DEFAULT_MAX_KEYS",
        "DEFAULT_TIMEOUT",
        "HEALTH_PATHS",
        "KeyFunc",
        "MemoryCounts",
        "PROBLEM_TYPE",
        "RateLimit",
        "RateLimitExceeded",
        "RateLimitMiddleware",
        "RateLimitPolicy",
        "RateLimitProcessSettings",
        "RateLimitResult",
        "RateLimitSettings",
        "RateLimitTrustSettings",
        "RateLimiter",
        "RequestInfo",
        "RouteLimit",
        "Rule",
        "Strategy",
        "Verdict",
        "api_key",
        "client_ip_key",
        "deny_response",
        "exempt",
        "first_of",
        "install",
        "limit",
        "parse_limits",
        "rate_limit_handler",
        "rate_limit_headers",
        "session_user",
    },
    "renderkit.errors": {
        "BackendUnavailable",
        "CircuitOpenError",
        "ConfigError",
        "ConfigProblem",
        "MissingDependencyError",
        "RenderKitError",
        "SessionError",
    },
    "renderkit.config": {
        "ByteSize",
        "ConfigError",
        "ConfigProblem",
        "ConfigReport",
        "CorsSettings",
        "ENVIRONMENT_VARIABLES",
        "EnvField",
        "Environment",
        "FieldInfo",
        "FieldReport",
        "PostgresUrl",
        "RedisUrl",
        "Seconds",
        "Settings",
        "env",
        "cors_options",
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
    },
    "renderkit.logging": {
        "LoggingSettings",
        "SERVER_LOGGERS",
        "add_correlation_id",
        "add_server_fields",
        "configure_logging",
        "formatter",
        "get_logger",
        "redact_secrets",
        "server_log_config",
    },
    "renderkit.db": {"AsyncDatabase", "Database", "PoolSettings", "is_transient", "normalize_url"},
    "renderkit.cache": {
        "AsyncCache",
        "Backend",
        "Cache",
        "CacheKeyError",
        "CacheSettings",
        "CacheValueError",
        "FallbackBackend",
        "MemoryBackend",
        "NullBackend",
        "RedisBackend",
        "Serializer",
        "TieredBackend",
    },
    "renderkit.sessions": {
        "CookieSettings",
        "DEFAULT_TTL",
        "DELETED",
        "FallbackStore",
        "MemoryStore",
        "PostgresStore",
        "RedisStore",
        "Session",
        "SessionConflict",
        "SessionError",
        "SessionMiddleware",
        "SessionRecord",
        "SessionStore",
        "SessionStoreSettings",
        "Signer",
        "get_session",
        "new_session_id",
        "store_from_env",
    },
    "renderkit.platform": {
        "DEFAULT_CGROUP_ROOT",
        "DEFAULT_GRACE_PERIODS",
        "FALSE_WORDS",
        "PROVIDERS",
        "PROVIDER_MARKERS",
        "Platform",
        "TRUE_WORDS",
        "VARIABLES",
        "cgroup_cpu_limit",
        "cgroup_memory_limit",
        "cgroup_memory_usage",
        "detect",
        "detect_provider",
    },
    "renderkit.correlation": {
        "CELERY_HEADER",
        "CeleryTracingFilter",
        "CorrelationId",
        "CorrelationIdFilter",
        "CorrelationIdMiddleware",
        "CorrelationOptions",
        "REJECTED_MESSAGE",
        "add_correlation_id",
        "connect_celery",
        "async_httpx_hook",
        "celery_current_id_var",
        "celery_parent_id_var",
        "get_correlation_id",
        "httpx_hook",
        "is_valid_request_id",
        "outgoing_headers",
    },
    "renderkit.security": {
        "CSP_DIRECTIVES",
        "DEFAULT_EXEMPT_PATHS",
        "DOCS_PATHS",
        "HTTPSRedirect",
        "HTTPSRedirectMiddleware",
        "HeadersOptions",
        "NONCE",
        "PROTECTIONS",
        "ProxyTrust",
        "RedirectOptions",
        "SecurityHeaders",
        "SecurityHeadersMiddleware",
        "SecuritySettings",
        "default_trust",
        "https_redirect_enabled",
    },
    "renderkit.proxy": {"PRIVATE_NETWORKS", "ProxyTrust", "client_ip", "effective_scheme"},
    "renderkit.cli": {
        "SCANNER_VERSION",
        "check_blueprint",
        "doctor_findings",
        "grade_headers",
        "main",
        "redirection_result",
        "validate_blueprint",
    },
    "renderkit.metrics": {
        "DURATION_BUCKETS",
        "MetricsSettings",
        "OtelExport",
        "PROMETHEUS_BUCKETS",
        "RequestMetrics",
        "RequestMetricsMiddleware",
        "UNMATCHED_ROUTE",
        "metrics_endpoint",
        "route_template",
    },
    "renderkit.health": {
        "CheckResult",
        "CheckSpec",
        "DEFAULT_CACHE_TTL",
        "DEFAULT_CHECK_TIMEOUT",
        "EndpointKind",
        "EventLoopMonitor",
        "HEALTH_JSON",
        "Health",
        "HealthEndpoint",
        "HealthReport",
        "HealthSettings",
        "INSTANCE_HEALTH_PATH",
        "RequestFacts",
        "ShutdownState",
        "Status",
        "cpu_check",
        "disk_check",
        "memory_check",
        "redis_check",
        "shutdown_check",
    },
    "renderkit.shutdown": {
        "DEFAULT_GRACE_PERIOD",
        "DEFAULT_KEEPALIVE_WINDOW",
        "HookOutcome",
        "Phase",
        "ShutdownCoordinator",
        "ShutdownEvent",
        "ShutdownMiddleware",
        "ShutdownSettings",
        "ShutdownSummary",
        "gunicorn_hooks",
    },
    "renderkit.resilience": {
        "BackoffOptions",
        "CircuitBreaker",
        "CircuitState",
        "Degrader",
        "MemoryWatchdog",
        "Pressure",
        "RETRYABLE_STATUS",
        "RestartPolicy",
        "RetryOptions",
        "Supervisor",
        "TRANSIENT_ERRORS",
        "TaskState",
        "TimeoutMiddleware",
        "async_retrying",
        "full_jitter",
        "http_retry",
        "retry",
        "retry_after_seconds",
        "retrying",
    },
}

# Names SPEC.md promises; they must stay importable whatever else changes.
SPEC_NAMES: dict[str, set[str]] = {
    "renderkit.config": {"ConfigError", "Settings", "env", "environment"},
    "renderkit.platform": {"Platform", "detect"},
    "renderkit.resilience": {"CircuitBreaker", "TimeoutMiddleware"},
    "renderkit.shutdown": {"ShutdownCoordinator", "ShutdownMiddleware"},
    "renderkit.security": {
        "HTTPSRedirectMiddleware",
        "SecurityHeaders",
        "SecurityHeadersMiddleware",
    },
    "renderkit.correlation": {"CorrelationIdMiddleware", "get_correlation_id"},
    "renderkit.flask": {"RenderKit"},
    "renderkit.wsgi": {
        "CorrelationIdMiddleware",
        "HTTPSRedirectMiddleware",
        "RequestMetricsMiddleware",
        "SecurityHeadersMiddleware",
    },
    "renderkit.health": {"CheckResult", "Health"},
    "renderkit.ratelimit": {"RateLimitMiddleware", "RateLimiter"},
    "renderkit.db": {"AsyncDatabase", "Database"},
    "renderkit.cache": {
        "AsyncCache",
        "Cache",
        "FallbackBackend",
        "MemoryBackend",
        "RedisBackend",
        "TieredBackend",
    },
    "renderkit.sessions": {
        "FallbackStore",
        "MemoryStore",
        "PostgresStore",
        "RedisStore",
        "SessionMiddleware",
    },
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_lists_exactly_the_public_names(module: str) -> None:
    """``__all__`` has no duplicates and equals the documented public surface (its order is
    ruff's RUF022 isort-style order, checked by the lint session)."""
    mod = importlib.import_module(module)
    assert len(mod.__all__) == len(set(mod.__all__))
    assert set(mod.__all__) == PUBLIC[module]


@pytest.mark.parametrize("module", sorted(SPEC_NAMES))
def test_spec_names_are_exported(module: str) -> None:
    """Every name SPEC.md promises for the module is in ``__all__`` and importable."""
    mod = importlib.import_module(module)
    for name in SPEC_NAMES[module]:
        assert name in mod.__all__
        assert getattr(mod, name) is not None


def test_exceptions_keep_a_public_module_and_share_a_base() -> None:
    """Errors derive from RenderKitError and report ``renderkit.errors`` as their module."""
    errors = importlib.import_module("renderkit.errors")
    for name in PUBLIC["renderkit.errors"] - {"ConfigProblem", "RenderKitError"}:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.RenderKitError)
        assert cls.__module__ == "renderkit.errors"


def test_package_init_holds_only_the_version() -> None:
    """A fresh ``import renderkit`` exposes ``__version__`` and nothing else."""
    code = "import renderkit; print([n for n in vars(renderkit) if not n.startswith('_')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    import renderkit

    assert renderkit.__version__ == "0.1.0.dev0"
