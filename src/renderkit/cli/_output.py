"""What every ``renderkit`` command prints the same way: verdicts, usage errors, output files.

Commands report a list of verdicts (a check name, a status, what was seen, what to do, raw
facts): :class:`Verdict` holds one, :func:`verdict_dict` gives them one JSON shape. Each
command module adds itself with :func:`add_command` (name, runner, help, description). Bad
options are reported with :func:`usage_error` (one ``renderkit <command>: <problem>`` line
each on stderr, exit code 2), and generated text goes to stdout or a file through
:func:`write_output`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "EXIT_USAGE",
    "Verdict",
    "add_command",
    "usage_error",
    "verdict_dict",
    "write_output",
]

EXIT_USAGE = 2
"""The exit code of every command given bad options."""


def verdict_dict(
    check: str, status: str, message: str, fix: str = "", details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON shape of one verdict, shared by ``doctor`` findings and ``verify`` checks."""
    return {
        "check": check,
        "status": status,
        "message": message,
        "fix": fix,
        "details": details or {},
    }


@dataclass(frozen=True, slots=True)
class Verdict:
    """One check's verdict: its name, status, what was seen, what to do, and the raw facts.

    Commands subclass it to narrow ``status`` to their own words (``verify``: pass, warn,
    fail, skip; ``doctor``: ok, warn, fail).
    """

    check: str
    status: str
    message: str
    fix: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return verdict_dict(self.check, self.status, self.message, self.fix, self.details)


def add_command(
    subparsers: Any,
    name: str,
    run: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` that runs ``run(args)``; return its parser for the options."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description
    )
    parser.set_defaults(handler=run)
    return parser


def usage_error(command: str, problems: Iterable[str], stream: TextIO | None = None) -> int:
    """Print each problem as ``renderkit <command>: <problem>`` on stderr; return exit code 2."""
    out = stream if stream is not None else sys.stderr
    for problem in problems:
        print(f"renderkit {command}: {problem}", file=out)
    return EXIT_USAGE


def write_output(text: str, output: str | None) -> None:
    """Write ``text`` to the file ``output`` (saying so on stderr), or to stdout for None/-."""
    if output and output != "-":
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
