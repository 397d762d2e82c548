"""Latency of a model on this device, and what the runner adds over a bare interpreter call.

Both are timed side by side in one loop, alternating which goes first, so CPU frequency changes
and other load hit them equally: `invoke` is the interpreter alone on an already-fed tensor;
`run_pixels` is the runner's whole tensor path (quantize, feed, invoke, read, dequantize).
Given photos, it also times `classify` on them: decode, resize and invoke, end to end.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.runtime.classifier import Classifier
from edgetl.runtime.image import is_image_file


@dataclass(frozen=True)
class Latency:
    """Percentiles of one timed step, in milliseconds."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        ms = np.asarray(seconds) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), mean_ms=float(ms.mean()))


@dataclass(frozen=True)
class BenchReport:
    """What `benchmark` measured.

    Attributes:
        model: Model file name.
        backend: Interpreter that ran it.
        threads: Threads asked for (None: the interpreter's default).
        runs: Timed iterations of each step.
        invoke: Bare `invoke()` latency.
        run_pixels: The runner's `run_pixels` latency on the same tensor.
        photos: How many photo files the end-to-end figure was timed on (0: none given).
        photos_per_s: `classify` throughput on them (decode + resize + invoke), or None.
    """

    model: str
    backend: str
    threads: int | None
    runs: int
    invoke: Latency
    run_pixels: Latency
    photos: int = 0
    photos_per_s: float | None = None

    @property
    def images_per_s(self) -> float:
        return 1e3 / self.run_pixels.p50_ms

    @property
    def runner_overhead(self) -> float:
        """run_pixels p50 over invoke p50, minus 1 (0.05 = the runner adds 5%).

        Below zero it is noise: the runner cannot be faster than the invoke it contains.
        """
        return self.run_pixels.p50_ms / self.invoke.p50_ms - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "threads": self.threads,
            "runs": self.runs,
            "invoke": vars(self.invoke),
            "run_pixels": vars(self.run_pixels),
            "images_per_s": self.images_per_s,
            "runner_overhead": self.runner_overhead,
            "photos": self.photos,
            "photos_per_s": self.photos_per_s,
        }


def benchmark(clf: Classifier, *, runs: int = 100, warmup: int = 10, seed: int = 0,
              photos: Sequence[str | Path] = ()) -> BenchReport:
    """Time bare `invoke()` and `run_pixels` on one random image, interleaved; and `classify` on photos.

    Args:
        clf: The classifier to time.
        runs: Timed iterations of each step. Defaults to `100`.
        warmup: Untimed iterations first. Defaults to `10`.
        seed: Seed of the random image. Defaults to `0`.
        photos: Photo files for the end-to-end figure, classified once after one untimed
            warm-up photo. Defaults to `()` (none).

    Raises:
        EdgetlError: if `runs` < 1 or `warmup` < 0, the model fails at invoke, or a photo
            cannot be decoded.
    """
    if runs < 1 or warmup < 0:
        raise EdgetlError(f"runs must be >= 1 and warmup >= 0. Received: runs={runs}, warmup={warmup}")
    height, width = clf.spec.image_size
    pixels = np.random.default_rng(seed).integers(0, 256, size=(1, height, width, 3), dtype=np.uint8)
    for _ in range(warmup + 1):
        clf.run_pixels(pixels)
    bare, runner = [], []
    clock = time.perf_counter
    for i in range(runs):
        if i % 2:
            runner.append(_timed(clock, clf.run_pixels, pixels))
            bare.append(_timed(clock, clf.invoke_last))
        else:
            bare.append(_timed(clock, clf.invoke_last))
            runner.append(_timed(clock, clf.run_pixels, pixels))
    return BenchReport(
        model=clf.path.name,
        backend=clf.backend,
        threads=clf.threads,
        runs=runs,
        invoke=Latency.of(bare),
        run_pixels=Latency.of(runner),
        photos=len(photos),
        photos_per_s=photos_per_second(clf, photos) if photos else None,
    )


def photo_files(folder: Path) -> list[Path]:
    """The image files under a folder, sorted (class subfolders included).

    Raises:
        EdgetlError: if it is not a folder or holds no images.
    """
    files = sorted(p for p in Path(folder).rglob("*") if is_image_file(p)) if Path(folder).is_dir() else []
    if not files:
        raise EdgetlError(f"--images must be a folder holding photos. Received: {folder}")
    return files


def photos_per_second(clf: Classifier, photos: Sequence[str | Path]) -> float:
    """End-to-end `classify` throughput on photo files: decode, resize, invoke, rank."""
    clf.classify(photos[:1])
    start = time.perf_counter()
    clf.classify(photos)
    return len(photos) / (time.perf_counter() - start)


def _timed(clock: Any, fn: Any, *args: Any) -> float:
    start = clock()
    fn(*args)
    return clock() - start
