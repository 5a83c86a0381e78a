"""The README documents every knob and every command, as the code defines them."""

from __future__ import annotations

from pathlib import Path

import typer

from recsys.cli import app
from recsys.readme import render

README = Path(__file__).resolve().parents[2] / "README.md"


def test_knob_table_is_current() -> None:
    text = README.read_text()
    assert render(text) == text, "run `recsys config --update-readme`"


def test_exactly_two_setup_commands_open_the_readme() -> None:
    text = README.read_text()
    block = text.split("## Set-up: two commands", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]


def test_every_command_has_a_one_line_purpose() -> None:
    group = typer.main.get_command(app)

    def walk(cmd: object, path: str) -> None:
        assert getattr(cmd, "help", None) or getattr(cmd, "short_help", None), f"{path} has no help"
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(group, "recsys")
    top = set(getattr(group, "commands", {}))
    text = README.read_text()
    for name in top:
        assert f"recsys {name}" in text, f"README does not mention `recsys {name}`"


def test_knob_table_does_not_depend_on_where_the_checkout_lives() -> None:
    from recsys.knobs import REPO_DIR, markdown_table

    assert str(REPO_DIR) not in markdown_table(), "defaults inside the checkout must be shown relative to it"
