"""Write the docs site's CLI reference, docs/cli.md, from the Typer app itself (`--check` only compares).

tests/test_cli_reference.py fails when the page is out of date, so the reference can never drift
from the real options. Commands come in the order `edgetl --help` lists them (pipeline order).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from edgetl.cli import app

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
HEADER = """# CLI reference

Generated from the command line itself by `python scripts/gen_cli_reference.py`; a test fails
when this page and the CLI differ. `edgetl COMMAND --help` prints the same in a terminal.
Exit codes: 0 success, 1 a negative verdict (parity or self-test failed), 2 bad input.

```bash
edgetl --help         # the commands, in pipeline order
edgetl train --help   # one command's options, grouped
```
"""


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


def _global_options(group: Any) -> str:
    """`edgetl [OPTIONS] COMMAND`: the options that go before the command's name."""
    rows = [_option_row(p) for p in group.params if p.name != "help"]
    return "## `edgetl [OPTIONS] COMMAND`\n\n| option | default | meaning |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def render() -> str:
    group = typer.main.get_command(app)
    with typer.Context(group) as ctx:
        names = group.list_commands(ctx)
    sections = [HEADER, _global_options(group)]
    for name in names:
        command = group.commands[name]
        usage = " ".join(_argument_name(p) for p in command.params if _is_argument(p))
        rows = [_option_row(p) for p in command.params if p.name != "help"]
        sections.append(
            f"## `{' '.join(filter(None, ('edgetl', name, usage)))}`\n\n{(command.help or '').strip()}\n\n"
            "| option | default | meaning |\n|---|---|---|\n" + "\n".join(rows) + "\n"
        )
    return "\n".join(sections)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        return 0 if PAGE.is_file() and PAGE.read_text(encoding="utf-8") == text else 1
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
