"""Convert the requested formats on two cores: this process and one worker process.

Each TFLite conversion is single-threaded and takes seconds (int8 calibration the longest), so a
second process that converts from the same SavedModel halves the wall time on a 2-core machine.
The worker needs no Keras model: it gets the SavedModel folder and the calibration tensor as
files, both made once here and shared by every format. The ONNX formats, which trace the Keras
model, stay in this process. Each exporter runs exactly as it would alone, so the artefacts are
the same.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetl.export.common import ExportSource

if TYPE_CHECKING:
    from edgetl.export import ExportOptions, ExportResult

logger = logging.getLogger("edgetl.export")

SAVED_MODEL_FORMATS = frozenset({"tflite-fp32", "tflite-dynamic", "tflite-fp16", "tflite-int8"})
"""Formats converted from the dynamic-batch SavedModel alone, so a worker process can make them."""
COST = {"tflite-int8": 3.0, "onnx-int8": 2.0, "edgetpu": 3.0}
"""Relative conversion time measured on MobileNetV2-224 (the others are about 1)."""
WORKER_START_COST = 0.5
"""Starting the worker (importing TensorFlow) costs about half of one conversion."""


def convert_all(source: ExportSource, options: ExportOptions, formats: Sequence[str], out_dir: Path,
                calib: np.ndarray | None) -> list[ExportResult]:
    """Export every format in `formats`, in parallel where that helps; results in `formats` order."""
    from edgetl.export import FORMATS, artefact_path
    from edgetl.export.pipeline import timed

    def here(fmt: str) -> ExportResult:
        return timed(fmt, lambda: FORMATS[fmt].fn(source, options, artefact_path(out_dir, fmt), calib))

    remote = _worker_share(formats) if (os.cpu_count() or 1) >= 2 else []
    if not remote or _shared_saved_model(source) is None:
        return [here(fmt) for fmt in formats]
    calib_file = None
    if calib is not None:
        calib_file = source.workdir / "calibration.npy"
        np.save(calib_file, calib)
    worker = ExportSource(model=None, metadata=source.metadata, workdir=source.workdir)
    worker._saved_model[0] = source.saved_model()
    logger.info("%s: converting in a worker process", ", ".join(remote))
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_die_with_parent) as pool:
        futures: dict[str, Future[ExportResult]] = {
            fmt: pool.submit(_convert_in_worker, worker, options, fmt, artefact_path(out_dir, fmt), calib_file)
            for fmt in remote
        }
        local = {fmt: here(fmt) for fmt in formats if fmt not in futures}
        return [_collect(fmt, futures[fmt]) if fmt in futures else local[fmt] for fmt in formats]


def _die_with_parent() -> None:
    """Linux: the worker is killed when this process dies, even by SIGKILL.

    Otherwise a killed export would leave its worker converting on, writing into the abandoned
    staging folder and holding the terminal's (or a CI log's) pipes open.
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _collect(fmt: str, future: Future[ExportResult]) -> ExportResult:
    """The worker's result; a worker that died (out of memory, killed) fails its formats like a converter."""
    from edgetl.export.pipeline import log_outcome, timed

    try:
        result = future.result()
    except Exception:  # BrokenProcessPool, or an object that could not be pickled
        return timed(fmt, future.result)  # raises the same error again, reported as this format's failure
    log_outcome(result)
    return result


def _worker_share(formats: Sequence[str]) -> list[str]:
    """The formats the worker converts: the largest first, while its side stays the lighter."""
    movable = sorted((f for f in formats if f in SAVED_MODEL_FORMATS), key=lambda f: -COST.get(f, 1.0))
    mine, theirs = sum(COST.get(f, 1.0) for f in formats), WORKER_START_COST
    chosen = []
    for fmt in movable:
        cost = COST.get(fmt, 1.0)
        if theirs + cost < mine:
            chosen.append(fmt)
            mine, theirs = mine - cost, theirs + cost
    return chosen


def _shared_saved_model(source: ExportSource) -> Path | None:
    """The SavedModel every TFLite format converts from, made here once; None if it cannot be made.

    A failure is left to each format to report, exactly as without a worker.
    """
    try:
        return source.saved_model()
    except Exception:  # the per-format conversions report it with its traceback
        return None


def _convert_in_worker(source: ExportSource, options: ExportOptions, fmt: str, out: Path,
                       calib_file: Path | None) -> Any:
    """One format in the worker process, timed and with failures caught as in the main one."""
    from edgetl.export import FORMATS
    from edgetl.export.pipeline import timed

    calib = np.load(calib_file, mmap_mode="r") if calib_file is not None else None
    return timed(fmt, lambda: FORMATS[fmt].fn(source, options, out, calib))
