"""Every ``renderkit`` command takes its help and description from its run function's docstring."""

from __future__ import annotations

import argparse

import pytest

from renderkit.cli import _COMMANDS, build_parser
from renderkit.cli._output import add_command, command_docs
from renderkit.cli._secret import KINDS


def _documented(args: argparse.Namespace) -> int:
    """do the thing

    First paragraph, written
    over two lines.

    Second paragraph.
    """
    return 0


def _undocumented(args: argparse.Namespace) -> int:
    return 0


def _subparsers() -> argparse._SubParsersAction[argparse.ArgumentParser]:
    return argparse.ArgumentParser(prog="renderkit").add_subparsers(dest="command")


def _commands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """Each subcommand of ``parser`` (config's own subcommands instead of config): help, parser."""
    found: dict[str, tuple[str, argparse.ArgumentParser]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    found.update(_commands(sub))
                else:
                    found[choice.dest] = (choice.help or "", sub)
    return found


def test_first_line_is_the_help_and_the_paragraphs_the_description() -> None:
    assert command_docs("thing", _documented) == (
        "do the thing",
        "First paragraph, written over two lines.\n\nSecond paragraph.",
    )


def test_a_one_line_docstring_has_no_description() -> None:
    def run(args: argparse.Namespace) -> int:
        """just the help"""
        return 0

    assert command_docs("thing", run) == ("just the help", None)


def test_add_command_reads_the_docstring_and_sets_the_handler() -> None:
    parser = add_command(_subparsers(), "thing", _documented)
    assert parser.description == "First paragraph, written over two lines.\n\nSecond paragraph."
    assert parser.get_default("handler") is _documented


def test_help_and_description_keywords_override_the_docstring() -> None:
    subparsers = _subparsers()
    parser = add_command(subparsers, "thing", _documented, help="other", description="text")
    assert parser.description == "text"
    assert [a.help for a in subparsers._choices_actions] == ["other"]


@pytest.mark.parametrize("doc", [None, "", "   \n  "])
def test_a_run_function_without_a_docstring_fails_at_registration(doc: str | None) -> None:
    _undocumented.__doc__ = doc
    with pytest.raises(TypeError, match=r"renderkit command 'thing'.*_undocumented.*no docstring"):
        add_command(_subparsers(), "thing", _undocumented)


def test_every_command_has_its_run_docstring_as_help() -> None:
    """Each registered command's help line and description are its handler's docstring."""
    commands = _commands(build_parser())
    assert len(commands) == len(_COMMANDS)
    for name, (help_line, sub) in commands.items():
        doc_help, doc_description = command_docs(name, sub.get_default("handler"))
        assert doc_help and help_line == doc_help, name
        if name == "secret":  # its description goes on with every kind of secret
            assert doc_description and sub.description
            assert sub.description.startswith(doc_description)
            assert all(f"{k.name}: {k.help}" in sub.description for k in KINDS.values())
        else:
            assert doc_description and sub.description == doc_description, name
