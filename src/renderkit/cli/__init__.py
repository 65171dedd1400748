"""The ``renderkit`` command line: doctor, config check, and the commands later modules add.

Each subcommand lives in its own private module exposing ``register(subparsers)``; add new
ones to ``_COMMANDS``. Modules are imported only when the CLI runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from renderkit.cli._blueprint import check_blueprint, validate_blueprint
    from renderkit.cli._doctor import doctor_findings
    from renderkit.cli._observatory import SCANNER_VERSION, grade_headers, redirection_result

__all__ = [
    "SCANNER_VERSION",
    "check_blueprint",
    "doctor_findings",
    "grade_headers",
    "main",
    "redirection_result",
    "validate_blueprint",
]

# The commands' pure functions, public here and imported on first use (the CLI still loads
# nothing it does not run): ``from renderkit.cli import grade_headers, check_blueprint``.
_LAZY = {
    "SCANNER_VERSION": "renderkit.cli._observatory",
    "grade_headers": "renderkit.cli._observatory",
    "redirection_result": "renderkit.cli._observatory",
    "check_blueprint": "renderkit.cli._blueprint",
    "validate_blueprint": "renderkit.cli._blueprint",
    "doctor_findings": "renderkit.cli._doctor",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'renderkit.cli' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


_COMMANDS = (
    "renderkit.cli._doctor",
    "renderkit.cli._config",
    "renderkit.cli._verify",
    "renderkit.cli._secret",
    "renderkit.cli._blueprint",
    "renderkit.cli._sessions",
)


def _version() -> str:
    """The installed distribution's version (the package's own when run from a checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("renderkit")
    except PackageNotFoundError:
        from renderkit import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="renderkit",
        description="Production checks and helpers for apps built with renderkit.",
    )
    parser.add_argument("--version", action="version", version=f"renderkit {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    code: int = handler(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
