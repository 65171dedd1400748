"""``renderkit secret``: print a fresh random secret for SESSION_SECRET or an encryption key.

Secrets come from :mod:`secrets` (the OS CSPRNG). Kinds:

- ``session`` (default): 64 random bytes, URL-safe base64 without padding (86 characters),
  the format ``SESSION_SECRET`` expects; safe in env vars, shells and ``.env`` files.
- ``encryption``: 32 random bytes as 64 lowercase hex characters, a 256-bit key
  (``SESSION_ENCRYPTION_KEY``).
- ``token``: 32 random bytes, URL-safe base64 (43 characters), for API tokens and webhooks.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from dataclasses import dataclass
from typing import Any

from renderkit.cli._output import add_command, command_docs

__all__ = ["KINDS", "SecretKind", "generate"]


@dataclass(frozen=True, slots=True)
class SecretKind:
    """One kind of secret: its variable name, entropy in bytes and encoding."""

    name: str
    variable: str
    nbytes: int
    encoding: str  # "urlsafe" or "hex"
    help: str

    def generate(self) -> str:
        """Return a new random value of this kind."""
        if self.encoding == "hex":
            return secrets.token_hex(self.nbytes)
        return secrets.token_urlsafe(self.nbytes)


KINDS: dict[str, SecretKind] = {
    "session": SecretKind(
        "session",
        "SESSION_SECRET",
        64,
        "urlsafe",
        "signs session cookies: 64 random bytes, URL-safe base64",
    ),
    "encryption": SecretKind(
        "encryption",
        "SESSION_ENCRYPTION_KEY",
        32,
        "hex",
        "encrypts session data at rest: a 256-bit key as 64 hex characters",
    ),
    "token": SecretKind(
        "token",
        "API_TOKEN",
        32,
        "urlsafe",
        "an API or webhook token: 32 random bytes, URL-safe base64",
    ),
}
"""The kinds ``renderkit secret --kind`` knows, by name."""


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def generate(kind: str = "session") -> str:
    """Return a new secret of ``kind`` (``session``, ``encryption`` or ``token``)."""
    try:
        return KINDS[kind].generate()
    except KeyError:
        known = ", ".join(KINDS)
        raise ValueError(f"unknown secret kind {kind!r}; use one of: {known}") from None


def _run(args: argparse.Namespace) -> int:
    """print a new random secret (SESSION_SECRET, an encryption key, a token)

    Print a new random secret from the OS CSPRNG.
    """
    kind = KINDS[args.kind]
    if args.count < 1 or args.count > 100:
        print("renderkit secret: --count must be from 1 to 100", file=sys.stderr)
        return 2
    if args.name is not None and not _VARIABLE.fullmatch(args.name):
        print(
            f"renderkit secret: --name {args.name!r} is not an environment variable name; "
            "use letters, digits and underscores, not starting with a digit",
            file=sys.stderr,
        )
        return 2
    for _ in range(args.count):
        value = kind.generate()
        print(f"{args.name or kind.variable}={value}" if args.env else value)
    if sys.stdout.isatty() and not args.env:
        print(
            f"# set it as {args.name or kind.variable} in your service's environment; "
            "never commit it",
            file=sys.stderr,
        )
    return 0


def register(subparsers: Any) -> None:
    """Add ``secret`` to the CLI."""
    # The description goes on with each kind of KINDS, so it cannot drift from --kind.
    _, intro = command_docs("secret", _run)
    kinds = "; ".join(f"{k.name}: {k.help}" for k in KINDS.values())
    parser = add_command(subparsers, "secret", _run, description=f"{intro} {kinds}.")
    parser.add_argument(
        "--kind",
        choices=sorted(KINDS),
        default="session",
        help="what the secret is for (default: session)",
    )
    parser.add_argument(
        "--env",
        action="store_true",
        help="print it as NAME=value, ready for a .env file",
    )
    parser.add_argument(
        "--name",
        default=None,
        metavar="VAR",
        help="the variable name --env prints (default: SESSION_SECRET, SESSION_ENCRYPTION_KEY "
        "or API_TOKEN by kind)",
    )
    parser.add_argument(
        "--count", type=int, default=1, help="how many secrets to print (default: 1)"
    )
