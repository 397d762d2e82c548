"""From `DATA_DIR/<class>/*.jpg` to uint8 pixel arrays, split train/val/test.

Photos are decoded by `edgetl.runtime.image` (the same code a device runs), in parallel threads
(Pillow releases the GIL while decoding and resizing), into a cache of decoded-and-resized uint8
arrays keyed by the file list, sizes, mtimes and image size, so a second run or a second epoch
never decodes a JPEG again. Only numpy and Pillow are used: no tf.data, so training runs on any
Keras backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgetl._version import __version__
from edgetl.errors import EdgetlError
from edgetl.runtime.image import is_image_file, load_pixels
from edgetl.safety import file_sha256
from edgetl.spec import PreprocessingSpec, atomic_path, check_labels, first_few

SPLIT_NAMES = ("train", "val", "test")
PREDEFINED_DIRS = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}


class UnreadableImagesWarning(UserWarning):
    """Some photos could not be decoded and were skipped."""


class DuplicatePhotosWarning(UserWarning):
    """The same photo (identical bytes) is in two classes or two splits. Thread-safe (a warning)."""


class IgnoredFoldersWarning(UserWarning):
    """DATA_DIR has split folders, and something beside them is not read. Thread-safe (a warning)."""


@dataclass(frozen=True)
class LabelledFiles:
    """Image files with their class index.

    Attributes:
        files: Paths of the photos.
        labels: Class index of each photo.
    """

    files: tuple[Path, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.files)

    def select(self, indices: Sequence[int] | np.ndarray) -> LabelledFiles:
        indices = np.asarray(indices, dtype=int)
        return LabelledFiles(tuple(self.files[i] for i in indices), self.labels[indices])


@dataclass(frozen=True)
class Splits:
    """The photos of a data set, split for training.

    Attributes:
        data_dir: The folder the user gave.
        class_names: Sorted class folder names; index i is class i.
        train: Photos to fit on.
        val: Photos for early stopping and checkpoint choice.
        test: Held-out photos, never seen in training.
        origin: How each split was made, by split name: a folder the user made ("test/") or
            the photos taken from another one ("taken from train/, 15% of each class").
    """

    data_dir: Path
    class_names: tuple[str, ...]
    train: LabelledFiles
    val: LabelledFiles
    test: LabelledFiles
    origin: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """Photos per split and where they came from: "train 210 (train/), val 45 (taken from train/, 15% ...)"."""
        return ", ".join(
            f"{name} {len(getattr(self, name))}" + (f" ({self.origin[name]})" if name in self.origin else "")
            for name in SPLIT_NAMES
        )

    def to_json(self) -> str:
        """`splits.json`: per split, file paths relative to `data_dir` and each file's class."""

        def rel(files: LabelledFiles) -> list[str]:
            return [str(f.relative_to(self.data_dir)) for f in files.files]

        document = (
            {"data_dir": str(self.data_dir), "class_names": list(self.class_names)}
            | {name: rel(getattr(self, name)) for name in SPLIT_NAMES}
            | {f"{name}_classes": [self.class_names[i] for i in getattr(self, name).labels] for name in SPLIT_NAMES}
        )
        text = json.dumps(document, indent=1, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a file name that is not UTF-8: its bytes travel as \udcXX escapes
            text = json.dumps(document, indent=1)
        return text


def scan_classes(root: Path, *, min_images: int = 2) -> tuple[tuple[str, ...], LabelledFiles]:
    """Find `root/<class>/**/image` files; non-image files are ignored.

    Raises:
        EdgetlError: for a missing or empty folder, fewer than 2 classes, or a class with fewer
            than `min_images` photos.
    """
    if not root.is_dir():
        raise EdgetlError(f"DATA_DIR must be a folder of class folders (DATA_DIR/<class>/*.jpg). Received: {root}")
    class_dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    for d in class_dirs:
        check_labels([d.name], str(d))
    per_class = {d.name: _image_files(d) for d in class_dirs}
    if not any(per_class.values()):
        raise EdgetlError(f"DATA_DIR holds no class folders with images (DATA_DIR/<class>/*.jpg). Received: {root}")
    if len(per_class) < 2:
        raise EdgetlError(f"DATA_DIR needs at least 2 class folders. Received: {root} with {list(per_class)}")
    small = {name: len(files) for name, files in per_class.items() if len(files) < min_images}
    if small:
        raise EdgetlError(
            f"Every class needs at least {min_images} images. Received: {root} with "
            + ", ".join(f"{name!r}: {n}" for name, n in small.items())
        )
    names = tuple(per_class)
    files = [f for name in names for f in per_class[name]]
    labels = np.array([i for i, name in enumerate(names) for _ in per_class[name]], dtype=np.int64)
    return names, LabelledFiles(tuple(files), labels)


def _image_files(class_dir: Path) -> list[Path]:
    """Image files below a class folder, sorted; symlinked folders are not followed (no loops)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            p for name in sorted(filenames) if not name.startswith(".") and is_image_file(p := Path(dirpath) / name)
        )
    return found


def load_splits(
    data_dir: str | Path,
    *,
    val_split: float = 0.15,
    test_split: float = 0.15,
    subset: float = 1.0,
    seed: int = 0,
) -> Splits:
    """Scan DATA_DIR and split it, stratified by class.

    A DATA_DIR that already has `train/` (and optionally `val/` and `test/`) class folders keeps
    those splits; the missing ones are drawn from `train/`.

    Warns:
        DuplicatePhotosWarning: naming photos with identical bytes in two classes or splits.
        IgnoredFoldersWarning: naming folders and photos beside the split folders (never read).

    Raises:
        EdgetlError: for bad folders or split fractions.
    """
    root = Path(data_dir).expanduser().resolve()
    if not root.exists():
        raise EdgetlError(f"DATA_DIR does not exist. Received: {data_dir}")
    for name, value in (("val_split", val_split), ("test_split", test_split)):
        if not 0 <= value < 1:
            raise EdgetlError(f"{name} must be in [0, 1). Received: {name}={value}")
    if val_split + test_split >= 0.9:
        raise EdgetlError(f"val_split + test_split must leave images to train on. Received: {val_split} + {test_split}")
    if not 0 < subset <= 1:
        raise EdgetlError(f"subset must be in (0, 1]. Received: subset={subset}")
    rng = np.random.default_rng(seed)
    predefined = _predefined_split_dirs(root)
    if predefined:
        names, pool = scan_classes(predefined["train"])
        parts = {"train": _subset(pool, subset, rng)}
        for split in ("val", "test"):
            if split in predefined:
                split_names, files = scan_classes(predefined[split], min_images=1)
                _check_same_classes(names, split_names, predefined[split])
                parts[split] = _subset(files, subset, rng)
        fractions = {
            "val": val_split if "val" not in parts else 0.0, "test": test_split if "test" not in parts else 0.0,
        }
        drawn = _stratified_split(parts["train"], fractions, rng)
        origin = {split: f"{folder.name}/" for split, folder in predefined.items()}
        origin |= {
            split: _drawn(predefined["train"], fraction) for split, fraction in fractions.items() if fraction > 0
        }
        parts = {**drawn, **{k: v for k, v in parts.items() if k != "train"}}
        _warn_ignored_beside_splits(root, predefined)
    else:
        names, pool = scan_classes(root)
        parts = _stratified_split(_subset(pool, subset, rng), {"val": val_split, "test": test_split}, rng)
        origin = {"train": f"{root.name}/", "val": _drawn(root, val_split), "test": _drawn(root, test_split)}
    splits = Splits(root, names, parts["train"], parts["val"], parts["test"], origin)
    _warn_duplicates(splits)
    return splits


def _warn_ignored_beside_splits(root: Path, predefined: dict[str, Path]) -> None:
    """Warn about folders and photos in DATA_DIR beside its split folders: nothing reads them."""
    used = set(predefined.values())
    ignored = sorted(
        f"{p.name}/" if p.is_dir() else p.name
        for p in root.iterdir()
        if not p.name.startswith(".") and p not in used and (p.is_dir() or is_image_file(p))
    )
    if ignored:
        warnings.warn(
            f"Ignored beside the split folders in {root}: {first_few(ignored)}. Only "
            f"{', '.join(f'{p.name}/' for p in predefined.values())} are read; move those photos into a split "
            "folder (or out of DATA_DIR).",
            IgnoredFoldersWarning,
            stacklevel=3,
        )


def _warn_duplicates(splits: Splits) -> None:
    """Warn about photos with identical bytes in two classes or two splits, naming them.

    Such a photo can be trained under one label and tested under another, or inflate test
    accuracy by being seen in training. Only files whose size another file shares are hashed,
    so a folder without duplicates costs one `stat` per photo.
    """
    entries = [(path, split, splits.class_names[label]) for split in SPLIT_NAMES
               for path, label in zip(getattr(splits, split).files, getattr(splits, split).labels)]
    by_size: dict[int, list[tuple[Path, str, str]]] = {}
    for entry in entries:
        with suppress(OSError):  # a file that cannot be read is reported when the photos are decoded
            by_size.setdefault(entry[0].stat().st_size, []).append(entry)
    by_hash: dict[str, list[tuple[Path, str, str]]] = {}
    for group in (g for g in by_size.values() if len(g) > 1):
        for entry in group:
            with suppress(OSError):
                by_hash.setdefault(file_sha256(entry[0]), []).append(entry)
    clashes = [g for g in by_hash.values() if len({(split, name) for _, split, name in g}) > 1]
    if clashes:
        described = [" = ".join(f"{path.relative_to(splits.data_dir)} ({split}, {name})" for path, split, name in g)
                     for g in clashes]
        warnings.warn(
            f"{len(clashes)} photo(s) are duplicated (identical bytes) across classes or splits, so a photo can "
            f"be trained under one label and tested under another: {first_few(described, sep='; ')}. "
            "Keep one copy of each.",
            DuplicatePhotosWarning,
            stacklevel=3,
        )


def _drawn(folder: Path, fraction: float) -> str:
    return f"taken from {folder.name}/, {fraction:.0%} of each class" if fraction > 0 else "none asked for"


def _predefined_split_dirs(root: Path) -> dict[str, Path]:
    found = {}
    for split, candidates in PREDEFINED_DIRS.items():
        for name in candidates:
            if (root / name).is_dir():
                found[split] = root / name
                break
    return found if "train" in found and len(found) > 1 else {}


def _check_same_classes(expected: tuple[str, ...], found: tuple[str, ...], where: Path) -> None:
    if set(found) - set(expected):
        raise EdgetlError(
            f"Split folder has classes that train/ lacks. Received: {where} with {sorted(set(found) - set(expected))}"
        )


def _subset(files: LabelledFiles, fraction: float, rng: np.random.Generator) -> LabelledFiles:
    if fraction >= 1:
        return files
    keep = []
    for label in np.unique(files.labels):
        members = rng.permutation(np.flatnonzero(files.labels == label))
        keep.extend(members[: max(2, round(len(members) * fraction))])
    return files.select(sorted(keep))


def _stratified_split(
    files: LabelledFiles, fractions: dict[str, float], rng: np.random.Generator
) -> dict[str, LabelledFiles]:
    """Split each class by the fractions; every class keeps at least one training photo."""
    chosen: dict[str, list[int]] = {"train": [], **{name: [] for name in fractions}}
    for label in np.unique(files.labels):
        members = list(rng.permutation(np.flatnonzero(files.labels == label)))
        class_size = len(members)  # every fraction is of the whole class, not of what is left
        for name, fraction in fractions.items():
            count = max(1, round(class_size * fraction)) if fraction > 0 else 0
            count = min(count, len(members) - 1)
            chosen[name].extend(members[:count])
            members = members[count:]
        chosen["train"].extend(members)
    if fractions.get("val", 0) > 0 and not chosen["val"]:
        raise EdgetlError("Too few images to hold out a validation split. Add images or pass --val-split 0.")
    return {name: files.select(sorted(idx)) for name, idx in chosen.items()}


def decode_images(
    files: LabelledFiles,
    spec: PreprocessingSpec,
    *,
    strict: bool = False,
    cache_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode and resize photos to a uint8 array (N, H, W, 3) and their labels.

    Unreadable photos are skipped with one warning that lists them; with `strict` they are an
    error. Results are cached in `cache_dir` (memory-mapped on reuse).

    Raises:
        EdgetlError: with `strict`, if any photo cannot be decoded.
    """
    cache_file = cache_dir / f"pixels-{_cache_key(files, spec)}.npy" if cache_dir else None
    if cache_file is not None and cache_file.exists():
        cached = _load_cache(cache_file, spec)
        if cached is not None:
            return cached
    pixels, ok = _decode_parallel(files.files, spec, progress)
    bad = [str(f) for f, good in zip(files.files, ok) if not good]
    if bad and strict:
        raise EdgetlError(f"{len(bad)} image(s) cannot be decoded (--strict). Received: {', '.join(bad[:5])}")
    if bad:
        warnings.warn(f"Skipped {len(bad)} unreadable image(s): {', '.join(bad)}", UnreadableImagesWarning,
                      stacklevel=2)
    pixels, labels = pixels[ok], files.labels[ok]
    if cache_file is not None:
        _save_cache(cache_file, pixels, labels)
    return pixels, labels


def _decode_parallel(
    files: Sequence[Path], spec: PreprocessingSpec, progress: Callable[[int], None] | None
) -> tuple[np.ndarray, np.ndarray]:
    height, width = spec.image_size
    pixels = np.zeros((len(files), height, width, 3), dtype=np.uint8)
    ok = np.zeros(len(files), dtype=bool)

    def decode(index: int) -> None:
        try:
            pixels[index] = load_pixels(files[index], spec)
            ok[index] = True
        except EdgetlError:
            pass

    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 2)) as pool:
        for _ in pool.map(decode, range(len(files))):
            if progress:
                progress(1)
    return pixels, ok


