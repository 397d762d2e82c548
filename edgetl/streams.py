"""Standard output the way POSIX tools treat it, for every printing command (stdlib only).

- A reader that goes away (`edgetl predict ... | head -1`) ends the command quietly, as it ends
  `seq` or `grep`: killed by SIGPIPE (status 141 in a shell), no traceback. Python ignores
  SIGPIPE, so a write raises BrokenPipeError instead, first in a Rich or click call deep inside
  the command, or at exit while flushing, which printed "Exception ignored" and exited 120.
- A write that fails otherwise (`> /dev/full`: ENOSPC) is one `error:` line and exit 2, since
  the report the user asked for is lost: before, a 60-line traceback.
- A label that the output's encoding cannot carry (`PYTHONIOENCODING=ascii`) is written
  escaped (`\\xe9`) instead of raising UnicodeEncodeError halfway through a table; JSON is then
  written with JSON's own escapes (`stdout_carries_unicode`), so it stays valid.

The work a command does is finished (and cleaned up) before its report is written, so dying of
SIGPIPE at that point loses nothing but the report no one reads.
"""

from __future__ import annotations

import codecs
import errno
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

_done: list[str] = []
"""What the running command has already finished, for the error line of a failed write."""


def note_done(what: str) -> None:
    """Say what is already finished (e.g. "the export is in place in DIR"), so that a report that
    then cannot be written says so plainly instead of leaving the user to guess. Not thread-safe:
    the command's main thread calls it before printing its report."""
    _done.append(what)


class _StdoutClosed(Exception):
    """The reader of stdout went away (EPIPE). Not an OSError: nothing on the way may swallow it."""


class _StdoutFailed(Exception):
    """A write to stdout failed for another reason (ENOSPC, EIO...)."""


class _GuardedStdout:
    """sys.stdout with its write errors turned into `_StdoutClosed` / `_StdoutFailed`.

    Not thread-safe beyond what the wrapped stream is.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as e:
            raise _translated(e) from e

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as e:
            raise _translated(e) from e

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _translated(error: OSError) -> Exception:
    return _StdoutClosed() if error.errno == errno.EPIPE else _StdoutFailed(error.strerror or str(error))


@contextmanager
def guarded_stdout(program: str) -> Iterator[None]:
    """Run a command's body with stdout guarded as the module docstring says.

    Args:
        program: The command's name for the one `error:` line ("edgetl", "python -m edgetl.runtime").
    """
    real = sys.stdout
    if real is None:  # no stdout at all (pythonw): nothing to guard
        yield
        return
    _escape_what_the_encoding_cannot_carry(real)
    sys.stdout = _GuardedStdout(real)  # type: ignore[assignment]
    try:
        try:
            yield
        finally:
            sys.stdout.flush()  # what is still buffered fails here, not in "Exception ignored" at exit
    except (_StdoutClosed, BrokenPipeError):  # the latter from a write that went round the guard (.buffer)
        _silence(real)
        _die_of_sigpipe()
    except _StdoutFailed as e:
        _silence(real)
        done = f"; {', '.join(_done)}" if _done else ""
        print(f"error: {program} cannot write its output to stdout: {e}{done}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        sys.stdout = real


def stdout_carries_unicode() -> bool:
    """Whether stdout's encoding is a Unicode one (else JSON should be printed with ensure_ascii)."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        return codecs.lookup(encoding).name.startswith("utf")
    except LookupError:
        return False


def _escape_what_the_encoding_cannot_carry(stream: TextIO) -> None:
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None and getattr(stream, "errors", "strict") == "strict":
        reconfigure(errors="backslashreplace")


def _silence(stream: TextIO) -> None:
    """Point stdout at /dev/null, so that what is still buffered can be flushed at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (an in-memory stream)
        pass


def _die_of_sigpipe() -> None:
    """End as a POSIX tool does when its reader goes away: by SIGPIPE (exit 1 where there is none)."""
    sys.stderr.flush()
    sigpipe = getattr(signal, "SIGPIPE", None)
    if sigpipe is not None:
        signal.signal(sigpipe, signal.SIG_DFL)
        os.kill(os.getpid(), sigpipe)
    raise SystemExit(1)
