"""What every `edgetl` command shares: the Typer app, its consoles, and how errors become exit codes.

Exit codes: 0 success, 1 a negative verdict (parity or self-test failed), 2 bad input (`EdgetlError`).
Heavy modules are imported inside each command so that `edgetl --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

import typer

from edgetl._version import __version__
from edgetl.cli_group import PipelineGroup
from edgetl.errors import EdgetlError
from edgetl.render import make_console
from edgetl.spec import escaped

app = typer.Typer(
    name="edgetl",
    help="Train an image classifier from a folder of photos, export it for the edge, verify it, run it.",
    no_args_is_help=True,
    add_completion=False,
    cls=PipelineGroup,
)
console = make_console()
err_console = make_console(stderr=True)

T = TypeVar("T")


def call_api(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the API; an `EdgetlError` becomes one line on stderr and exit code 2."""
    try:
        return fn(*args, **kwargs)
    except EdgetlError as e:
        err_console.print(f"error: {escaped(str(e))}", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        import signal

        # Exiting: more Ctrl-C presses would only break the exit's own joins (the export's worker) with tracebacks.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        err_console.print("error: interrupted", markup=False, highlight=False)
        raise typer.Exit(code=130) from None


TOOLCHAIN = {
    "train": ("keras",), "verify": ("keras",), "export": ("tensorflow", "keras"), "demo": ("tensorflow", "keras"),
}
"""What each command beyond the device runtime imports; `pip install edgetl[runtime]` has none of it."""


def require_toolchain(command: str) -> None:
    """Say in one line what to install when a device install runs a training-side command (exit 2)."""
    import importlib.util

    missing = [name for name in TOOLCHAIN[command] if importlib.util.find_spec(name) is None]
    if missing:
        err_console.print(
            f"error: `edgetl {command}` needs the full toolchain ({', '.join(missing)} missing here): "
            "pip install 'edgetl[full]'. This install runs predict, inspect, bench and selftest.",
            markup=False, highlight=False,
        )
        raise typer.Exit(code=2)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"edgetl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit.",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", help="Also show TensorFlow's own log lines (hidden by default). Put it before the command.",
    ),
) -> None:
    """edgetl: photos -> transfer-learned classifier -> TFLite/ONNX -> verified -> on the device."""


def choice_enum(name: str, values: tuple[str, ...]) -> Any:
    """A `str` Enum of the API's own values, which Typer lists in the help and checks."""
    return Enum(name, {value.replace("-", "_"): value for value in values}, type=str)


def split_formats(values: list[str]) -> tuple[str, ...]:
    """`--formats a,b --formats c` -> ("a", "b", "c")."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


DEVICE_OPTION = typer.Option(
    "--device",
    help="ssh://[USER@]HOST[:PORT]: run on that device through its installed edgetl runtime (system ssh, "
    "keys only, host keys checked).",
    rich_help_panel="Device",
)
SSH_CONFIG_OPTION = typer.Option(help="ssh config file for --device (ssh -F).", rich_help_panel="Device")
DEVICE_PYTHON_OPTION = typer.Option(help="The device's python with edgetl[runtime].", rich_help_panel="Device")

WAIT_HELP = "When another edgetl process writes this run, wait for it to finish (default: exit 2 naming it)."
