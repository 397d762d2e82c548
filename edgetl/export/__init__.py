"""Export a trained run (or a pretrained ImageNet classifier) to edge artefacts.

| Format           | `--formats`      | Suffix    | Accepts                                      |
|------------------|------------------|-----------|----------------------------------------------|
| TFLite float32   | `tflite-fp32`    | `.tflite` |                                              |
| TFLite dynamic   | `tflite-dynamic` | `.tflite` |                                              |
| TFLite float16   | `tflite-fp16`    | `.tflite` |                                              |
| TFLite int8      | `tflite-int8`    | `.tflite` | calibration_size, calibration_dir, io_dtype, quantization |
| ONNX float32     | `onnx`           | `.onnx`   | onnx_opset                                   |
| ONNX int8 (QDQ)  | `onnx-int8`      | `.onnx`   | onnx_opset, calibration_size, calibration_dir, quantization |
| Edge TPU         | `edgetpu`        | `.tflite` | calibration_size, calibration_dir, io_dtype  |

`all` (the default) is the first six. Each artefact is `RUN_DIR/export/model_{format}{suffix}`
with a sidecar `model_{format}.json` (the embedded `edgetl.json`), written under a temporary
name and renamed when whole. One format failing does not stop the others: it is reported in
`ExportReport.failures` and the CLI exits non-zero.

Python:
    >>> from edgetl.export import ExportOptions, export
    >>> report = export(Path("runs/flowers"), ExportOptions(formats=("tflite-int8", "onnx")))

CLI:
    edgetl export runs/flowers --formats tflite-int8,onnx
    edgetl export --pretrained mobilenet_v2 --weights imagenet --calibration-dir photos/ --out runs/imagenet
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import shutil
import time
import traceback
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl._callable import make_callable
from edgetl._version import __version__
from edgetl.errors import EdgetlError
from edgetl.export import calibration, recipes
from edgetl.export.common import ExportSource, sidecar_path
from edgetl.export.edgetpu import export_edgetpu, require_compiler
from edgetl.export.onnx import export_onnx, export_onnx_int8
from edgetl.export.parallel import convert_all
from edgetl.export.tflite import export_tflite_dynamic, export_tflite_fp16, export_tflite_fp32, export_tflite_int8
from edgetl.safety import (
    check_apart, check_number, check_replaceable, disk_errors, manifest, publish, remove_marked, staging_folder, temporary_folder,
)
from edgetl.spec import ModelMetadata, PreprocessingSpec, check_labels, labels_text, read_labels, write_text_atomic

make_callable(__name__)  # `edgetl.export(...)` runs `export()` below

logger = logging.getLogger(__name__)
"""Per-format progress at INFO (the CLI shows it as `==>` lines)."""

IO_DTYPES = ("uint8", "int8")
ONNX_OPSETS = tuple(range(13, 19))
"""Opsets tf2onnx 1.17 converts to and onnxruntime's QDQ quantizer accepts (per-channel needs 13)."""
GOLDEN_IMAGES = 4


@dataclass(frozen=True, kw_only=True)
class Parity:
    """How close an artefact must stay to the float Keras model (read by `edgetl.verify`).

    Attributes:
        atol: Largest allowed |probability difference| on any image and class, or None to judge
            on agreement and accuracy only (quantized formats).
        min_agreement: Smallest allowed share of images where the artefact's top-1 equals the
            float model's.
        max_accuracy_drop: Largest allowed accuracy loss against the float model (0.02 = 2 points).
    """

    atol: float | None = None
    min_agreement: float = 0.98
    max_accuracy_drop: float = 0.02


@dataclass(frozen=True, kw_only=True)
class ExportFormat:
    """One row of the format table.

    Attributes:
        fn: `fn(source, options, out, calib) -> Path`, writing the artefact and its sidecar.
        suffix: File suffix of the artefact.
        accepts: `ExportOptions` fields this format reads.
        parity: Thresholds `edgetl verify` applies to it.
        calibrated: True when it needs calibration images.
        runnable: False when the artefact needs hardware to run (Edge TPU), so verify skips it.
    """

    fn: Callable[..., Path]
    suffix: str
    accepts: frozenset[str] = frozenset()
    parity: Parity = Parity()
    calibrated: bool = False
    runnable: bool = True


