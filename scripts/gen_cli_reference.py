"""Write the README's CLI reference from the Typer app itself (`--check` only compares).

The reference sits between two marker lines in README.md; tests/test_cli_reference.py fails
when it is out of date, so the README can never drift from the real options.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import typer

from edgetl.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def _option_row(param: click.Parameter) -> str:
    names = " / ".join(param.opts + param.secondary_opts) if isinstance(param, click.Option) else param.human_readable_name
    default = "" if param.required or param.default in (None, False, ()) or isinstance(param, click.Argument) else f"`{param.default}`"
    help_text = (getattr(param, "help", None) or "").replace("|", "\\|")
    return f"| `{names}` | {default} | {help_text} |"


def render() -> str:
    group = typer.main.get_command(app)
    context = click.Context(group, info_name="edgetl")
    sections = []
    for name in sorted(group.list_commands(context)):
        command = group.get_command(context, name)
        usage = " ".join(p.human_readable_name for p in command.params if isinstance(p, click.Argument))
        rows = [_option_row(p) for p in command.params if p.name != "help"]
        sections.append(
            f"### `edgetl {name} {usage}`\n\n{(command.help or '').strip()}\n\n| option | default | meaning |\n|---|---|---|\n"
            + "\n".join(rows)
        )
    return "\n\n".join(sections)


def main() -> int:
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{START}\n{render()}\n{END}{tail}"
    if "--check" in sys.argv:
        return 0 if updated == text else 1
    README.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
