"""How the CLI writes: rich output in a terminal, plain full-width lines in a log or a pipe.

Written to a file, Keras' progress bars become hundreds of lines of escape codes and rich
tables are cut to 80 columns. Here the consoles get an unlimited width when their stream is
not a terminal (tables are sized to their content, never truncated), Keras prints one line per
epoch, and the library's own progress messages (`logging` records of the `edgetl` loggers)
become `==> message` lines.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from rich.console import Console
from rich.markup import escape

LOG_WIDTH = 10_000
"""Width of a console that writes to a file or pipe: wide enough that no table is cut."""


def is_terminal(stream: TextIO) -> bool:
    """True when `stream` is an interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def make_console(*, stderr: bool = False) -> Console:
    """A rich console for stdout (or stderr): terminal width in a terminal, unlimited otherwise."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if is_terminal(stream) else LOG_WIDTH
    return Console(stderr=stderr, width=width, soft_wrap=stderr)


def keras_verbosity(quiet: bool) -> int | str:
    """Keras' `verbose`: 0 when quiet, progress bars in a terminal, else one line per epoch."""
    if quiet:
        return 0
    return "auto" if is_terminal(sys.stdout) else 2


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        self._console.print(f"[bold cyan]==>[/] {escape(record.getMessage())}", highlight=False)


def show_progress(console: Console | None) -> None:
    """Print what edgetl's stages log at INFO (stage names, per-format export progress) on `console`.

    None (`--quiet`) prints none, also when an earlier command in this process showed them.
    """
    logger = logging.getLogger("edgetl")
    for handler in [h for h in logger.handlers if isinstance(h, _ConsoleHandler)]:
        logger.removeHandler(handler)
    if console is None:
        return
    logger.addHandler(_ConsoleHandler(console))
    logger.setLevel(logging.INFO)
    logger.propagate = False