_CALIB = frozenset({"calibration_size", "calibration_dir", "quantization"})
FORMATS: dict[str, ExportFormat] = {
    "tflite-fp32": ExportFormat(fn=export_tflite_fp32, suffix=".tflite", parity=Parity(atol=1e-4)),
    # Dynamic range quantizes activations on the fly: probabilities move by up to 0.075 on
    # MobileNetV2-224 cats/dogs (bench/export_parity.py) with 100% agreement, so like int8 it is
    # judged on agreement and accuracy, not on an absolute tolerance.
    "tflite-dynamic": ExportFormat(fn=export_tflite_dynamic, suffix=".tflite", parity=Parity()),
    # Float16 weights move a logit by ~0.3% of the gap between classes (median); on an image that
    # sits near a tie (0.45 vs 0.38 in the demo's digits model) that moves a probability by 0.026
    # and can swap the top-1, where a conversion bug moves every image. So: a tolerance that no
    # bug passes, and a stricter agreement than the integer formats.
    "tflite-fp16": ExportFormat(fn=export_tflite_fp16, suffix=".tflite", parity=Parity(atol=5e-2, min_agreement=0.99)),
    "tflite-int8": ExportFormat(fn=export_tflite_int8, suffix=".tflite", accepts=_CALIB | {"io_dtype"},
                                parity=Parity(), calibrated=True),
    "onnx": ExportFormat(fn=export_onnx, suffix=".onnx", accepts=frozenset({"onnx_opset"}), parity=Parity(atol=1e-4)),
    "onnx-int8": ExportFormat(fn=export_onnx_int8, suffix=".onnx", accepts=_CALIB | {"onnx_opset"},
                              parity=Parity(), calibrated=True),
    "edgetpu": ExportFormat(fn=export_edgetpu, suffix=".tflite", accepts=_CALIB | {"io_dtype"},
                            parity=Parity(), calibrated=True, runnable=False),
}
ALL_FORMATS = ("tflite-fp32", "tflite-dynamic", "tflite-fp16", "tflite-int8", "onnx", "onnx-int8")
"""What `--formats all` means; `edgetpu` must be asked for by name (it needs the compiler)."""


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """What to export and how.

    Attributes:
        formats: Format keys from `FORMATS`, or ("all",) for `ALL_FORMATS`.
        calibration_size: Most images in the int8 calibration set, drawn stratified from the
            training split. Defaults to 200.
        calibration_dir: A folder of images to calibrate on instead of the training split
            (required for `--pretrained` int8 formats). Defaults to None.
        io_dtype: Input/output type of the int8 TFLite model, "uint8" or "int8". uint8 is what
            MediaPipe Tasks, the TFLite Task Library and Coral's examples accept (they reject
            int8 input); the graph inside is int8 either way. Defaults to "uint8".
        onnx_opset: ONNX opset tf2onnx converts to, recorded in the artefact. Defaults to 17.
        output_dir: Where artefacts go; None means `RUN_DIR/export`. Defaults to None.
        seed: Seed of the calibration and golden-image draws. Defaults to 0.
        golden: Write golden vectors (`export/golden/`) for the device tests. Defaults to True.
        quantization: The int8 recipe (`edgetl.export.recipes`): "default" (minmax), "minmax",
            "percentile", "entropy", or "auto" (the best of them by agreement with the float
            model on the validation split). Defaults to "default".
    """

    formats: tuple[str, ...] = ("all",)
    calibration_size: int = 200
    calibration_dir: Path | None = None
    io_dtype: str = "uint8"
    onnx_opset: int = 17
    output_dir: Path | None = None
    seed: int = 0
    golden: bool = True
    quantization: str = "default"

    def __post_init__(self) -> None:
        if isinstance(self.formats, str):
            raise EdgetlError(f"formats must be a tuple of format names. Received: formats={self.formats!r}")
        for name in self.formats:
            if name != "all" and name not in FORMATS:
                close = difflib.get_close_matches(name, [*FORMATS, "all"], n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise EdgetlError(f"Unknown format {name!r}. Valid: all, {', '.join(FORMATS)}.{hint}")
        if not self.formats:
            raise EdgetlError("formats must name at least one format. Received: formats=()")
        check_number("calibration_size", self.calibration_size, 1, 10_000, integer=True)
        check_number("seed", self.seed, 0, 2**32 - 1, integer=True)
        if self.quantization not in recipes.CHOICES:
            raise EdgetlError(f"quantization must be one of {recipes.CHOICES}. Received: quantization={self.quantization!r}")
        if self.io_dtype not in IO_DTYPES:
            raise EdgetlError(f"io_dtype must be one of {IO_DTYPES}. Received: io_dtype={self.io_dtype!r}")
        if self.onnx_opset not in ONNX_OPSETS:
            raise EdgetlError(
                f"onnx_opset must be in {ONNX_OPSETS[0]}..{ONNX_OPSETS[-1]}. Received: onnx_opset={self.onnx_opset}"
            )

    @property
    def resolved_formats(self) -> tuple[str, ...]:
        """The format keys in table order, with "all" expanded."""
        wanted = set(ALL_FORMATS if "all" in self.formats else ()) | {f for f in self.formats if f != "all"}
        return tuple(f for f in FORMATS if f in wanted)


@dataclass(frozen=True)
class ExportResult:
    """The outcome of one format.

    Attributes:
        format: Format key.
        path: The artefact, or None when it failed.
        size_bytes: Its size (0 when it failed).
        seconds: Conversion time.
        error: One-line reason for a failure, or None.
        detail: The failure's traceback (for bug reports), or None.
    """

    format: str
    path: Path | None
    size_bytes: int
    seconds: float
    error: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "path": str(self.path) if self.path else None, "size_bytes": self.size_bytes,
                "seconds": round(self.seconds, 3), "error": self.error}


