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
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError

MARKER = ".edgetl-run"
"""The file that says a folder was made by edgetl (a JSON object with at least "kind")."""
STAGING_INFIX = ".edgetl-staging-"
OLD_INFIX = ".edgetl-old-"


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
    """Remove staging and replaced folders beside `target` that a killed edgetl left behind."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for infix in (STAGING_INFIX, OLD_INFIX):
        for leftover in target.parent.glob(f".{target.name}{infix}*"):
            remove_marked(leftover)


def staging_folder(target: Path, kind: str, what: str) -> Path:
    """A fresh, marked folder beside `target` to build it in, to be `publish`ed or `remove_marked`.

    Raises:
        EdgetlError: if it cannot be created (missing permission, a full disk).
    """
    from edgetl.spec import make_folder

    target = Path(target)
    clean_leftovers(target)
    stage = target.with_name(f".{target.name}{STAGING_INFIX}{os.getpid()}")
    remove_marked(stage)
    make_folder(stage, what, received=target)
    write_marker(stage, kind)
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
    old = target.with_name(f".{target.name}{OLD_INFIX}{os.getpid()}")
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


@contextmanager
def temporary_folder(prefix: str) -> Iterator[Path]:
    """A marked folder in the system temp dir, removed afterwards.

    Leftovers of a killed edgetl (marked, with the `prefix`, whose process is gone) are removed
    first, so a SIGKILL leaves no temporary folders behind for good.
    """
    root = Path(tempfile.gettempdir())
    for leftover in root.glob(f"{prefix}*"):
        marker = read_marker(leftover) if leftover.is_dir() and not leftover.is_symlink() else None
        if marker is not None and marker.get("kind") == "temporary" and not _alive(marker.get("pid")):
            shutil.rmtree(leftover, ignore_errors=True)
    try:
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        write_marker(folder, "temporary", pid=os.getpid())
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


def check_manifest(export_dir: Path, source_model: Path, artefacts: list[Path]) -> None:
    """Refuse artefacts that the export folder's manifest does not vouch for.

    An export folder without a manifest (made by an older edgetl, or by hand) is checked on the
    artefacts' own metadata only, with a warning.

    Raises:
        EdgetlError: if the export came from another model file, or an artefact (or its sidecar)
            is missing from the manifest or differs from it.
    """
    import warnings

    recorded = _recorded_manifest(export_dir)
    if recorded is None:
        warnings.warn(f"{export_dir} has no export manifest (an export by an older edgetl, or made by hand): "
                      "cannot prove its artefacts come from this model.keras; re-export to record one.", stacklevel=3)
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
