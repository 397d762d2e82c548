"""What keeps edgetl from destroying a user's files: run markers, staged publishing, path checks.

Every folder edgetl creates to write into (a RUN_DIR, an export folder, a demo folder, and
their hidden staging twins) carries a small marker file, `.edgetl-run`, saying what made it.
edgetl replaces or deletes a folder only when it carries that marker, and never one that holds
or lies inside the data it reads. A folder is published all or nothing: it is built beside its
target (same filesystem) and swapped in with two renames.

Plain stdlib: the device runtime may import it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import numbers
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError
from edgetl.spec import hidden_sibling

MARKER = ".edgetl-run"
"""The file that says a folder was made by edgetl (a JSON object with at least "kind")."""
STAGING_INFIX = ".edgetl-staging-"
OLD_INFIX = ".edgetl-old-"
HOST = socket.gethostname()
"""This machine's name, recorded with the process id in markers and locks."""


def write_marker(folder: Path, kind: str, **fields: Any) -> None:
    """Mark `folder` as made by edgetl for `kind` ("run", "export", "demo", "pretrained")."""
    from edgetl.spec import write_text_atomic

    write_text_atomic(Path(folder) / MARKER, json.dumps({"kind": kind, **fields}, indent=2, allow_nan=False) + "\n")


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker's content, or None when `folder` has no (readable) marker."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_apart(out: Path, protected: Path | None, what: str) -> None:
    """Refuse an output folder that is, holds or lies inside `protected` (symlinks resolved).

    Raises:
        EdgetlError: naming both folders.
    """
    if protected is None:
        return
    target, guarded = Path(out).expanduser().resolve(), Path(protected).expanduser().resolve()
    if _is_within(target, guarded) or _is_within(guarded, target):
        raise EdgetlError(
            f"The output folder must neither be, contain nor lie inside the {what} ({guarded}), which edgetl "
            f"never writes into. Received: {out}"
        )


def check_no_dangling_link(path: Path, option: str) -> None:
    """Refuse an output path that runs through a symbolic link to nothing.

    Resolving such a path would create the link's target, wherever it points. Thread-safe (reads only).

    Raises:
        EdgetlError: naming the link and where it points.
    """
    path = Path(path).expanduser()
    for part in (path, *path.parents):
        if part.is_symlink() and not part.exists():
            raise EdgetlError(f"{option} runs through {part}, a symbolic link to {os.readlink(part)}, which does "
                              f"not exist; edgetl does not create a link's target. Received: {option}={path}")


def check_replaceable(target: Path, kind: str, *, flag: str = "--overwrite") -> None:
    """Refuse to replace `target` unless it is a folder edgetl made for `kind`.

    Raises:
        EdgetlError: if `target` exists and is not a folder carrying an edgetl marker of `kind`.
    """
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        return
    marker = read_marker(target) if target.is_dir() and not target.is_symlink() else None
    if marker is None:
        raise EdgetlError(
            f"{target} exists and was not made by edgetl (it has no {MARKER} marker), so {flag} will not replace it: "
            "edgetl never deletes what it did not make. Remove it yourself or choose another folder. "
            f"Received: {target}"
        )
    if marker.get("kind") != kind:
        raise EdgetlError(
            f"{target} is an edgetl {marker.get('kind')!r} folder, not {kind!r}; {flag} will not replace it with "
            f"another kind. Choose another folder. Received: {target}"
        )


def remove_marked(folder: Path) -> None:
    """Delete `folder` if edgetl made it (it carries a marker); leave anything else alone."""
    if folder.is_dir() and not folder.is_symlink() and read_marker(folder) is not None:
        shutil.rmtree(folder, ignore_errors=True)