@dataclass(frozen=True)
class ExportReport:
    """Everything one `export()` call produced.

    Attributes:
        output_dir: The folder holding the artefacts.
        results: One `ExportResult` per requested format, in table order.
        calibration: Summary of the calibration set (count, source, class counts, warnings).
        edgetpu_preflight: Edge TPU pre-flight report of the int8 TFLite model, as a dict.
        golden: The golden-vectors file, or None when not written.
        golden_error: Why golden vectors could not be written, or None.
        seconds: Wall time of the whole export.
        quantization: Per int8 format, the recipe used and the validation disagreements of each
            recipe `auto` tried (`edgetl.export.recipes`).
    """

    output_dir: Path
    results: tuple[ExportResult, ...]
    calibration: dict[str, Any] | None = None
    edgetpu_preflight: dict[str, Any] | None = None
    golden: Path | None = None
    golden_error: str | None = None
    seconds: float = 0.0
    quantization: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> tuple[ExportResult, ...]:
        return tuple(r for r in self.results if r.error is not None)

    @property
    def ok(self) -> bool:
        return not self.failures and self.golden_error is None

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir), "ok": self.ok, "seconds": round(self.seconds, 3),
                "results": [r.to_dict() for r in self.results], "calibration": self.calibration,
                "edgetpu_preflight": self.edgetpu_preflight, "golden": str(self.golden) if self.golden else None,
                "golden_error": self.golden_error, "quantization": self.quantization}


# --- run directories ---------------------------------------------------------------------


def load_run(run_dir: Path) -> tuple[Any, ModelMetadata]:
    """Load a RUN_DIR's Keras model and metadata, checking them against each other.

    Raises:
        EdgetlError: if the model or its labels/preprocessing are missing, unreadable or disagree.
    """
    run_dir = Path(run_dir)
    model_path = _check_run_dir(run_dir)
    meta = read_run_metadata(run_dir)
    import keras

    try:
        model = keras.saving.load_model(model_path, safe_mode=True)
    except Exception as e:  # keras raises ValueError, OSError, TypeError... for a bad file
        if "safe_mode" in str(e):  # a Lambda layer, or a hub backbone's external SavedModel (TFSMLayer)
            what = str(e).split(". ")[0]  # Keras names the layer: a `Lambda`, a `TFSMLayer`
            raise EdgetlError(
                f"Cannot load {model_path}: it holds code or an external SavedModel that Keras' safe_mode "
                f"refuses to load ({what}), and edgetl never turns safe mode off. Runs on a hub: backbone train and "
                "predict in Keras but cannot be exported yet; train on a Keras backbone (e.g. --backbone mobilenet_v2)."
            ) from e
        raise EdgetlError(f"Cannot load {model_path} ({type(e).__name__}: {e})") from e
    height, width = meta.preprocessing.image_size
    in_shape, out_shape = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if in_shape[1:] != (height, width, 3):
        raise EdgetlError(f"model.keras takes {in_shape[1:]} but preprocessing.json says {(height, width, 3)}. Received: {run_dir}")
    if out_shape[-1] != len(meta.labels):
        raise EdgetlError(f"model.keras has {out_shape[-1]} outputs but labels.txt has {len(meta.labels)} labels. Received: {run_dir}")
    return model, meta


