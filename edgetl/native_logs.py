"""Keep TensorFlow's native log lines out of edgetl's stderr, in this process and its children.

TensorFlow 2.21 logs through absl before absl is initialised, so `TF_CPP_MIN_LOG_LEVEL` (and
`GLOG_minloglevel`, `ABSL_MIN_LOG_LEVEL`) no longer hide its notices: measured here with
`TF_ENABLE_ONEDNN_OPTS=1`, `import tensorflow` prints "WARNING: All log messages before
absl::InitializeLog() ..." twice and "oneDNN custom operations are on" twice at every level. An
Intel Xeon with AMX turns oneDNN on by itself, so there the notices reach the user and a test that
expects exactly one line of stderr fails. The converters add `fully_quantize: 0, ...` and the
SavedModel loader's "Reading SavedModel" lines.

So the CLI points file descriptor 2 at a filter before anything loads TensorFlow. The filter is a
forked process, not a thread: it outlives a crash of edgetl, so a native error printed just
before an abort still reaches the terminal. It drops only TensorFlow's informational and warning
lines (glog form ``I1204 ...`` / ``W1204 ...``, and the absl preamble); errors (``E``/``F``
lines), Python tracebacks and everything edgetl prints pass through unchanged. Children (the
export worker) inherit the filtered descriptor. `edgetl --verbose` leaves stderr alone.
In a terminal the filter sits behind a pseudo-terminal, so rich still sees a terminal of the same
size. Not thread-safe: call `filter_native_logs` once, from the main thread, before threads start.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from contextlib import suppress

NATIVE_NOISE = re.compile(
    rb"^(?:WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.\-/]+:\d+\] "
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."
    rb"|fully_quantize: \d+, inference_type: \d+"
    rb")"
)
"""The lines dropped: absl's preamble, glog INFO/WARNING lines, and two unprefixed converter lines."""


_saved_stderr: int | None = None
_filter_pid: int | None = None


def is_native_noise(line: bytes) -> bool:
    return NATIVE_NOISE.match(line) is not None


def filter_native_logs() -> int | None:
    """Route fd 2 through a filter process that drops TensorFlow's native notices.

    Returns the filter's PID (None where fork is unavailable). `stop_native_log_filter` at exit
    restores the original stderr and waits for the filter to drain, so no line comes late.
    """
    global _saved_stderr, _filter_pid
    if not hasattr(os, "fork") or _filter_pid is not None:
        return None
    read_end, write_end = _terminal_pair() if _isatty(2) else os.pipe()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the filter
        os.close(write_end)
        _forward(read_end)
    os.close(read_end)
    _saved_stderr, _filter_pid = os.dup(2), pid
    os.dup2(write_end, 2)
    os.close(write_end)
    return pid


def stop_native_log_filter(timeout_s: float = 5.0) -> None:
    """Give fd 2 back to the original stderr and let the filter print what it holds."""
    global _saved_stderr, _filter_pid
    if _saved_stderr is None or _filter_pid is None:
        return
    with suppress(Exception):
        sys.stderr.flush()
    os.dup2(_saved_stderr, 2)
    os.close(_saved_stderr)
    pid, _saved_stderr, _filter_pid = _filter_pid, None, None
    _wait_for(pid, timeout_s)


def _wait_for(pid: int, timeout_s: float) -> None:
    """Wait for the filter; a child that still holds the pipe (a stray worker) bounds the wait."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.01)


def _forward(read_end: int) -> None:
    """The filter process: copy lines to the original stderr until every writer has closed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for edgetl; the filter drains to the end
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pending = b""
    try:
        while chunk := _read(read_end):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            _write(b"".join(line + b"\n" for line in lines if not is_native_noise(line)))
            if pending and not _could_be_noise(pending):  # a prompt or progress bar without a newline
                _write(pending)
                pending = b""
        if pending and not is_native_noise(pending):
            _write(pending)
    finally:
        os._exit(0)


def _could_be_noise(partial: bytes) -> bool:
    """Whether an unfinished line may still turn into a dropped one (so it waits for its newline)."""
    return partial[:1] in (b"I", b"W", b"T", b"f") and b"\r" not in partial


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: a pseudo-terminal whose writers have all closed
        return b""


def _write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(2, view):]
        except OSError:  # the reader went away (a closed pipe): drop the rest quietly
            return


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _terminal_pair() -> tuple[int, int]:
    """A raw pseudo-terminal the size of the real one: (read end, write end)."""
    import fcntl
    import pty
    import termios
    import tty

    master, slave = pty.openpty()
    tty.setraw(slave)  # no "\n" -> "\r\n" translation: bytes pass as edgetl wrote them
    with suppress(OSError):
        size = fcntl.ioctl(2, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
    return master, slave
