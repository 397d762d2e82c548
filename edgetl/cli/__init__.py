"""The `edgetl` command line: a thin Typer layer over the Python API, one module per command group.

`common.py` holds the app and what every command shares (exit codes: 0 success, 1 a negative
verdict, 2 bad input); `train.py`, `export.py`, `verify.py`, `run.py` (predict, inspect, bench,
selftest) and `demo.py` each add their commands to it, and `edgetl --help` lists them in pipeline
order (`edgetl.cli_group`). This is the only package that knows about the terminal.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

from edgetl.cli import demo, export, run, train, verify  # noqa: F401  (each adds its commands to `app`)
from edgetl.cli.common import app, err_console
from edgetl.cli.train import Strategy
from edgetl.native_logs import filter_native_logs, stop_native_log_filter
from edgetl.spec import escaped

__all__ = ["Strategy", "app", "main"]


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Warnings reach the terminal as one `warning: ...` line, not Python's file:line form."""
    err_console.print(f"warning: {escaped(str(message))}", markup=False, highlight=False)


def _wants_native_logs(argv: list[str]) -> bool:
    """`edgetl --verbose COMMAND ...`: the global flag, before the command's name."""
    for arg in argv:
        if arg == "--verbose":
            return True
        if not arg.startswith("-"):
            return False
    return False


def main() -> None:
    # TensorFlow's C++ lines (oneDNN, CPU features, converter chatter) say nothing a user can act on.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not _wants_native_logs(sys.argv[1:]):
        filter_native_logs()
    warnings.showwarning = _show_warning
    from edgetl.streams import guarded_stdout

    try:
        with guarded_stdout("edgetl"):
            app()
    except SystemExit as e:
        from edgetl.safety import hdf5_files_left_open

        if e.code == 2 and hdf5_files_left_open():
            # A weights file whose write hit a full disk is still open inside h5py; at the
            # interpreter's exit HDF5 retries the write and crashes (rc 139). Its error is out.
            sys.stdout.flush()
            stop_native_log_filter()
            os._exit(2)
        raise
    finally:
        stop_native_log_filter()
