"""Latency of a model on this device, and what the runner adds over a bare interpreter call.

Both are timed side by side in one loop, alternating which goes first, so CPU frequency changes
and other load hit them equally: `invoke` is the interpreter alone on an already-fed tensor;
`run_pixels` is the runner's whole tensor path (quantize, feed, invoke, read, dequantize).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.runtime.classifier import Classifier


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
    """

    model: str
    backend: str
    threads: int | None
    runs: int
    invoke: Latency
    run_pixels: Latency

    @property
    def images_per_s(self) -> float:
        return 1e3 / self.run_pixels.p50_ms

    @property
    def runner_overhead(self) -> float:
        """run_pixels p50 over invoke p50, minus 1 (0.05 = the runner adds 5%)."""
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
        }


def benchmark(clf: Classifier, *, runs: int = 100, warmup: int = 10, seed: int = 0) -> BenchReport:
    """Time bare `invoke()` and `run_pixels` on one random image, interleaved.

    Args:
        clf: The classifier to time.
        runs: Timed iterations of each step. Defaults to `100`.
        warmup: Untimed iterations first. Defaults to `10`.
        seed: Seed of the random image. Defaults to `0`.

    Raises:
        EdgetlError: if `runs` < 1 or `warmup` < 0, or the model fails at invoke.
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
    )


def _timed(clock: Any, fn: Any, *args: Any) -> float:
    start = clock()
    fn(*args)
    return clock() - start