def _check_run_dir(run_dir: Path) -> Path:
    model_path = run_dir / "model.keras"
    if not run_dir.is_dir():
        raise EdgetlError(f"Run directory not found. Received: {run_dir}")
    if not model_path.is_file():
        raise EdgetlError(f"{run_dir} has no model.keras; train one with `edgetl train` first. Received: {run_dir}")
    if not zipfile.is_zipfile(model_path):  # Keras would say "File not found" for a truncated file
        raise EdgetlError(f"{model_path} is truncated or corrupt (not a whole .keras archive); train the run again. "
                          f"Received: {run_dir}")
    return model_path


def read_run_metadata(run_dir: Path) -> ModelMetadata:
    """The run's `metadata.json`, or one built from `labels.txt` + `preprocessing.json`."""
    run_dir = Path(run_dir)
    if (run_dir / "metadata.json").is_file():
        meta = ModelMetadata.from_json((run_dir / "metadata.json").read_text(encoding="utf-8"))
    else:
        if not (run_dir / "labels.txt").is_file() or not (run_dir / "preprocessing.json").is_file():
            raise EdgetlError(f"{run_dir} has neither metadata.json nor labels.txt + preprocessing.json.")
        spec = PreprocessingSpec.from_dict(json.loads((run_dir / "preprocessing.json").read_text(encoding="utf-8")))
        meta = ModelMetadata(labels=read_labels(run_dir / "labels.txt"), preprocessing=spec)
    return dataclasses.replace(meta, source_run=meta.source_run or run_dir.name, edgetl_version=__version__)


# --- export --------------------------------------------------------------------------------


def export(run_dir: Path, options: ExportOptions = ExportOptions()) -> ExportReport:
    """Export a training run's model to every requested format.

    Args:
        run_dir: A RUN_DIR written by `edgetl train` (model.keras, labels, splits.json).
        options: What to export. Defaults to `ExportOptions()` (all six formats).

    Returns:
        The report; check `report.ok` (a failed format is in `report.failures`, the others were
        still written).

    Raises:
        EdgetlError: if the run or the options are unusable (before any conversion starts).
    """
    from edgetl.data import read_split

    run_dir = Path(run_dir)
    _validate(options)
    _check_run_dir(run_dir)
    train, test = read_split(run_dir, "train"), read_split(run_dir, "test")
    _check_calibration_source(options, has_train_split=bool(train))
    out_dir = options.output_dir or run_dir / "export"
    if "edgetpu" in options.resolved_formats:
        require_compiler(artefact_path(out_dir, "tflite-int8"))
    model, meta = load_run(run_dir)
    spec = meta.preprocessing

    def calib() -> calibration.CalibrationSet:
        if options.calibration_dir is not None:
            ref = None
            if train:  # the training photos' pixel statistics, to compare the folder with
                sample = calibration.stratified_sample([(c, str(p)) for p, c in train], 64, options.seed)
                ref = calibration.pixel_stats(calibration.decode([Path(p) for _, p in sample], spec))
            return calibration.from_dir(options.calibration_dir, spec, size=options.calibration_size,
                                        seed=options.seed, labels=meta.labels, reference=ref)
        return calibration.from_split(train, meta.labels, spec, size=options.calibration_size, seed=options.seed,
                                      source=f"training split of {run_dir.name}")

    picks = calibration.stratified_sample([(c, str(p)) for p, c in test or []], GOLDEN_IMAGES, options.seed)
    golden = [Path(p) for _, p in picks][:GOLDEN_IMAGES]
    validation = _validation_pixels(run_dir, options, spec)
    return _export(model, meta, out_dir, options, calib, golden,
                   source_model=run_dir / "model.keras", validation=validation)


def _validation_pixels(run_dir: Path, options: ExportOptions, spec: PreprocessingSpec) -> Any:
    """The validation photos `--quantization auto` ranks recipes on (never the test split), or None."""
    from edgetl.data import read_split

    val = read_split(run_dir, "val") if options.quantization == "auto" else None
    if not val:
        if options.quantization == "auto":
            warnings.warn("--quantization auto has no validation split to compare recipes on; using minmax.", stacklevel=3)
        return None
    return calibration.decode([p for p, _ in val], spec)


