"""The representative set int8 quantization is calibrated on, and checks that it is fit for it.

Quantization fixes each tensor's int8 range from the activations these images produce, so they
must look like what the model will see: the right classes, in training proportions, as [0, 255]
RGB pixels decoded exactly as training decoded them (`edgetl.runtime.image.load_pixels`).
Problems do not stop the export (the model is still exactly what was asked for) but each gives a
warning that says what to do.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.runtime.image import is_image_file, load_pixels
from edgetl.spec import PreprocessingSpec

MIN_IMAGES = 100
"""Fewer images than this give noisy activation ranges (TFLite's guide suggests 100-500)."""
MAX_IMBALANCE = 4.0
"""Largest allowed ratio between the most and least represented class."""
MEAN_SHIFT_LEVELS = 40.0
"""A per-channel mean further than this from the reference (in 0-255 levels) is 'unlike training'."""
IMAGENET_STATS = {"mean": (123.7, 116.3, 103.5), "std": (58.4, 57.1, 57.4)}
"""Pixel statistics of ImageNet photos, the reference for pretrained ImageNet classifiers."""


@dataclass(frozen=True)
class CalibrationSet:
    """Images for int8 calibration, decoded once.

    Attributes:
        pixels: uint8 (N, H, W, 3) RGB, in the model's input size.
        paths: The image files, in the order of `pixels`.
        class_counts: Images per label (None when the images carry no labels).
        source: Where they came from, for the report ("training split of RUN", a folder).
        warnings: The problems found by `check_calibration`.
    """

    pixels: np.ndarray
    paths: tuple[Path, ...]
    class_counts: dict[str, int] | None
    source: str
    warnings: tuple[str, ...] = ()

    def as_float(self) -> np.ndarray:
        """float32 pixels in [0, 255], what the float model takes."""
        return self.pixels.astype(np.float32)

    def summary(self) -> dict[str, Any]:
        return {"images": len(self.paths), "source": self.source, "class_counts": self.class_counts,
                "warnings": list(self.warnings)}


def stratified_sample(items: Sequence[tuple[str, str]], size: int, seed: int) -> list[tuple[str, str]]:
    """Draw up to `size` (class, path) items keeping each class's share, at least one per class.

    Classes get `size * share` items, rounded by largest remainder; within a class the draw is
    random with `seed`, so the same run always calibrates on the same images.
    """
    by_class: dict[str, list[str]] = {}
    for cls, path in items:
        by_class.setdefault(cls, []).append(path)
    total = sum(len(v) for v in by_class.values())
    if total <= size:
        return list(items)
    quota = {c: size * len(v) / total for c, v in by_class.items()}
    counts = {c: max(1, int(q)) for c, q in quota.items()}
    for c in sorted(quota, key=lambda c: quota[c] - int(quota[c]), reverse=True):
        if sum(counts.values()) >= size:
            break
        counts[c] = min(len(by_class[c]), counts[c] + 1)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in sorted(by_class):
        paths = sorted(by_class[c])
        picks = rng.choice(len(paths), size=min(counts[c], len(paths)), replace=False)
        chosen += [(c, paths[i]) for i in sorted(picks)]
    return chosen


def from_split(train: Sequence[tuple[Path, str]], labels: Sequence[str], spec: PreprocessingSpec, *,
               size: int, seed: int, source: str) -> CalibrationSet:
    """A stratified calibration set from a run's training split, as (path, class) pairs."""
    chosen = stratified_sample([(cls, str(path)) for path, cls in train], size, seed)
    paths = tuple(Path(p) for _, p in chosen)
    pixels = decode(paths, spec)
    counts = {label: 0 for label in labels} | dict(Counter(c for c, _ in chosen))
    found = check_calibration(pixels, counts, labels=labels, requested=size, reference=None)
    return CalibrationSet(pixels=pixels, paths=paths, class_counts=counts, source=source, warnings=tuple(found))


def from_dir(directory: Path, spec: PreprocessingSpec, *, size: int, seed: int, labels: Sequence[str] | None = None,
             reference: dict[str, tuple[float, ...]] | None = None) -> CalibrationSet:
    """A calibration set from a folder of images (searched recursively).

    When its subfolders are named after `labels` the draw is stratified by them and the class
    checks apply; otherwise images are drawn at random.

    Raises:
        EdgetlError: if the folder does not exist or holds no images.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise EdgetlError(f"Calibration folder not found. Received: calibration_dir={directory}")
    files = sorted(p for p in directory.rglob("*") if is_image_file(p))
    if not files:
        raise EdgetlError(f"No images (.jpg, .png, ...) found under the calibration folder. Received: {directory}")
    rel = [p.relative_to(directory) for p in files]
    labelled = labels is not None and all(len(r.parts) > 1 and r.parts[0] in labels for r in rel)
    items = [(r.parts[0] if labelled else "", str(r)) for r in rel]
    chosen = stratified_sample(items, size, seed)
    paths = tuple(directory / p for _, p in chosen)
    pixels = decode(paths, spec)
    counts = ({label: 0 for label in labels} | dict(Counter(c for c, _ in chosen))) if labelled and labels else None
    found = check_calibration(pixels, counts, labels=labels if labelled else None, requested=size, reference=reference)
    return CalibrationSet(pixels=pixels, paths=paths, class_counts=counts, source=str(directory), warnings=tuple(found))


def decode(paths: Sequence[Path], spec: PreprocessingSpec) -> np.ndarray:
    """uint8 pixels (N, H, W, 3) of the photos, through `load_pixels`."""
    height, width = spec.image_size
    out = np.empty((len(paths), height, width, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = load_pixels(path, spec)
    return out


def pixel_stats(pixels: np.ndarray) -> dict[str, tuple[float, ...]]:
    """Per-channel mean and std of uint8/float pixels (N, H, W, 3)."""
    flat = np.asarray(pixels, dtype=np.float64).reshape(-1, pixels.shape[-1])
    return {"mean": tuple(float(v) for v in flat.mean(0)), "std": tuple(float(v) for v in flat.std(0))}


def check_calibration(pixels: np.ndarray, class_counts: dict[str, int] | None, *, labels: Sequence[str] | None,
                      requested: int, reference: dict[str, tuple[float, ...]] | None) -> list[str]:
    """Warn (and return the messages) when a calibration set is unfit for int8 calibration.

    Args:
        pixels: The calibration pixels, (N, H, W, 3), meant to be in [0, 255].
        class_counts: Images per label, or None when unknown.
        labels: The model's labels, or None when the images carry no labels.
        requested: The calibration size that was asked for.
        reference: Per-channel "mean"/"std" of the data the model was trained on, or None.

    Returns:
        One message per problem; each is also issued with `warnings.warn`.
    """
    found = []
    n = len(pixels)
    if n < MIN_IMAGES:
        found.append(
            f"Only {n} calibration images (asked for {requested}); int8 ranges fitted on fewer than "
            f"{MIN_IMAGES} images are noisy. Add training images or pass a larger --calibration-dir."
        )
    if class_counts is not None and labels is not None:
        missing = [label for label in labels if class_counts.get(label, 0) == 0]
        if missing:
            found.append(
                f"No calibration images of class(es) {', '.join(missing)}: their activations are not in the int8 "
                "ranges, so they may be misclassified after quantization. Add images of them."
            )
        present = [c for c in class_counts.values() if c > 0]
        if len(present) > 1 and max(present) > MAX_IMBALANCE * min(present):
            shown = ", ".join(f"{k}: {v}" for k, v in sorted(class_counts.items(), key=lambda kv: -kv[1]))
            found.append(
                f"Calibration set is imbalanced ({shown}); the ranges follow the majority classes. "
                "Add images of the rare classes or raise --calibration-size."
            )
    if n:
        lo, hi = float(pixels.min()), float(pixels.max())
        if hi <= 1.0 or lo < 0.0:
            found.append(
                f"Calibration pixels span [{lo:.3g}, {hi:.3g}], but edgetl models take RGB pixels in [0, 255] "
                "and normalize inside; pass unnormalized images."
            )
        elif reference is not None:
            stats = pixel_stats(pixels)
            shift = max(abs(a - b) for a, b in zip(stats["mean"], reference["mean"]))
            ratio = max(max(a / b, b / a) for a, b in zip(stats["std"], reference["std"]) if a > 0 and b > 0)
            if shift > MEAN_SHIFT_LEVELS or ratio > 2.0:
                found.append(
                    "Calibration images look unlike the training data (per-channel mean "
                    f"{_fmt(stats['mean'])} vs {_fmt(reference['mean'])}, std {_fmt(stats['std'])} vs "
                    f"{_fmt(reference['std'])}); calibrate on photos like those the model will see."
                )
    for message in found:
        warnings.warn(message, stacklevel=3)
    return found


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in values) + ")"
