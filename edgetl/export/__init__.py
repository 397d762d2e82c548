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

The three int8 formats also accept target_agreement (`edgetl.export.target_agreement`); tflite-int8
also full_integer, which keeps it fully integer under a target as edgetpu always is.

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

import difflib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl._callable import make_callable
from edgetl.choices import IO_DTYPES
from edgetl.errors import EdgetlError
from edgetl.export import calibration, recipes
from edgetl.export.edgetpu import export_edgetpu, require_compiler
from edgetl.export.onnx import export_onnx, export_onnx_int8
from edgetl.export.tflite import export_tflite_dynamic, export_tflite_fp16, export_tflite_fp32, export_tflite_int8
from edgetl.rundir import check_run_dir, load_run, read_run_metadata, read_split
from edgetl.safety import check_no_dangling_link, check_number
from edgetl.spec import PreprocessingSpec

make_callable(__name__)  # `edgetl.export(...)` runs `export()` below

ONNX_OPSETS = tuple(range(13, 19))
"""Opsets tf2onnx 1.17 converts to and onnxruntime's QDQ quantizer accepts (per-channel needs 13)."""


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
    "tflite-int8": ExportFormat(fn=export_tflite_int8, suffix=".tflite",
                                accepts=_CALIB | {"io_dtype", "target_agreement", "full_integer"},
                                parity=Parity(), calibrated=True),
    "onnx": ExportFormat(fn=export_onnx, suffix=".onnx", accepts=frozenset({"onnx_opset"}), parity=Parity(atol=1e-4)),
    "onnx-int8": ExportFormat(fn=export_onnx_int8, suffix=".onnx", accepts=_CALIB | {"onnx_opset", "target_agreement"},
                              parity=Parity(), calibrated=True),
    "edgetpu": ExportFormat(fn=export_edgetpu, suffix=".tflite", accepts=_CALIB | {"io_dtype", "target_agreement"},
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
        quantization: The int8 recipe (`edgetl.export.recipes`): "default" (gptq), "gptq",
            "minmax", "percentile", "entropy", or "auto" (the best of them by agreement with the
            float model on the validation split). Defaults to "default".
        target_agreement: Keep the int8 model's most sensitive layers in float until its top-1 equals
            the float model's on at least this share of the validation photos, or fail the format
            (`edgetl.export.target_agreement`). None keeps every layer int8. Defaults to None.
        full_integer: With `target_agreement`, tflite-int8 keeps every op integer: it only checks the
            target. Defaults to False.
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
    target_agreement: float | None = None
    full_integer: bool = False

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
        check_number("target_agreement", self.target_agreement, 0.0, 1.0, allow_none=True)
        if self.full_integer and self.target_agreement is None:
            raise EdgetlError("full_integer only applies with target_agreement (tflite-int8 is fully integer "
                              "otherwise). Received: full_integer=True, target_agreement=None")
        if self.quantization not in recipes.CHOICES:
            raise EdgetlError(
                f"quantization must be one of {recipes.CHOICES}. Received: quantization={self.quantization!r}"
            )
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
    """

    format: str
    path: Path | None
    size_bytes: int
    seconds: float
    error: str | None = None

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


# --- export --------------------------------------------------------------------------------


def artefact_path(out_dir: Path, fmt: str) -> Path:
    """`out_dir/model_{format}{suffix}`."""
    return Path(out_dir) / f"model_{fmt}{FORMATS[fmt].suffix}"


def export(run_dir: Path, options: ExportOptions = ExportOptions(), *, wait: bool = False) -> ExportReport:
    """Export a training run's model to every requested format.

    The RUN_DIR (and `options.output_dir`, when elsewhere) is locked while the export runs
    (`edgetl.runlock`): a second export, a `train --overwrite` or a `verify` of it waits or stops.

    Args:
        run_dir: A RUN_DIR written by `edgetl train` (model.keras, labels, splits.json).
        options: What to export. Defaults to `ExportOptions()` (all six formats).
        wait: Wait for another process writing the run instead of raising `FolderBusy`.
            Defaults to False.

    Returns:
        The report; check `report.ok` (a failed format is in `report.failures`, the others were
        still written).

    Raises:
        EdgetlError: if the run or the options are unusable (before any conversion starts);
            `edgetl.runlock.FolderBusy` while another process writes the run.
    """
    from edgetl.runlock import folder_locks

    run_dir = Path(run_dir)
    check_formats_options(options)
    if options.output_dir is not None:
        check_no_dangling_link(options.output_dir, "--out")
    if not run_dir.is_dir():
        raise EdgetlError(f"Run directory not found. Received: {run_dir}")
    with folder_locks([run_dir, *([options.output_dir] if options.output_dir else [])], "edgetl export", wait=wait):
        return _export_locked(run_dir, options)


def _export_locked(run_dir: Path, options: ExportOptions) -> ExportReport:
    """`export` once the run is locked."""
    from edgetl.export.parallel import conversion_worker
    from edgetl.export.pipeline import GOLDEN_IMAGES, build_export
    from edgetl.verify.sample_gate import held_out_split

    check_run_dir(run_dir)
    train, test = read_split(run_dir, "train"), read_split(run_dir, "test")
    check_calibration_source(options, has_train_split=bool(train))
    out_dir = options.output_dir or run_dir / "export"
    if "edgetpu" in options.resolved_formats:
        require_compiler(artefact_path(out_dir, "tflite-int8"))
    # The conversion worker starts first: it imports TensorFlow and builds the SavedModel from
    # model.keras while this process loads the model (see edgetl.export.parallel).
    with conversion_worker(options.resolved_formats, run_dir / "model.keras", read_run_metadata(run_dir),
                           quantization=options.quantization,
                           keep_here=("tflite-int8",) if options.target_agreement is not None else ()) as worker:
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
        held_out = [path for path, _ in held_out_split(run_dir) or []]
        tested = calibration.decode([p for p, _ in test or []], spec) if options.target_agreement is not None else None
        return build_export(model, meta, out_dir, options, calib, golden, source_model=run_dir / "model.keras",
                            validation=validation, worker=worker, held_out=held_out, test=tested)


def _validation_pixels(run_dir: Path, options: ExportOptions, spec: PreprocessingSpec) -> Any:
    """The validation photos `--quantization auto` ranks recipes on and `--target-agreement` chooses
    layers on (never the test split), or None."""
    if options.target_agreement is not None:
        val = read_split(run_dir, "val")
        if not val:
            raise EdgetlError("--target-agreement is measured on the run's validation split, and this run has none. "
                              f"Train it with a validation split, or leave the option out. Received: {run_dir}")
        return calibration.decode([p for p, _ in val], spec)
    val = read_split(run_dir, "val") if options.quantization == "auto" else None
    if not val:
        if options.quantization == "auto":
            warnings.warn(
                "--quantization auto has no validation split to compare recipes on; using gptq.", stacklevel=4
            )
        return None
    return calibration.decode([p for p, _ in val], spec)


def check_formats_options(options: ExportOptions) -> None:
    """Cross-field check, before the run is read: no option is set that no requested format reads."""
    formats = options.resolved_formats
    defaults = ExportOptions()
    for name in ("calibration_size", "calibration_dir", "io_dtype", "onnx_opset", "quantization", "target_agreement",
                 "full_integer"):
        if getattr(options, name) != getattr(defaults, name) and not any(name in FORMATS[f].accepts for f in formats):
            readers = [f for f in FORMATS if name in FORMATS[f].accepts]
            raise EdgetlError(
                f"{name} is set but none of the requested formats ({', '.join(formats)}) uses it. "
                f"Received: {name}={getattr(options, name)!r}. It applies to: {', '.join(readers)}."
            )


def check_calibration_source(options: ExportOptions, *, has_train_split: bool) -> None:
    """The int8 formats need photos: --calibration-dir or the run's training split."""
    needs = [f for f in options.resolved_formats if FORMATS[f].calibrated]
    if needs and options.calibration_dir is None and not has_train_split:
        raise EdgetlError(
            f"{', '.join(needs)} need calibration images, and there is no training split (splits.json) to draw "
            "them from. Pass --calibration-dir DIR with a few hundred representative photos, or leave out the "
            "int8 formats."
        )


# Defined in modules that build on this one (importing them here would be a cycle), loaded on first use.
_LAZY = {
    "PRETRAINED": "edgetl.export.pretrained",
    "export_pretrained": "edgetl.export.pretrained",
    "copy_to_android_assets": "edgetl.export.android",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = [
    "ALL_FORMATS", "FORMATS", "PRETRAINED", "ExportFormat", "ExportOptions", "ExportReport", "ExportResult",
    "Parity", "artefact_path", "copy_to_android_assets", "export", "export_pretrained", "load_run",
    "read_run_metadata",
]
