"""Keeps the README's generated sections (the knob table) in step with the code."""

from __future__ import annotations

from pathlib import Path

from recsys.knobs import markdown_table

START, END = "<!-- knobs:start -->", "<!-- knobs:end -->"


def render(readme: str) -> str:
    """README text with the knob table between the markers replaced by the current one."""
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{markdown_table()}\n{END}{tail}"


def update(path: Path) -> bool:
    """Rewrite the README's knob table; True when it changed."""
    old = path.read_text()
    new = render(old)
    if new != old:
        path.write_text(new)
    return new != old