def _validate(options: ExportOptions) -> None:
    """Cross-field check, before the run is read: no option is set that no requested format reads."""
    formats = options.resolved_formats
    defaults = ExportOptions()
    for name in ("calibration_size", "calibration_dir", "io_dtype", "onnx_opset", "quantization"):
        if getattr(options, name) != getattr(defaults, name) and not any(name in FORMATS[f].accepts for f in formats):
            readers = [f for f in FORMATS if name in FORMATS[f].accepts]
            raise EdgetlError(
                f"{name} is set but none of the requested formats ({', '.join(formats)}) uses it. "
                f"Received: {name}={getattr(options, name)!r}. It applies to: {', '.join(readers)}."
            )


def _check_calibration_source(options: ExportOptions, *, has_train_split: bool) -> None:
    """The int8 formats need photos: --calibration-dir or the run's training split."""
    needs = [f for f in options.resolved_formats if FORMATS[f].calibrated]
    if needs and options.calibration_dir is None and not has_train_split:
        raise EdgetlError(
            f"{', '.join(needs)} need calibration images, and there is no training split (splits.json) to draw "
            "them from. Pass --calibration-dir DIR with a few hundred representative photos, or leave out the int8 formats."
        )


def _export(model: Any, meta: ModelMetadata, out_dir: Path, options: ExportOptions,
            calib_fn: Callable[[], calibration.CalibrationSet], golden_images: Sequence[Path], *,
            source_model: Path, shown_as: Path | None = None, validation: Any = None) -> ExportReport:
    """Build the export in a staging folder beside `out_dir`, then swap it in whole.

    A killed export leaves the previous export untouched (and a marked staging folder that the
    next export removes); `export.json` lists the SHA-256 of every file and of `source_model`.
    The report names `shown_as` (where `out_dir` will finally be) when given. `validation` holds
    the validation photos `--quantization auto` ranks recipes on.
    """
    start = time.perf_counter()
    formats = options.resolved_formats
    out_dir = Path(out_dir)
    check_replaceable(out_dir, "export", flag="export")
    check_apart(out_dir, options.calibration_dir, "calibration folder")
    if any(FORMATS[f].calibrated for f in formats):
        logger.info("calibration: decoding up to %d representative images for %s", options.calibration_size,
                    ", ".join(f for f in formats if FORMATS[f].calibrated))
    calib_set = calib_fn() if any(FORMATS[f].calibrated for f in formats) else None
    calib_pixels = calib_set.as_float() if calib_set is not None else None
    stage = staging_folder(out_dir, "export", "the output folder")
    try:
        with disk_errors(f"the export {shown_as or out_dir}"):
            with temporary_folder("edgetl-export-") as tmp:
                source = ExportSource(model=model, metadata=meta, workdir=tmp, validation=validation)
                results = convert_all(source, options, formats, stage, calib_pixels)
            preflight = _preflight(stage, results)
            golden, golden_error = None, None
            runnable = [r.path for r in results if r.path is not None and FORMATS[r.format].runnable]
            if options.golden and runnable and golden_images:
                logger.info("golden vectors: %d images through %d artefacts", len(golden_images), len(runnable))
                golden, golden_error = _golden(stage, runnable, golden_images)
            report = ExportReport(
                output_dir=stage, results=tuple(results), calibration=calib_set.summary() if calib_set else None,
                edgetpu_preflight=preflight, golden=golden, golden_error=golden_error, seconds=time.perf_counter() - start,
                quantization=_recipes_used(results),
            )
            report = relocated(report, stage, shown_as or out_dir)
            document = {**report.to_dict(), "manifest": manifest(stage, source_model)}
            write_text_atomic(stage / "export.json", json.dumps(document, indent=2, allow_nan=False))
            publish(stage, out_dir)
    except BaseException:
        remove_marked(stage)
        raise
    return report


def relocated(report: ExportReport, old: Path, new: Path) -> ExportReport:
    """The report with every path (and path in a message) under `old` moved under `new`."""

    def move(path: Path | None) -> Path | None:
        return None if path is None else new / Path(path).relative_to(old) if Path(path).is_relative_to(old) else path

    def text(message: str | None) -> str | None:
        return None if message is None else message.replace(str(old), str(new))

    results = tuple(dataclasses.replace(r, path=move(r.path), error=text(r.error), detail=text(r.detail)) for r in report.results)
    return dataclasses.replace(report, output_dir=move(report.output_dir), results=results, golden=move(report.golden),
                               golden_error=text(report.golden_error))