def clean_leftovers(target: Path) -> None:
    """Remove staging and replaced folders beside `target` that a killed edgetl left behind.

    A folder whose marker names a live process (of this host; or any process of another host,
    which cannot be checked from here) is left alone: it is another export's work in progress.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return
    prefixes = tuple(hidden_sibling(target, infix).name for infix in (STAGING_INFIX, OLD_INFIX))
    for leftover in target.parent.iterdir():
        if leftover.name.startswith(prefixes) and not owned_by_live_process(read_marker(leftover) or {}):
            remove_marked(leftover)


def staging_folder(target: Path, kind: str, what: str) -> Path:
    """A fresh, marked folder beside `target` to build it in, to be `publish`ed or `remove_marked`.

    Raises:
        EdgetlError: if it cannot be created (missing permission, a full disk).
    """
    from edgetl.spec import make_folder

    target = Path(target)
    clean_leftovers(target)
    stage = hidden_sibling(target, f"{STAGING_INFIX}{os.getpid()}")
    remove_marked(stage)
    make_folder(stage, what, received=target)
    write_marker(stage, kind, pid=os.getpid(), host=HOST)
    return stage


@contextmanager
def staged(target: Path, kind: str, what: str) -> Iterator[Path]:
    """Build `target` in a `staging_folder`, `publish`ed when the block ends, removed if it raises.

    Raises:
        EdgetlError: if the staging folder cannot be created or published.
    """
    stage = staging_folder(target, kind, what)
    try:
        yield stage
        publish(stage, target)
    except BaseException:
        remove_marked(stage)
        raise


def publish(stage: Path, target: Path) -> None:
    """Swap the finished `stage` in under the name `target`; the old `target` goes last.

    Raises:
        EdgetlError: if a rename fails (the old `target` is then put back).
    """
    target = Path(target)
    old = hidden_sibling(target, f"{OLD_INFIX}{os.getpid()}")
    try:
        if target.exists():
            target.rename(old)
        try:
            stage.rename(target)
        except OSError:
            if old.exists():
                old.rename(target)
            raise
    except OSError as e:
        raise EdgetlError(f"Cannot publish {target}: {e.strerror or e}. Received: {target}") from e
    shutil.rmtree(old, ignore_errors=True)


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                 integer: bool = False, allow_none: bool = False) -> None:
    """Refuse a numeric option that is not a finite number in [low, high] (an int when `integer`).

    Raises:
        EdgetlError: naming the option, its range and the value received.
    """
    if value is None and allow_none:
        return
    kind = numbers.Integral if integer else numbers.Real
    valid = isinstance(value, kind) and not isinstance(value, bool)
    if valid and not integer:
        valid = math.isfinite(value)
    if valid:
        valid = (low is None or value >= low) and (high is None or value <= high)
    if not valid:
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        kind = "an integer" if integer else "a finite number"
        raise EdgetlError(f"{name} must be {kind} in {bounds}. Received: {name}={value!r}")


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError, OverflowError):
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def owned_by_live_process(record: dict[str, Any]) -> bool:
    """Whether a marker or lock `record` ({"pid", "host"}) names a process that may still run.

    A process of another host counts as live: its state cannot be checked from here. Thread-safe.
    """
    if record.get("host", HOST) != HOST:
        return True
    return _alive(record.get("pid"))


@contextmanager
def temporary_folder(prefix: str) -> Iterator[Path]:
    """A marked folder in the system temp dir, removed afterwards.

    Leftovers of a killed edgetl (marked, with the `prefix`, whose process is gone) are removed
    first, so a SIGKILL leaves no temporary folders behind for good.
    """
    root = Path(tempfile.gettempdir())
    for leftover in root.glob(f"{prefix}*"):
        marker = read_marker(leftover) if leftover.is_dir() and not leftover.is_symlink() else None
        if marker is not None and marker.get("kind") == "temporary" and not owned_by_live_process(marker):
            shutil.rmtree(leftover, ignore_errors=True)
    try:
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        write_marker(folder, "temporary", pid=os.getpid(), host=HOST)
    except (OSError, EdgetlError) as e:
        raise EdgetlError(f"Cannot create a temporary folder in {root}: {getattr(e, 'strerror', None) or e}") from e
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MANIFEST_SKIPS = (MARKER, "export.json")


def manifest(folder: Path, source_model: Path) -> dict[str, Any]:
    """SHA-256 of every file in an export `folder` and of the model it was exported from."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in MANIFEST_SKIPS)
    return {
        "source_model": {"name": Path(source_model).name, "sha256": file_sha256(source_model)},
        "files": {p.relative_to(folder).as_posix(): file_sha256(p) for p in files},
    }


