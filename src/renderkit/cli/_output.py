"""What every ``renderkit`` command prints the same way: verdicts, usage errors, output files.

Commands report a list of verdicts (a check name, a status, what was seen, what to do, raw
facts): :class:`Verdict` holds one, :func:`verdict_dict` gives them one JSON shape. Each
command module adds itself with :func:`add_command` (name and runner; the runner's docstring
gives the help line and the description, as in click). Bad options are reported with
:func:`usage_error` (one ``renderkit <command>: <problem>`` line each on stderr, exit code 2),
and generated text goes to stdout or a file through :func:`write_output`.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "EXIT_USAGE",
    "Verdict",
    "add_command",
    "command_docs",
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


def command_docs(name: str, run: Callable[..., Any]) -> tuple[str, str | None]:
    """The help line and description of command ``name`` from the docstring of ``run``.

    The docstring's first line is the short help shown by ``renderkit --help``; the paragraphs
    after it are the description shown by ``renderkit <command> --help`` (each paragraph's
    lines joined with spaces, for argparse to wrap; None when there are none). A runner without
    a docstring raises :exc:`TypeError`, so no command ships without help (except under
    ``python -OO``, which strips every docstring: then the help is empty).
    """
    doc = inspect.cleandoc(getattr(run, "__doc__", None) or "").strip()
    if not doc:
        if sys.flags.optimize >= 2:
            return "", None
        raise TypeError(
            f"renderkit command {name!r}: its run function "
            f"{getattr(run, '__qualname__', run)!r} has no docstring; its first line is the "
            "command's help, the paragraphs after it the description"
        )
    first, _, rest = doc.partition("\n")
    paragraphs = [" ".join(p.split("\n")) for p in rest.strip().split("\n\n") if p.strip()]
    return first, "\n\n".join(paragraphs) or None


def add_command(
    subparsers: Any,
    name: str,
    run: Callable[[argparse.Namespace], int],
    *,
    help: str | None = None,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` that runs ``run(args)``; return its parser for the options.

    Its help and description come from ``run``'s docstring (:func:`command_docs`);
    ``help``/``description`` override them.
    """
    doc_help, doc_description = command_docs(name, run)
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=doc_help if help is None else help,
        description=doc_description if description is None else description,
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
