"""Write the README's CLI reference from the Typer app itself (`--check` only compares).

The reference sits between two marker lines in README.md; tests/test_cli_reference.py fails
when it is out of date, so the README can never drift from the real options.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from edgetl.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def _is_argument(param: Any) -> bool:
    return param.param_type_name == "argument"


def _argument_name(param: Any) -> str:
    return param.name.upper() + ("..." if param.nargs == -1 else "")


def _option_row(param: Any) -> str:
    """One table row. Typer 0.29 vendors Click privately, so parameters are read by attribute."""
    names = _argument_name(param) if _is_argument(param) else " / ".join(param.opts + param.secondary_opts)
    default = param.default.value if hasattr(param.default, "value") else param.default  # str Enums
    default = "" if param.required or default in (None, False, (), []) or _is_argument(param) else f"`{default}`"
    help_text = (getattr(param, "help", None) or "").replace("|", "\\|")
    return f"| `{names}` | {default} | {help_text} |"


def render() -> str:
    group = typer.main.get_command(app)
    sections = []
    for name, command in sorted(group.commands.items()):
        usage = " ".join(_argument_name(p) for p in command.params if _is_argument(p))
        rows = [_option_row(p) for p in command.params if p.name != "help"]
        sections.append(
            f"### `{' '.join(filter(None, ('edgetl', name, usage)))}`\n\n{(command.help or '').strip()}\n\n| option | default | meaning |\n|---|---|---|\n"
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
