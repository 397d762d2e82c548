"""One writer per folder: the lock every stage that writes a RUN_DIR (or an export folder) holds.

Two exports of one RUN_DIR once deleted each other's staging folders, two trains to one --out
both died, and `train --overwrite` swapped a run away under a running export. So `train` (its
--out), `export` (the RUN_DIR and any --out) and `verify` (the RUN_DIR it writes reports into)
each hold `.NAME.edgetl-lock` beside the folder for as long as they work on it. The file says who
holds it (PID, host, start time, command); the lock itself is an exclusive `flock` on it, which
the kernel drops when the holder dies, even by SIGKILL: a dead process's lock is simply taken
over. A lock file naming another host whose `flock` is free is refused, not taken over: whether
that process still runs cannot be checked from here (delete the file once it is gone).

While the lock is held, the first Ctrl-C stops the work and later ones are ignored until the
clean-up (removing the staging folder, stopping the worker) is done: a second Ctrl-C once killed
an export halfway through it.

Thread-safe: each `folder_lock` call opens its own lock, so two threads of one process that lock
one folder exclude each other as two processes do (only the main thread's Ctrl-C is changed).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError
from edgetl.safety import HOST
from edgetl.spec import hidden_sibling, make_folder

LOCK_TAG = ".edgetl-lock"
POLL_SECONDS = 0.5
"""How often `--wait` looks again whether the holder is done."""

logger = logging.getLogger("edgetl.lock")


class FolderBusy(EdgetlError):
    """Another process is writing the folder (the CLI exits 2 with its one line)."""


def lock_path(target: Path) -> Path:
    """The lock file of `target`: beside it, so it outlives the folder being swapped or replaced.

    Thread-safe (computes a path).
    """
    target = Path(target).expanduser().resolve()
    return hidden_sibling(target, LOCK_TAG)


@contextmanager
def folder_lock(target: Path, command: str, *, wait: bool = False) -> Iterator[None]:
    """Hold `target`'s lock for the block; see the module docstring. Thread-safe (a lock per call).

    Args:
        target: The folder the block writes (it need not exist yet; its parent is created).
        command: What holds it, for the message another process shows ("edgetl export").
        wait: Wait for the holder to finish instead of raising `FolderBusy`.

    Raises:
        FolderBusy: "TARGET is being written by PID N on HOST since T", when another live
            process holds it (and not `wait`).
        EdgetlError: if the lock file cannot be created (an unwritable parent folder).
    """
    path = lock_path(target)
    make_folder(path.parent, "the output folder's parent", received=target)
    fd = _acquire(path, Path(target), command, wait)
    try:
        with _interrupt_once():
            yield
    finally:
        if _same_file(fd, path):
            path.unlink(missing_ok=True)
        os.close(fd)


@contextmanager
def folder_locks(targets: list[Path], command: str, *, wait: bool = False) -> Iterator[None]:
    """`folder_lock` on each distinct folder of `targets`, in order. Thread-safe, as `folder_lock`."""
    with ExitStack() as stack:
        seen: set[Path] = set()
        for target in targets:
            if lock_path(target) not in seen:
                seen.add(lock_path(target))
                stack.enter_context(folder_lock(target, command, wait=wait))
        yield


def _acquire(path: Path, target: Path, command: str, wait: bool) -> int:
    """Open and `flock` the lock file, then record this process in it; returns the open descriptor."""
    announced = False
    while True:
        fd = _open(path, target)
        holder = _holder_if_busy(fd, path)
        if holder is None:
            try:
                _record(fd, command)
            except OSError as e:  # a full disk
                os.close(fd)
                raise EdgetlError(f"Cannot write the lock file {path}: {e.strerror or e}. Received: {target}") from e
            return fd
        os.close(fd)
        if holder is _RETRY:
            continue
        message = busy_message(target, holder, path)
        if not wait:
            raise FolderBusy(message)
        if not announced:
            logger.info("waiting: %s", message.split(". Received:")[0])
            announced = True
        time.sleep(POLL_SECONDS)


def _open(path: Path, target: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise EdgetlError(f"Cannot write the lock file {path}: {e.strerror or e}. Received: {target}") from e


_RETRY: dict[str, Any] = {}
"""What `_holder_if_busy` returns for a lock file that was removed meanwhile: open it again."""


def _holder_if_busy(fd: int, path: Path) -> dict[str, Any] | None:
    """None when this process now holds the lock; else who holds it (`_RETRY`: look again)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise EdgetlError(f"Cannot lock {path}: {e.strerror or e}.") from e
        return _read(fd)
    if not _same_file(fd, path):  # its holder finished and removed it between our open and flock
        return _RETRY
    recorded = _read(fd)
    if recorded.get("host", HOST) != HOST:
        return recorded
    return None


def _read(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record(fd: int, command: str) -> None:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    data = json.dumps({"pid": os.getpid(), "host": HOST, "started": started, "command": command}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data + b"\n", 0)


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, there = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def busy_message(target: Path, holder: dict[str, Any], path: Path) -> str:
    """The one line a second process shows: who writes `target`, since when, and what to do. Thread-safe."""
    who = f"PID {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('started', '?')}"
    what = f" ({holder['command']})" if holder.get("command") else ""
    if holder.get("host", HOST) != HOST:
        advice = f"a process of another machine, which cannot be checked from here: once it is gone, delete {path}"
    else:
        advice = "let it finish, or pass --wait to start when it is done"
    return f"{target} is being written by {who}{what}; {advice}. Received: {target}"


@contextmanager
def _interrupt_once() -> Iterator[None]:
    """The first SIGINT raises KeyboardInterrupt as usual; later ones are ignored until the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:  # ignored, or someone else's handler: leave it be
        yield
        return

    def first(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
