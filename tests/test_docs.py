"""Docs that cannot drift: every command has --help text and is in README.md's command reference.

The command reference is the README section whose heading mentions "command"; each command must
appear there in backticks as "`cicd <command>`" (options may follow inside the backticks).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from cicd_cli.app import _register, app

README = Path(__file__).resolve().parent.parent / "README.md"

if not app.registered_commands:  # main() registers them; do it once for these tests
    _register()
COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]


def command_reference() -> str:
    """The README section whose heading mentions commands (up to the next heading as high)."""
    text = README.read_text(encoding="utf-8")
    heading = re.search(r"^(#+)[^\n]*\bcommand", text, re.IGNORECASE | re.MULTILINE)
    assert heading is not None, "README.md has no command reference (a heading with 'command')"
    level = len(heading.group(1))
    rest = text[heading.end():]
    end = re.search(rf"^#{{1,{level}}}\s", rest, re.MULTILINE)
    return rest if end is None else rest[: end.start()]


def test_docs_commands_are_registered() -> None:
    assert {"report", "logs", "status", "cancel", "artifacts"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_docs_command_has_help(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert (COMMANDS[name].help or "").strip(), f"`cicd {name}` has no help text (its docstring)"
    first_line = " ".join((COMMANDS[name].help or "").strip().splitlines()[0].split())
    assert first_line in " ".join(result.output.replace("│", " ").split())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_docs_command_help_paragraphs_wrap_to_the_terminal(name: str) -> None:
    # typer keeps a docstring's single line breaks: a paragraph must reach the terminal as one
    # line (so the terminal's width decides where it breaks), here a very wide one
    result = CliRunner().invoke(app, [name, "--help"], terminal_width=1000, env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    shown = [" ".join(line.split()) for line in result.output.splitlines()]
    doc = inspect.cleandoc(COMMANDS[name].callback.__doc__ or "")
    for paragraph in doc.split("\n\n"):
        flat = " ".join(paragraph.split())
        assert any(flat in line for line in shown), f"`cicd {name} --help` breaks: {flat!r}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_docs_command_options_have_help(name: str) -> None:
    missing = [
        param.name
        for param in COMMANDS[name].params
        if not (getattr(param, "help", None) or "").strip()
    ]
    assert not missing, f"`cicd {name}`: options without help: {missing}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_docs_command_in_readme_reference(name: str) -> None:
    assert re.search(rf"`cicd {re.escape(name)}[` ]", command_reference()), (
        f"README.md's command reference does not mention `cicd {name}`"
    )


def test_docs_every_setting_is_documented() -> None:
    # each CICD_* variable Settings reads must be in the README's configuration or docs/
    from backend.settings import Settings

    docs = README.read_text(encoding="utf-8") + "".join(
        path.read_text(encoding="utf-8") for path in (README.parent / "docs").glob("*.md")
    )
    missing = [
        f"CICD_{name.upper()}"
        for name in Settings.model_fields
        if name != "debug" and f"CICD_{name.upper()}" not in docs
    ]
    assert not missing, f"settings not documented in README.md or docs/: {missing}"
