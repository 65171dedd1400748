"""The ``renderkit`` command line: doctor, config check, and the commands later modules add.

Each subcommand lives in its own private module exposing ``register(subparsers)``; add new
ones to ``_COMMANDS``. Modules are imported only when the CLI runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

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
