"""Hand an export to the Android demo app: the best TFLite artefact as `assets/model.tflite`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from edgetl.errors import EdgetlError
from edgetl.safety import check_apart, check_no_dangling_link
from edgetl.spec import atomic_path

if TYPE_CHECKING:
    from edgetl.export import ExportReport

ANDROID_PREFERENCE = ("tflite-int8", "tflite-fp16", "tflite-fp32", "tflite-dynamic")
"""Which artefact the Android demo gets: the fastest that was exported (int8 on phones' CPUs)."""


def check_android_assets(assets_dir: Path, formats: tuple[str, ...], run_dir: Path | None,
                         calibration_dir: Path | None = None) -> None:
    """Refuse, before the export starts, an export of no TFLite `formats`, or an assets folder
    inside the run's photos (DATA_DIR) or the calibration photos, through a dangling symbolic
    link, or that is a file. Thread-safe (reads only).

    It was once checked only after the export, when the old export had been replaced already.

    Raises:
        EdgetlError: naming the folder and why.
    """
    from edgetl.rundir import run_data_dir

    if not set(formats) & set(ANDROID_PREFERENCE):
        raise EdgetlError(f"--android-assets needs a TFLite format. Received: formats={list(formats)}")
    check_no_dangling_link(Path(assets_dir), "--android-assets")
    if Path(assets_dir).exists() and not Path(assets_dir).is_dir():
        raise EdgetlError(f"--android-assets must be a folder. Received: {assets_dir}")
    check_apart(assets_dir, run_data_dir(run_dir) if run_dir is not None else None, "data folder (DATA_DIR)")
    check_apart(assets_dir, calibration_dir, "calibration folder")


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
        with atomic_path(target) as partial:
            shutil.copyfile(chosen, partial)
    except OSError as e:
        raise EdgetlError(f"Cannot write the Android asset: {e.strerror}. Received: {target}") from e
    return target