def _recipes_used(results: Sequence[ExportResult]) -> dict[str, Any]:
    """{format: {"recipe", "trials"}} of each int8 artefact written, from its sidecar."""
    used = {}
    for r in results:
        if r.path is not None and FORMATS[r.format].calibrated and sidecar_path(r.path).is_file():
            extra = ModelMetadata.from_json(sidecar_path(r.path).read_text(encoding="utf-8")).extra
            used[r.format] = {"recipe": extra.get("quantization_recipe"), "trials": extra.get("quantization_trials") or {}}
    return used


def artefact_path(out_dir: Path, fmt: str) -> Path:
    """`out_dir/model_{format}{suffix}`."""
    return Path(out_dir) / f"model_{fmt}{FORMATS[fmt].suffix}"


def _timed(fmt: str, fn: Callable[[], Path]) -> ExportResult:
    start = time.perf_counter()
    logger.info("%s: converting", fmt)
    try:
        path = fn()
    except Exception as e:  # converters raise anything; the failure is reported and the export exits non-zero
        message = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        result = ExportResult(format=fmt, path=None, size_bytes=0, seconds=time.perf_counter() - start,
                              error=f"{type(e).__name__}: {message}", detail=traceback.format_exc())
    else:
        result = ExportResult(format=fmt, path=path, size_bytes=path.stat().st_size, seconds=time.perf_counter() - start)
    log_outcome(result)
    return result


def log_outcome(result: ExportResult) -> None:
    """One progress line for a finished format (the worker process's are logged here, on arrival)."""
    if result.path is None:
        logger.info("%s: failed after %.1f s", result.format, result.seconds)
    else:
        logger.info("%s: %s, %.2f MB, %.1f s", result.format, result.path.name, result.size_bytes / 1e6, result.seconds)


def _preflight(out_dir: Path, results: Sequence[ExportResult]) -> dict[str, Any] | None:
    """The Edge TPU pre-flight of the int8 TFLite model, also written to `edgetpu_preflight.json`."""
    from edgetl.export.edgetpu import preflight
    from edgetl.runtime.tflite_reader import read_tflite

    int8 = next((r.path for r in results if r.format == "tflite-int8" and r.path is not None), None)
    if int8 is None:
        return None
    parsed = read_tflite(int8.read_bytes(), source=str(int8))
    report = preflight(parsed["operators"], parsed["inputs"], parsed["outputs"]).to_dict()
    write_text_atomic(out_dir / "edgetpu_preflight.json", json.dumps(report, indent=2))
    return report


def _golden(out_dir: Path, artefacts: Sequence[Path], images: Sequence[Path]) -> tuple[Path | None, str | None]:
    try:
        from edgetl.runtime.golden import write_golden
    except ImportError as e:
        warnings.warn(f"Golden vectors not written: the edgetl runtime is unavailable ({e}).", stacklevel=3)
        return None, None
    golden_dir = out_dir / "golden"
    if golden_dir.exists():
        shutil.rmtree(golden_dir)
    try:
        return Path(write_golden(golden_dir, list(artefacts), list(images))), None
    except EdgetlError as e:
        return None, str(e)


# --- pretrained ImageNet classifiers --------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PretrainedModel:
    """A Keras ImageNet classifier that `export_pretrained` can export as it is.

    Attributes:
        builder: `keras.applications` constructor name.
        scale: Rescaling factor to the backbone's input range.
        offset: Rescaling offset.
        alphas: Width multipliers with ImageNet weights.
        sizes: Input sizes with ImageNet weights.
        normalization: Note stored in the preprocessing spec.
    """

    builder: str
    scale: float
    offset: float
    alphas: tuple[float, ...]
    sizes: tuple[int, ...]
    normalization: str


