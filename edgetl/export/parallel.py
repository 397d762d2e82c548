"""Convert the requested formats on two cores: this process and one worker process.

Each TFLite conversion is single-threaded and takes seconds (int8 calibration the longest), so a
second process that converts from the same SavedModel halves the wall time on a 2-core machine.
The worker needs no Keras model of this process: it gets the SavedModel folder and the
calibration tensor as files, both made once and shared by every format. For a run, the worker
starts before this process loads model.keras and builds the SavedModel from that file itself,
so TensorFlow's import and the SavedModel (about 20 s together on a small CPU) overlap this
process's own model load and its ONNX conversions, which trace the Keras model. Each exporter
runs exactly as it would alone, so the artefacts are the same.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.export import ExportResult, recipes
from edgetl.export.common import ExportSource
from edgetl.safety import temporary_folder
from edgetl.spec import ModelMetadata

if TYPE_CHECKING:
    from edgetl.export import ExportOptions

logger = logging.getLogger("edgetl.export")

SAVED_MODEL_FORMATS = frozenset({"tflite-fp32", "tflite-dynamic", "tflite-fp16", "tflite-int8"})
"""Formats converted from the dynamic-batch SavedModel alone, so a worker process can make them."""
COST = {"tflite-fp32": 5.0, "tflite-dynamic": 4.5, "tflite-fp16": 4.2, "tflite-int8": 15.4, "onnx": 3.0,
        "onnx-int8": 11.6, "edgetpu": 16.0}
"""Seconds each conversion took in the lead's quiet run (MobileNetV2-1.0-224, 2-core AMD EPYC, issue 25);
only their proportions matter to `_worker_share`."""
WORKER_START_COST = 2.5
"""Seconds the worker spends before its first conversion, beyond what overlaps this process's model load."""
ROUNDING_COST = 22.0
"""Seconds before the worker can convert tflite-int8 from the `gptq` copy: its rounding here
(`edgetl.export.rounding`, about 17) and its SavedModel (about 5, made in the worker for a run);
the worker converts its float formats meanwhile."""


class ConversionWorker:
    """The worker process and what it converts: `formats`, and the SavedModel when `saved_model` is set.

    Start it with `conversion_worker`; `formats` is empty (and there is no process) when a second
    process would not pay off.
    """

    def __init__(self, pool: ProcessPoolExecutor | None, formats: list[str], saved_model: Future[Path] | None,
                 pid: Future[int] | None) -> None:
        self.pool, self.formats, self.saved_model, self._pid = pool, formats, saved_model, pid

    def kill(self) -> None:
        """Stop the worker now (the export failed before converting: its work is moot)."""
        try:
            os.kill(self._pid.result(timeout=30), signal.SIGKILL)  # its first task: known within a second
        except Exception:  # never started (no pid), already gone (ProcessLookupError)
            pass


