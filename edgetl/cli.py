"""The `edgetl` command line: a thin Typer layer over the Python API.

This is the only module that knows about the terminal and chooses exit codes:
0 success, 1 a negative verdict (parity or self-test failed), 2 bad input (`EdgetlError`).
Heavy modules are imported inside each command so that `edgetl --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from edgetl import __version__
from edgetl.errors import EdgetlError

app = typer.Typer(
    name="edgetl",
    help="Train an image classifier from a folder of photos, export it for the edge, verify it, run it.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")


def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the API; an `EdgetlError` becomes one line on stderr and exit code 2."""
    try:
        return fn(*args, **kwargs)
    except EdgetlError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        err_console.print("error: interrupted", markup=False, highlight=False)
        raise typer.Exit(code=130) from None


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"edgetl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."),
) -> None:
    """edgetl: photos -> transfer-learned classifier -> TFLite/ONNX -> verified -> on the device."""


def main() -> None:
    app()
