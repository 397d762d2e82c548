"""`edgetl export`: a run or a pretrained classifier to TFLite/ONNX; exit 1 when a format failed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgetl import render
from edgetl.choices import IO_DTYPES
from edgetl.cli.common import (
    WAIT_HELP,
    app,
    call_api,
    choice_enum,
    console,
    err_console,
    require_toolchain,
    split_formats,
)
from edgetl.errors import EdgetlError
from edgetl.render import show_progress
from edgetl.spec import escaped

IoDtype = choice_enum("IoDtype", IO_DTYPES)


@app.command("export")
def export_command(
    run_dir: Annotated[Optional[Path], typer.Argument(
        help="RUN_DIR written by `edgetl train` (omit with --pretrained).",
    )] = None,
    formats: Annotated[list[str], typer.Option(
        "--formats", "-f",
        help="Comma-separated or repeated: all (default), tflite-fp32, tflite-dynamic, tflite-fp16, tflite-int8, onnx, "
        "onnx-int8, edgetpu.",
    )] = ["all"],  # noqa: B006
    calibration_size: Annotated[int, typer.Option(
        help="Most images in the int8 calibration set, drawn stratified from the training split.",
    )] = 200,
    calibration_dir: Annotated[Optional[Path], typer.Option(
        help="Folder of representative photos to calibrate int8 on instead of the training split (needed with "
        "--pretrained).",
    )] = None,
    io_dtype: Annotated[IoDtype, typer.Option(
        help="Input/output type of the int8 TFLite model: uint8 (what MediaPipe, the TFLite Task Library and Coral "
        "read) or int8.",
    )] = IoDtype.uint8,
    onnx_opset: Annotated[int, typer.Option(help="ONNX opset (13-18), recorded in the artefact.")] = 17,
    quantization: Annotated[str, typer.Option(
        help="Int8 recipe: default (gptq: error-compensating weight rounding), gptq, gptq-bc (plus bias "
        "correction), minmax (plain converters), percentile, entropy, or auto (the best by "
        "agreement on the validation split).",
    )] = "default",
    target_agreement: Annotated[Optional[float], typer.Option(
        help="Int8: keep the most sensitive layers in float until the top-1 equals the float model's on at least "
        "this share of the validation photos (e.g. 0.995), or fail the format.",
    )] = None,
    full_integer: Annotated[bool, typer.Option(
        "--full-integer",
        help="With --target-agreement: tflite-int8 keeps every op integer and fails when it misses the target.",
    )] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o",
        help="Output folder: default RUN_DIR/export; with --pretrained the run-like folder to create.",
    )] = None,
    pretrained: Annotated[Optional[str], typer.Option(
        help="Export an ImageNet classifier as it is: mobilenet_v2.",
    )] = None,
    weights: Annotated[str, typer.Option(
        help="With --pretrained: imagenet (Keras' download) or PATH of a full-model .weights.h5 (1000 or 1001 "
        "classes).",
    )] = "imagenet",
    alpha: Annotated[float, typer.Option(help="With --pretrained: width multiplier.")] = 1.0,
    image_size: Annotated[int, typer.Option(help="With --pretrained: square input size in pixels.")] = 224,
    labels: Annotated[Optional[Path], typer.Option(
        help="With --pretrained: labels file, one per line (required for 1001-class weights).",
    )] = None,
    golden: Annotated[bool, typer.Option(
        "--golden/--no-golden",
        help="Write golden vectors for device self-tests into export/golden/.",
    )] = True,
    overwrite: Annotated[bool, typer.Option(
        help="With --pretrained: replace an --out folder that an earlier --pretrained export made.",
    )] = False,
    android_assets: Annotated[Optional[Path], typer.Option(
        help="Also copy the best TFLite model (int8 first) there as model.tflite, e.g. "
        "android_demo/app/src/main/assets.",
    )] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the export report as JSON on stdout.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
) -> None:
    """Export a run (or a pretrained ImageNet classifier) to TFLite and ONNX with embedded metadata."""
    require_toolchain("export")
    import json

    from edgetl.export import ExportOptions, copy_to_android_assets, export, export_pretrained
    from edgetl.export.android import check_android_assets
    from edgetl.streams import note_done

    def run() -> Any:
        if (run_dir is None) == (pretrained is None):
            raise EdgetlError("Give either RUN_DIR or --pretrained NAME --out DIR. "
                              f"Received: run_dir={run_dir}, pretrained={pretrained}")
        if pretrained is not None and out is None:
            raise EdgetlError(
                f"--pretrained needs --out DIR, the folder to create. Received: pretrained={pretrained!r}"
            )
        pretrained_only = {"--weights": weights != "imagenet", "--alpha": alpha != 1.0,
                           "--image-size": image_size != 224, "--labels": labels is not None, "--overwrite": overwrite}
        if run_dir is not None and any(pretrained_only.values()):
            given = ", ".join(name for name, set_ in pretrained_only.items() if set_)
            raise EdgetlError(f"{given} only apply with --pretrained; a run's model, labels and size are its own "
                              f"(and its export is always replaced). Received: run_dir={run_dir}")
        options = ExportOptions(
            formats=split_formats(formats), calibration_size=calibration_size, calibration_dir=calibration_dir,
            io_dtype=io_dtype.value, onnx_opset=onnx_opset, golden=golden, quantization=quantization,
            output_dir=out if run_dir is not None else None, target_agreement=target_agreement,
            full_integer=full_integer,
        )
        if android_assets is not None:  # checked before the old export is replaced
            check_android_assets(android_assets, options.resolved_formats, run_dir, calibration_dir)
        if pretrained is not None:
            return export_pretrained(pretrained, out, options, weights=weights, alpha=alpha, image_size=image_size,
                                     labels_file=labels, overwrite=overwrite, wait=wait)
        return export(run_dir, options, wait=wait)

    show_progress(err_console if json_output else console)
    report = call_api(run)
    note_done(f"the export is in place in {escaped(str(report.output_dir))}")
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render.print_export(console, report)
    if android_assets is not None:
        asset = call_api(copy_to_android_assets, report, android_assets)
        (err_console if json_output else console).print(f"Android asset: {asset}", markup=False, highlight=False)
    for failure in report.failures:
        err_console.print(f"error: {failure.format} failed: {failure.error}", markup=False, highlight=False)
    if report.golden_error:
        err_console.print(f"error: golden vectors: {report.golden_error}", markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)