@contextmanager
def conversion_worker(formats: Sequence[str], model_file: Path | None = None, metadata: ModelMetadata | None = None,
                      quantization: str = "default", keep_here: Sequence[str] = ()) -> Iterator[ConversionWorker]:
    """Start the worker process for `formats`, if one pays off; it is stopped on leaving.

    Args:
        formats: Every format the export makes.
        model_file: A model.keras the worker builds the shared SavedModel from, right away,
            while this process is still loading it. Defaults to `None` (this process builds
            the SavedModel and hands it over).
        metadata: The model's metadata (its input size); needed with `model_file`.
        quantization: The int8 recipe. When it rounds kernels (`recipes.rounds_weights`), this
            process makes the rounded copy once for both int8 formats and hands the worker its
            SavedModel for tflite-int8 (`convert_all`); under `auto`, which compares recipes on the
            float model, tflite-int8 converts here (edgetpu always converts here).
        keep_here: Formats that convert in this process all the same (they measure the float model).
    """
    stay = ({"tflite-int8"} if quantization == "auto" else set()) | set(keep_here)
    rounding = ROUNDING_COST if "tflite-int8" in formats and recipes.rounds_weights(quantization) else 0.0
    remote = (_worker_share([f for f in formats if f not in stay], formats, rounding)
              if (os.cpu_count() or 1) >= 2 else [])
    if not remote:
        yield ConversionWorker(None, [], None, None)
        return
    with temporary_folder("edgetl-export-") as folder:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_die_with_parent)
        with _sigint_ignored():  # the first submit starts the process, which inherits the disposition
            worker = ConversionWorker(pool, remote, None, pool.submit(os.getpid))
        try:
            if model_file is not None and metadata is not None:
                worker.saved_model = pool.submit(_saved_model_from_file, model_file, metadata, folder)
            yield worker
        except BaseException:
            worker.kill()  # before its folder goes
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def convert_all(source: ExportSource, options: ExportOptions, formats: Sequence[str], out_dir: Path,
                calib: np.ndarray | None, worker: ConversionWorker,
                meanwhile: Callable[[], object] | None = None) -> list[ExportResult]:
    """Export every format in `formats`, the worker's share in the worker; results in `formats` order.

    `meanwhile` is further work for this process, done after its own formats while the worker
    finishes its share.
    """
    from edgetl.export import FORMATS, artefact_path

    def here(fmt: str) -> ExportResult:
        return timed(fmt, lambda: FORMATS[fmt].fn(source, options, artefact_path(out_dir, fmt), calib))

    def alone() -> list[ExportResult]:
        results = [here(fmt) for fmt in formats]
        if meanwhile is not None:
            meanwhile()
        return results

    if worker.pool is None:
        return alone()
    saved = None  # None: the worker builds it (its first task)
    if worker.saved_model is None:
        saved = _shared_saved_model(source)
        if saved is None:
            return alone()
    calib_file = None
    if calib is not None:
        calib_file = source.workdir / "calibration.npy"
        np.save(calib_file, calib)
    logger.info("%s: converting in a worker process", ", ".join(worker.formats))

    def submit(fmt: str, rounded: Path | None = None) -> Future[ExportResult]:
        return worker.pool.submit(_convert_in_worker, source.metadata, source.workdir, saved, options, fmt,
                                  artefact_path(out_dir, fmt), calib_file, rounded)

    rounds = recipes.rounds_weights(options.quantization) and source.rounded_weights(
        recipes.candidates(options.quantization)[0])
    late = [f for f in worker.formats if f == "tflite-int8" and rounds]
    futures = {fmt: submit(fmt) for fmt in worker.formats if fmt not in late}
    local: dict[str, ExportResult] = {}
    for fmt in late:  # the worker converts its float formats meanwhile
        rounded = _rounded_for_worker(source, options, calib, as_weights=saved is None)
        if rounded is None:
            local[fmt] = here(fmt)
        else:
            futures[fmt] = submit(fmt, rounded)
    for fmt in sorted((f for f in formats if f not in futures and f not in local),
                      key=lambda f: f in SAVED_MODEL_FORMATS):
        if fmt in SAVED_MODEL_FORMATS and 0 not in source._saved_model and worker.saved_model is not None:
            built = _worker_saved_model(worker.saved_model)  # the ONNX formats ran while it was built
            if built is not None:
                source._saved_model[0] = built
        local[fmt] = here(fmt)
    if meanwhile is not None:
        meanwhile()
    return [_collect(fmt, futures[fmt]) if fmt in futures else local[fmt] for fmt in formats]


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while the worker starts: it inherits that, and Python then keeps it ignored.

    Ctrl-C reaches the whole process group; the worker printed a KeyboardInterrupt traceback.
    This process decides: it stops the worker on its own KeyboardInterrupt.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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

    try:
        result = future.result()
    except Exception:  # BrokenProcessPool, or an object that could not be pickled
        return timed(fmt, future.result)  # raises the same error again, reported as this format's failure
    log_outcome(result)
    return result


def _worker_share(movable: Sequence[str], formats: Sequence[str], extra: float = 0.0) -> list[str]:
    """The formats of `movable` the worker converts: the share that ends the export soonest, by `COST`.

    `extra` is work this process does first, before the worker can start tflite-int8 (the rounding);
    the worker converts its float formats meanwhile. No worker (an empty share) unless it saves time.
    Measured with gptq on 2 cores: the worker took tflite-fp32 only and then waited on the rounding,
    while this process still converted tflite-dynamic and tflite-fp16 (70 s against 55 s naive)."""
    movable = sorted((f for f in movable if f in SAVED_MODEL_FORMATS), key=lambda f: -COST.get(f, 1.0))
    total = sum(COST.get(f, 1.0) for f in formats) + extra

    def finish(share: tuple[str, ...]) -> float:
        floats = sum(COST.get(f, 1.0) for f in share if f != "tflite-int8")
        theirs = WORKER_START_COST + floats
        if "tflite-int8" in share:
            theirs = max(theirs, extra) + COST["tflite-int8"]
        return max(total - sum(COST.get(f, 1.0) for f in share), theirs)

    shares = [share for size in range(1, len(movable) + 1) for share in itertools.combinations(movable, size)]
    best = min(shares, key=finish, default=())
    return list(best) if best and finish(best) < total else []


def _shared_saved_model(source: ExportSource) -> Path | None:
    """The SavedModel every TFLite format converts from, made here once; None if it cannot be made.

    A failure is left to each format to report, exactly as without a worker.
    """
    try:
        return source.saved_model()
    except Exception:  # the per-format conversions report it with its traceback
        return None