PRETRAINED: dict[str, PretrainedModel] = {
    "mobilenet_v2": PretrainedModel(
        builder="MobileNetV2", scale=1 / 127.5, offset=-1.0, alphas=(0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
        sizes=(96, 128, 160, 192, 224), normalization="inside the model: x / 127.5 - 1 (MobileNetV2)",
    ),
}


def export_pretrained(name: str, out_dir: Path, options: ExportOptions = ExportOptions(), *,
                      weights: str = "imagenet", alpha: float = 1.0, image_size: int = 224,
                      labels_file: Path | None = None, overwrite: bool = False) -> ExportReport:
    """Export an ImageNet classifier as it is, with its labels, through the same formats.

    `out_dir` is laid out like a RUN_DIR (model.keras, labels.txt, preprocessing.json,
    metadata.json, export/), so `edgetl verify OUT_DIR --data TEST_DIR` works on it.

    Args:
        name: Key of `PRETRAINED` (e.g. "mobilenet_v2").
        out_dir: Folder to create.
        options: Formats etc.; int8 formats need `options.calibration_dir`. Defaults to `ExportOptions()`.
        weights: "imagenet" (Keras' download) or the path of a full-model `.weights.h5` file
            (1000 or 1001 classes). Defaults to "imagenet".
        alpha: Width multiplier. Defaults to 1.0.
        image_size: Square input size. Defaults to 224.
        labels_file: One label per line; required unless `weights="imagenet"` (Keras' 1000 labels).
            Defaults to None.
        overwrite: Replace an existing `out_dir` that an earlier `export_pretrained` made (never a
            trained run, nor a folder edgetl did not make). Defaults to False.

    Raises:
        EdgetlError: for an unknown model, bad weights/alpha/size/labels, missing calibration images,
            or an existing `out_dir` it may not replace.
    """
    entry = PRETRAINED.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, PRETRAINED, n=1)
        raise EdgetlError(f"Unknown pretrained model {name!r}. Valid: {', '.join(PRETRAINED)}." +
                          (f" Did you mean {close[0]!r}?" if close else ""))
    labels = read_labels(Path(labels_file)) if labels_file is not None else None
    check_labels(labels or (), str(labels_file))
    if weights == "imagenet" and (alpha not in entry.alphas or image_size not in entry.sizes):
        raise EdgetlError(f"With weights='imagenet', alpha must be one of {entry.alphas} and image_size one of "
                          f"{entry.sizes}. Received: alpha={alpha}, image_size={image_size}")
    if weights != "imagenet" and not Path(weights).is_file():
        raise EdgetlError(f"weights must be 'imagenet' or an existing .weights.h5 file. Received: weights={weights!r}")
    if not 32 <= image_size <= 1024:
        raise EdgetlError(f"image_size must be in [32, 1024]. Received: image_size={image_size}")
    _validate(options)
    _check_calibration_source(options, has_train_split=False)
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise EdgetlError(f"The output folder already exists; pass --overwrite to replace it. Received: {out_dir}")
    check_replaceable(out_dir, "pretrained")
    if "edgetpu" in options.resolved_formats:
        require_compiler(artefact_path(options.output_dir or out_dir / "export", "tflite-int8"))
    model, num_classes = _build_pretrained(entry, weights, alpha, image_size)
    labels = labels or _imagenet_labels(num_classes)
    if len(labels) != num_classes:
        raise EdgetlError(f"The model has {num_classes} classes but the labels file has {len(labels)} lines. "
                          f"Received: labels_file={labels_file}")
    spec = PreprocessingSpec(image_size=(image_size, image_size), normalization=entry.normalization)
    meta = ModelMetadata(labels=tuple(labels), preprocessing=spec, backbone=name,
                         source_run=f"pretrained:{Path(weights).name if weights != 'imagenet' else 'imagenet'}",
                         edgetl_version=__version__)

    def calib_fn() -> calibration.CalibrationSet:
        return calibration.from_dir(options.calibration_dir, spec, size=options.calibration_size,
                                    seed=options.seed, reference=calibration.IMAGENET_STATS)

    golden = _first_images(Path(options.calibration_dir), GOLDEN_IMAGES) if options.calibration_dir else []
    stage = staging_folder(out_dir, "pretrained", "the output folder")
    try:
        _write_run(stage, model, meta)
        report = _export(model, meta, options.output_dir or stage / "export", options, calib_fn, golden,
                         source_model=stage / "model.keras", shown_as=options.output_dir or out_dir / "export")
        publish(stage, out_dir)
    except BaseException:
        remove_marked(stage)
        raise
    return report


ANDROID_PREFERENCE = ("tflite-int8", "tflite-fp16", "tflite-fp32", "tflite-dynamic")
"""Which artefact the Android demo gets: the fastest that was exported (int8 on phones' CPUs)."""