def _recorded_manifest(export_dir: Path) -> dict[str, Any] | None:
    """The manifest in `export_dir/export.json`, or None when there is none.

    Raises:
        EdgetlError: if export.json exists but cannot be read.
    """
    path = Path(export_dir) / "export.json"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("manifest") if path.is_file() else None
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
        raise EdgetlError(f"export.json cannot be read ({e}). Received: {path}") from e
    return recorded if isinstance(recorded, dict) else None


def vouched_for(export_dir: Path, item: Path) -> bool:
    """Whether the export manifest lists `item` (a file in `export_dir`) with its current SHA-256."""
    recorded = _recorded_manifest(export_dir)
    files = (recorded or {}).get("files") or {}
    return Path(item).is_file() and files.get(Path(item).name) == file_sha256(item)


def check_manifest(export_dir: Path, source_model: Path, artefacts: list[Path], *,
                   allow_unproven: bool = False) -> None:
    """Refuse artefacts that the export folder's manifest does not vouch for.

    An export folder without a manifest (made by an older edgetl, or by hand) cannot prove where
    its artefacts come from: a model.keras from another run once passed verify at 36.8% accuracy.
    It is refused unless `allow_unproven`, which checks the artefacts' own metadata only, with a
    warning.

    Raises:
        EdgetlError: if there is no manifest (without `allow_unproven`), the export came from
            another model file, or an artefact (or its sidecar) is missing from the manifest or
            differs from it.
    """
    import warnings

    recorded = _recorded_manifest(export_dir)
    if recorded is None:
        why = (f"{Path(export_dir) / 'export.json'} is missing or has no manifest (an export by an older edgetl, or "
               "made by hand), so nothing proves its artefacts come from this model.keras")
        if not allow_unproven:
            raise EdgetlError(f"{why}; re-export, or pass --allow-unproven to check them anyway. "
                              f"Received: {export_dir}")
        warnings.warn(f"{why}; checked anyway (--allow-unproven).", stacklevel=4)
        return
    source = recorded.get("source_model") or {}
    if source.get("sha256") != file_sha256(source_model):
        raise EdgetlError(f"The artefacts in {export_dir} were exported from another {Path(source_model).name} "
                          f"(its SHA-256 differs from export.json's); re-export. Received: {source_model}")
    files = recorded.get("files") or {}
    for artefact in artefacts:
        for item in (artefact, artefact.with_suffix(".json")):
            if not item.exists() and item != artefact:
                continue
            if files.get(item.name) != file_sha256(item):
                raise EdgetlError(f"{item.name} is not the file this export wrote (its SHA-256 is not the one in "
                                  f"export.json): a mixed or altered export folder; re-export. Received: {item}")


WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM})
"""Errors of a full disk, a quota, a read-only or unwritable folder: the user's to fix, not a bug."""


class WriteError(EdgetlError):
    """A full disk or an unwritable folder, hit while writing (what was written so far is kept)."""


@contextmanager
def disk_errors(what: str, hint: str = "") -> Iterator[None]:
    """Turn a full disk or an unwritable folder met inside the block into one `WriteError`.

    Libraries that hit such an error (h5py) leave objects whose clean-up fails too: they would
    print "Exception ignored" tracebacks, and an HDF5 file left open crashes the interpreter at
    exit. They are released here, quietly.
    """
    import sys

    previous = sys.unraisablehook
    try:
        yield
    except OSError as e:
        if e.errno not in WRITE_ERRNOS:
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        message = f"Cannot write {what}: {os.strerror(e.errno)}{where}.{hint}"
        sys.unraisablehook = lambda _: None  # from here: the failed library objects are freed
    else:
        return
    try:
        _release_failed_writes()
    finally:
        sys.unraisablehook = previous
    raise WriteError(message)


def _release_failed_writes() -> None:
    import gc

    gc.collect()


def hdf5_files_left_open() -> bool:
    """True when h5py holds a file open, e.g. a weights file whose write hit a full disk."""
    import sys

    h5py = sys.modules.get("h5py")
    return bool(h5py and h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE))
