"""The export pipeline behind `export()` and `export_pretrained()`: stage, convert, check, publish.

Each format converts on its own (`edgetl.export.parallel`); a format that fails with an expected
error (`EdgetlError`, or an error a converter raises for a model it cannot convert) is reported in
`ExportReport.failures` while the others are still written. Anything else is a bug in edgetl and
propagates with its traceback.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError
from edgetl.export import FORMATS, ExportOptions, ExportReport, ExportResult, calibration
from edgetl.export.common import ExportSource, sidecar_path
from edgetl.export.parallel import ConversionWorker, conversion_worker, convert_all
from edgetl.safety import (
    check_apart,
    check_replaceable,
    disk_errors,
    manifest,
    staged,
    temporary_folder,
)
from edgetl.spec import ModelMetadata, write_text_atomic
from edgetl.verify import float_reference

logger = logging.getLogger("edgetl.export")
"""Per-format progress at INFO (the CLI shows it as `==>` lines)."""

GOLDEN_IMAGES = 4
"""Test photos whose outputs every runnable artefact records in `golden/`."""


def build_export(
    model: Any,
    meta: ModelMetadata,
    out_dir: Path,
    options: ExportOptions,
    calib_fn: Callable[[], calibration.CalibrationSet],
    golden_images: Sequence[Path],
    *,
    source_model: Path,
    shown_as: Path | None = None,
    validation: Any = None,
    worker: ConversionWorker | None = None,
    held_out: Sequence[Path] = (),
    test: Any = None,
) -> ExportReport:
    """Build the export in a staging folder beside `out_dir`, then swap it in whole.

    A killed export leaves the previous export untouched (and a marked staging folder that the
    next export removes); `export.json` lists the SHA-256 of every file and of `source_model`.
    The report names `shown_as` (where `out_dir` will finally be) when given. `validation` holds
    the validation photos `--quantization auto` ranks recipes on. `worker` is a conversion worker
    already started (`conversion_worker`); without one, a worker is started here if it pays off.
    The float model's scores on the `held_out` photos are recorded for verify (`edgetl.verify.float_reference`).
    `test` holds the test photos whose agreement `--target-agreement` reports.
    """
    start = time.perf_counter()
    formats = options.resolved_formats
    out_dir = Path(out_dir)
    check_replaceable(out_dir, "export", flag="export")
    check_apart(out_dir, options.calibration_dir, "calibration folder")
    if any(FORMATS[f].calibrated for f in formats):
        logger.info(
            "calibration: decoding up to %d representative images for %s",
            options.calibration_size,
            ", ".join(f for f in formats if FORMATS[f].calibrated),
        )
    calib_set = calib_fn() if any(FORMATS[f].calibrated for f in formats) else None
    calib_pixels = calib_set.as_float() if calib_set is not None else None
    with staged(out_dir, "export", "the output folder") as stage:
        with disk_errors(f"the export {shown_as or out_dir}"):
            with temporary_folder("edgetl-export-") as tmp:
                source = ExportSource(model=model, metadata=meta, workdir=tmp, validation=validation, test=test)
                started = nullcontext(worker) if worker is not None else conversion_worker(
                    formats, quantization=options.quantization)
                with started as running:
                    results = convert_all(
                        source, options, formats, stage, calib_pixels, running,
                        meanwhile=lambda: float_reference.record(stage, model, held_out, meta.preprocessing,
                                                                 len(meta.labels)),
                    )
            preflight = _preflight(stage, results)
            golden, golden_error = None, None
            runnable = [r.path for r in results if r.path is not None and FORMATS[r.format].runnable]
            if options.golden and runnable and golden_images:
                logger.info("golden vectors: %d images through %d artefacts", len(golden_images), len(runnable))
                golden, golden_error = _golden(stage, runnable, golden_images)
            report = ExportReport(
                output_dir=stage,
                results=tuple(results),
                calibration=calib_set.summary() if calib_set else None,
                edgetpu_preflight=preflight,
                golden=golden,
                golden_error=golden_error,
                seconds=time.perf_counter() - start,
                quantization=_recipes_used(results),
            )
            report = relocated(report, stage, shown_as or out_dir)
            document = {**report.to_dict(), "manifest": manifest(stage, source_model)}
            write_text_atomic(stage / "export.json", json.dumps(document, indent=2, allow_nan=False))
    return report


def relocated(report: ExportReport, old: Path, new: Path) -> ExportReport:
    """The report with every path (and path in a message) under `old` moved under `new`."""

    def move(path: Path | None) -> Path | None:
        return None if path is None else new / Path(path).relative_to(old) if Path(path).is_relative_to(old) else path

    def text(message: str | None) -> str | None:
        return None if message is None else message.replace(str(old), str(new))

    results = tuple(dataclasses.replace(r, path=move(r.path), error=text(r.error)) for r in report.results)
    return dataclasses.replace(
        report,
        output_dir=move(report.output_dir),
        results=results,
        golden=move(report.golden),
        golden_error=text(report.golden_error),
    )


def _recipes_used(results: Sequence[ExportResult]) -> dict[str, Any]:
    """{format: {"recipe", "trials"}} of each int8 artefact written, from its sidecar."""
    used = {}
    for r in results:
        if r.path is not None and FORMATS[r.format].calibrated and sidecar_path(r.path).is_file():
            extra = ModelMetadata.from_json(sidecar_path(r.path).read_text(encoding="utf-8")).extra
            used[r.format] = {
                "recipe": extra.get("quantization_recipe"),
                "trials": extra.get("quantization_trials") or {},
                "weights_rounded": extra.get("weights_rounded"),
                **({"target_agreement": extra["target_agreement"]} if "target_agreement" in extra else {}),
            }
    return used


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