def copy_to_android_assets(report: ExportReport, assets_dir: str | Path) -> Path:
    """Copy the best exported TFLite model into an Android app's assets as `model.tflite`.

    Labels and preprocessing travel inside the file, so the app needs nothing else.

    Raises:
        EdgetlError: if no TFLite artefact was exported or the folder cannot be written.
    """
    exported = {r.format: r.path for r in report.results if r.path is not None}
    chosen = next((exported[f] for f in ANDROID_PREFERENCE if f in exported), None)
    if chosen is None:
        raise EdgetlError(f"--android-assets needs a TFLite artefact. Received: formats={sorted(exported)}")
    target = Path(assets_dir) / "model.tflite"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(".model.tflite.partial")
        shutil.copyfile(chosen, partial)
        partial.replace(target)
    except OSError as e:
        raise EdgetlError(f"Cannot write the Android asset: {e.strerror}. Received: {target}") from e
    return target


def _first_images(directory: Path, n: int) -> list[Path]:
    from edgetl.runtime.image import is_image_file

    return sorted(p for p in directory.rglob("*") if is_image_file(p))[:n] if directory.is_dir() else []


def _build_pretrained(entry: PretrainedModel, weights: str, alpha: float, size: int) -> tuple[Any, int]:
    """The Keras classifier behind a Rescaling layer, taking [0, 255] pixels; and its class count."""
    import keras

    builder = getattr(keras.applications, entry.builder)
    shape = (size, size, 3)
    base = None
    if weights == "imagenet":
        try:
            base = builder(input_shape=shape, alpha=alpha, include_top=True, weights="imagenet")
        except Exception as e:  # download failures surface as URLError, OSError, Exception
            raise EdgetlError(f"Cannot load Keras' ImageNet weights ({type(e).__name__}: {e}). Without network access, "
                              "pass --weights PATH to a .weights.h5 file.") from e
    else:
        for classes in (1000, 1001):  # Keras' own head, or TF-slim's with a "background" class 0
            candidate = builder(input_shape=shape, alpha=alpha, include_top=True, weights=None, classes=classes)
            try:
                candidate.load_weights(weights)
            except ValueError:
                continue
            base = candidate
            break
        if base is None:
            raise EdgetlError(f"{weights} does not fit {entry.builder}(alpha={alpha}) with a 1000- or 1001-class head.")
    inputs = keras.Input(shape, name="pixels")
    x = keras.layers.Rescaling(entry.scale, offset=entry.offset, name="edgetl_rescale")(inputs)
    outputs = keras.layers.Identity(name="edgetl_probs")(base(x))
    return keras.Model(inputs, outputs, name=f"pretrained_{entry.builder.lower()}"), int(base.outputs[0].shape[-1])


def _imagenet_labels(num_classes: int) -> tuple[str, ...]:
    if num_classes != 1000:
        raise EdgetlError(f"The model has {num_classes} classes; pass --labels FILE with one label per line "
                          "(for 1001-class TF-slim heads, class 0 is 'background').")
    try:
        from keras.src.applications import imagenet_utils

        path = imagenet_utils.file_utils.get_file("imagenet_class_index.json", imagenet_utils.CLASS_INDEX_PATH,
                                                  cache_subdir="models")
        index = json.loads(Path(path).read_text(encoding="utf-8"))
    except Exception as e:  # offline: the download fails with URLError/OSError/Exception
        raise EdgetlError(f"Cannot get Keras' ImageNet labels ({type(e).__name__}); pass --labels FILE.") from e
    return tuple(index[str(i)][1] for i in range(1000))


def _write_run(out_dir: Path, model: Any, meta: ModelMetadata) -> None:
    try:
        model.save(out_dir / "model.keras")
    except OSError as e:
        raise EdgetlError(f"Cannot write {out_dir}: {e.strerror or e}") from e
    write_text_atomic(out_dir / "labels.txt", labels_text(meta.labels))
    write_text_atomic(out_dir / "preprocessing.json", json.dumps(meta.preprocessing.to_dict(), indent=2))
    write_text_atomic(out_dir / "metadata.json", meta.to_json())


__all__ = [
    "ALL_FORMATS", "FORMATS", "PRETRAINED", "ExportFormat", "ExportOptions", "ExportReport", "ExportResult",
    "Parity", "artefact_path", "export", "export_pretrained", "load_run", "read_run_metadata",
]