def _rounded_for_worker(source: ExportSource, options: ExportOptions, calib: np.ndarray | None, *,
                        as_weights: bool) -> Path | None:
    """What the worker converts tflite-int8 from: the recipe's rounded copy, made here (onnx-int8
    reuses it), as its weights (.npz) when `as_weights` (the worker loaded model.keras itself and
    makes the copy's SavedModel, about 5 s, while this process converts ONNX), else as its
    SavedModel made here; None when it cannot be made (tflite-int8 then converts here and reports why)."""
    try:
        if calib is None or not len(calib):
            return None
        rounded = source.int8_source(recipes.candidates(options.quantization)[0], calib)
        if not as_weights:
            return rounded.saved_model()
        weights = source.workdir / "rounded_weights.npz"
        np.savez(weights, *rounded.model.get_weights())
        return weights
    except Exception:  # the conversion here reports it with its traceback
        return None


def _worker_saved_model(future: Future[Path]) -> Path | None:
    """The worker's SavedModel; None when it could not be made (each format then makes and reports its own)."""
    try:
        return future.result()
    except Exception:
        return None


_BUILT: dict[str, Any] = {}
"""In the worker: the model it loaded from model.keras ("model") and its SavedModel ("path"), or why
they could not be made ("error")."""


def _saved_model_from_file(model_file: Path, metadata: ModelMetadata, folder: Path) -> Path:
    """In the worker: load model.keras (safe mode on; a hub run rebuilt) and write its SavedModel under `folder`."""
    from edgetl.hub_run import load_classifier

    try:
        model = _BUILT["model"] = load_classifier(model_file, metadata)
        _BUILT["path"] = ExportSource(model=model, metadata=metadata, workdir=folder).saved_model()
    except Exception as e:
        _BUILT["error"] = e
        raise
    return _BUILT["path"]


def _convert_in_worker(metadata: ModelMetadata, workdir: Path, saved_model: Path | None, options: ExportOptions,
                       fmt: str, out: Path, calib_file: Path | None, rounded: Path | None = None) -> Any:
    """One format in the worker process, timed and with failures caught as in the main one.

    `saved_model` is None when the worker built it itself: its first task, done by now (the
    worker runs its tasks in order); a failure to build it is this format's failure. `rounded` is
    the SavedModel of the rounded copy the recipe converts (`ExportSource.int8_source`), or that
    copy's weights (`_rounded_for_worker`).
    """
    from edgetl.export import FORMATS

    def convert() -> Path:
        if saved_model is None and "path" not in _BUILT:
            raise _BUILT.get("error") or EdgetlError("The worker process has no SavedModel to convert from.")
        source = ExportSource(model=None, metadata=metadata, workdir=workdir)
        source._saved_model[0] = saved_model or _BUILT["path"]
        if rounded is not None:
            built = rounded if rounded.is_dir() else _rounded_saved_model(rounded, metadata, workdir)
            source._rounded = ExportSource(model=None, metadata=metadata, workdir=workdir, _saved_model={0: built})
        calib = np.load(calib_file, mmap_mode="r") if calib_file is not None else None
        return FORMATS[fmt].fn(source, options, out, calib)

    return timed(fmt, convert)


def _rounded_saved_model(weights: Path, metadata: ModelMetadata, workdir: Path) -> Path:
    """In the worker: the SavedModel of the rounded copy, rebuilt from its weights on the model it loaded."""
    from edgetl.export import rounding

    with np.load(weights) as saved:
        arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    copy = rounding.copy_with_weights(_BUILT["model"], arrays)
    return ExportSource(model=copy, metadata=metadata, workdir=workdir).saved_model()


def timed(fmt: str, fn: Callable[[], Path]) -> ExportResult:
    """Run one conversion, log it, and make a converter's error this format's failed result."""
    start = time.perf_counter()
    logger.info("%s: converting", fmt)
    try:
        path = fn()
    except _converter_errors() as e:  # reported as this format's failure; the export exits non-zero
        message = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        result = ExportResult(
            format=fmt,
            path=None,
            size_bytes=0,
            seconds=time.perf_counter() - start,
            error=f"{type(e).__name__}: {message}",
        )
    else:
        result = ExportResult(
            format=fmt, path=path, size_bytes=path.stat().st_size, seconds=time.perf_counter() - start
        )
    log_outcome(result)
    return result


def log_outcome(result: ExportResult) -> None:
    """One progress line for a finished format (the worker process's are logged here, on arrival)."""
    if result.path is None:
        logger.info("%s: failed after %.1f s", result.format, result.seconds)
    else:
        logger.info("%s: %s, %.2f MB, %.1f s", result.format, result.path.name, result.size_bytes / 1e6, result.seconds)


def _converter_errors() -> tuple[type[BaseException], ...]:
    """What a converter raises for a model or a machine it cannot handle (not a bug in edgetl).

    TensorFlow's converter raises `ConverterError`; tf2onnx and onnxruntime raise ValueError,
    RuntimeError (onnxruntime's `Fail`, a broken worker pool) or OSError; the Edge TPU compiler a
    `SubprocessError`. TensorFlow is already loaded here (the Keras model is), so naming its error
    costs nothing.
    """
    import subprocess

    from tensorflow.lite.python.convert_phase import ConverterError

    return (EdgetlError, ConverterError, ValueError, RuntimeError, OSError, MemoryError, subprocess.SubprocessError)
