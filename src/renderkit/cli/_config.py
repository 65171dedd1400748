"""``renderkit config check module:Class``: load an app's settings and show what they resolve to."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from renderkit.cli._output import EXIT_USAGE, add_command
from renderkit.config import ConfigReport, Settings, redact

EXIT_OK = 0
EXIT_INVALID = 1


class SettingsImportError(Exception):
    """The ``module:Class`` reference could not be turned into a Settings subclass."""


def import_settings(reference: str) -> type[Settings]:
    """Import ``module:Class`` (``module.Class`` also works) and check it is a Settings class.

    The current directory is put on ``sys.path`` first, as uvicorn and gunicorn do, so
    ``app.settings:Settings`` works from the project root.
    """
    if ":" in reference:
        module_name, _, attr = reference.partition(":")
    else:
        module_name, _, attr = reference.rpartition(".")
    if not module_name or not attr:
        raise SettingsImportError(
            f"{reference!r} is not a settings reference; use module:Class, e.g. app.config:Settings"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the app's module can fail in any way while importing
        raise SettingsImportError(
            f"could not import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SettingsImportError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Settings)):
        raise SettingsImportError(
            f"{reference!r} is not a renderkit.config.Settings subclass (got {type(obj).__name__})"
        )
    return obj


def discover_settings(*, strict: bool = False) -> tuple[list[type[Settings]], list[str]]:
    """Every Settings subclass declared in a ``renderkit.*`` module, and the modules skipped.

    Imports each module of the package (nothing connects at import time). A module whose
    optional dependency is missing is skipped and named in the second list, unless
    ``strict`` (tools/envdoc.py: a module that cannot be imported would drop its variables).
    """
    import pkgutil

    import renderkit

    skipped: list[str] = []
    for info in pkgutil.walk_packages(renderkit.__path__, "renderkit."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            if strict:
                raise RuntimeError(f"importing {info.name} failed: {exc!r}") from exc
            skipped.append(f"{info.name} ({type(exc).__name__})")
    found: list[type[Settings]] = []
    pending = list(Settings.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("renderkit.") and cls not in found:
            found.append(cls)
    found.sort(key=lambda c: (c.__module__, c.__qualname__))
    return found, skipped


def format_report(report: ConfigReport) -> str:
    """Render a report as a table of VARIABLE / VALUE / SOURCE plus one line per problem."""
    rows = [("VARIABLE", "VALUE", "SOURCE")]
    rows += [(f.variable, f.display, f.source) for f in report.fields]
    widths = [min(max(len(r[i]) for r in rows), 48) for i in range(2)]
    lines = [f"{report.settings_class} ({report.environment or 'unknown environment'})", ""]
    for variable, value, source in rows:
        shown = value if len(value) <= 48 else value[:45] + "..."
        lines.append(f"  {variable:<{widths[0]}}  {shown:<{widths[1]}}  {source}")
    lines.append("")
    if report.ok:
        lines.append("OK: every setting is valid.")
    else:
        count = len(report.problems)
        lines.append(f"{count} problem{'s' if count != 1 else ''}:")
        lines.extend(f"  - {problem}" for problem in report.problems)
    return "\n".join(lines)


def report_as_dict(report: ConfigReport) -> dict[str, Any]:
    """A JSON-ready form of the report (values masked exactly as in the table)."""
    return {
        "settings": report.settings_class,
        "environment": report.environment,
        "ok": report.ok,
        "fields": [
            {"variable": f.variable, "value": f.display, "source": f.source, "ok": f.ok}
            for f in report.fields
        ],
        "problems": [
            {
                "variable": p.variable,
                "source": p.source,
                "message": p.message,
                "expected": p.expected,
                "found": p.found,
            }
            for p in report.problems
        ],
    }


def _run(args: argparse.Namespace) -> int:
    """load a Settings class from the environment and show every value (secrets masked)

    Load module:Class from the environment (and a .env file with --dotenv), print every
    setting with secrets masked, and list every problem. Exit codes: 0 valid,
    1 invalid settings, 2 the class could not be imported.
    """
    try:
        cls = import_settings(args.settings)
        report = cls.check(dotenv=args.dotenv)
    except (SettingsImportError, TypeError) as exc:  # TypeError: a bug in the class
        # The app's module may fail while connecting somewhere: its message can hold a URL.
        print(redact(f"renderkit config check: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(redact(json.dumps(report_as_dict(report), indent=2)))
    else:
        print(redact(format_report(report)))
    return EXIT_OK if report.ok else EXIT_INVALID


def register(subparsers: Any) -> None:
    """Add ``config check`` to the CLI."""
    config = subparsers.add_parser("config", help="check an app's settings")
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    check = add_command(config_sub, "check", _run)
    check.add_argument("settings", metavar="module:Class", help="e.g. app.config:AppSettings")
    check.add_argument(
        "--dotenv",
        metavar="PATH",
        default=None,
        help="also read this .env file (real environment variables win)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")

    def _usage(args: argparse.Namespace) -> int:
        config.print_help()
        return EXIT_USAGE

    config.set_defaults(handler=_usage)