def _cache_key(files: LabelledFiles, spec: PreprocessingSpec) -> str:
    digest = hashlib.sha256(f"{__version__}|{json.dumps(spec.to_dict(), sort_keys=True)}".encode())
    for path, label in zip(files.files, files.labels):
        stat = path.stat()
        # os.fsencode: a file name that is not UTF-8 (bytes kept as surrogate escapes) hashes too.
        digest.update(b"|" + os.fsencode(path) + f"|{stat.st_size}|{stat.st_mtime_ns}|{label}".encode())
    return digest.hexdigest()[:24]


def _labels_file(cache_file: Path) -> Path:
    return cache_file.with_suffix(".labels.npy")


def _load_cache(cache_file: Path, spec: PreprocessingSpec) -> tuple[np.ndarray, np.ndarray] | None:
    """A cache entry, or None (with a warning) when it is damaged; never unpickled."""
    try:
        pixels = np.load(cache_file, mmap_mode="r", allow_pickle=False)
        labels = np.load(_labels_file(cache_file), allow_pickle=False)
        if pixels.dtype == np.uint8 and pixels.shape[1:] == (*spec.image_size, 3) and len(labels) == len(pixels):
            return pixels, labels
    except (OSError, ValueError):
        pass
    warnings.warn(f"The decoded-image cache {cache_file} is unreadable; decoding the photos again.", stacklevel=3)
    return None


def _save_cache(cache_file: Path, pixels: np.ndarray, labels: np.ndarray) -> None:
    """Best effort: a cache that cannot be written costs only time, never the run.

    The labels go first: the pixels file appearing (by an atomic rename) marks the entry whole.
    """
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        for target, array in ((_labels_file(cache_file), labels), (cache_file, pixels)):
            with atomic_path(target) as tmp, open(tmp, "wb") as handle:
                np.save(handle, array)
    except OSError as e:
        warnings.warn(f"Could not write the decoded-image cache {cache_file}: {e.strerror}", stacklevel=3)


def default_cache_dir() -> Path:
    """`$EDGETL_CACHE_DIR`, else `$XDG_CACHE_HOME/edgetl`, else `~/.cache/edgetl`."""
    if env := os.environ.get("EDGETL_CACHE_DIR"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgetl"
