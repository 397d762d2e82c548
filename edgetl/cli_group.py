"""How `edgetl --help` lists and shows commands: pipeline order, flags without a type placeholder.

Typer lists commands in the order their functions were defined and, since 0.29, shows every
option's type in help, a boolean flag as `<bool>`, which reads as if `--json` took a value.
This group fixes both from one place, so the command modules can be defined in any order.
"""

from __future__ import annotations

from typing import Any

import typer.core

PIPELINE_ORDER = ("train", "export", "verify", "predict", "inspect", "bench", "selftest", "demo")
"""The order a user meets the commands in; a command not named here comes after them."""


def _hide_flag_types(command: Any, ctx: Any) -> None:
    """Give each boolean flag an empty placeholder (Typer shows the metavar in place of `<bool>`)."""
    for param in command.get_params(ctx):
        if getattr(param, "is_bool_flag", False) and param.metavar is None:
            param.metavar = ""


class PipelineGroup(typer.core.TyperGroup):
    """The `edgetl` command group: commands in pipeline order, flags shown without `<bool>`.

    Thread-safe: its one change to a command, blanking a flag's placeholder, is idempotent.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: index for index, name in enumerate(PIPELINE_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(PIPELINE_ORDER)))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _hide_flag_types(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _hide_flag_types(self, ctx)
        super().format_help(ctx, formatter)
