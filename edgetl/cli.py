"""The `edgetl` command line: a thin Typer layer over the Python API.

This is the only module that knows about the terminal and chooses exit codes:
0 success, 1 a negative verdict (parity or self-test failed), 2 bad input (`EdgetlError`).
Heavy modules are imported inside each command so that `edgetl --help` stays fast.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from edgetl import render
from edgetl._version import __version__
from edgetl.choices import DEVICES, IO_DTYPES, PRECISIONS, STRATEGIES
from edgetl.errors import EdgetlError
from edgetl.render import keras_verbosity, make_console, show_progress
from edgetl.spec import escaped

app = typer.Typer(
    name="edgetl",
    help="Train an image classifier from a folder of photos, export it for the edge, verify it, run it.",
    no_args_is_help=True,
    add_completion=False,
)
console = make_console()
err_console = make_console(stderr=True)

T = TypeVar("T")


def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the API; an `EdgetlError` becomes one line on stderr and exit code 2."""
    try:
        return fn(*args, **kwargs)
    except EdgetlError as e:
        err_console.print(f"error: {escaped(str(e))}", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        import signal

        # Exiting: more Ctrl-C presses would only break the exit's own joins (the export's worker) with tracebacks.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        err_console.print("error: interrupted", markup=False, highlight=False)
        raise typer.Exit(code=130) from None


TOOLCHAIN = {
    "train": ("keras",), "verify": ("keras",), "export": ("tensorflow", "keras"), "demo": ("tensorflow", "keras"),
}
"""What each command beyond the device runtime imports; `pip install edgetl[runtime]` has none of it."""


def _require_toolchain(command: str) -> None:
    """Say in one line what to install when a device install runs a training-side command (exit 2)."""
    import importlib.util

    missing = [name for name in TOOLCHAIN[command] if importlib.util.find_spec(name) is None]
    if missing:
        err_console.print(
            f"error: `edgetl {command}` needs the full toolchain ({', '.join(missing)} missing here): "
            "pip install 'edgetl[full]'. This install runs predict, inspect, bench and selftest.",
            markup=False, highlight=False,
        )
        raise typer.Exit(code=2)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"edgetl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit.",
    ),
) -> None:
    """edgetl: photos -> transfer-learned classifier -> TFLite/ONNX -> verified -> on the device."""


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Warnings reach the terminal as one `warning: ...` line, not Python's file:line form."""
    err_console.print(f"warning: {escaped(str(message))}", markup=False, highlight=False)


def main() -> None:
    # TensorFlow's C++ INFO lines (oneDNN, CPU features) say nothing a user can act on.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.showwarning = _show_warning
    try:
        app()
    except SystemExit as e:
        from edgetl.safety import hdf5_files_left_open

        if e.code == 2 and hdf5_files_left_open():
            # A weights file whose write hit a full disk is still open inside h5py; at the
            # interpreter's exit HDF5 retries the write and crashes (rc 139). Its error is out.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        raise


# --- train commands ---


def _choices(name: str, values: tuple[str, ...]) -> Any:
    """A `str` Enum of the API's own values, which Typer lists in the help and checks."""
    return Enum(name, {value.replace("-", "_"): value for value in values}, type=str)


WAIT_HELP = "When another edgetl process writes this run, wait for it to finish (default: exit 2 naming it)."
Strategy = _choices("Strategy", STRATEGIES)
Device = _choices("Device", DEVICES)
Precision = _choices("Precision", PRECISIONS)


@app.command()
def train(
    data_dir: Annotated[Path, typer.Argument(
        help="Folder of class folders: DATA_DIR/<class>/*.jpg (or train/ val/ test/ split folders).",
    )],
    out: Annotated[Path, typer.Option(
        "--out", "-o",
        help="The RUN_DIR to create.",
        rich_help_panel="Output",
    )] = Path("runs/run"),
    backbone: Annotated[str, typer.Option(
        help="mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0, resnet50_v2, densenet201, or "
        "hub:HANDLE (a TF-Hub handle or local SavedModel).",
        rich_help_panel="Model",
    )] = "mobilenet_v2",
    alpha: Annotated[float, typer.Option(
        help="Width multiplier of MobileNet backbones.",
        rich_help_panel="Model",
    )] = 1.0,
    weights: Annotated[str, typer.Option(
        help="imagenet (Keras' download), none (random), or PATH of a local weights file for the headless backbone.",
        rich_help_panel="Model",
    )] = "imagenet",
    image_size: Annotated[Optional[int], typer.Option(
        help="Square input size in pixels (default: the backbone's, 224; 128 for scratch).",
        rich_help_panel="Model",
    )] = None,
    strategy: Annotated[Strategy, typer.Option(
        help="feature-extract: frozen backbone + new head; fine-tune: then the last N layers at a low rate; scratch: "
        "small CNN baseline; linear: logistic regression on pooled features; full: train every layer.",
        rich_help_panel="Training",
    )] = Strategy.feature_extract,
    epochs: Annotated[Optional[int], typer.Option(
        help="Epochs of the head, or of the whole network for scratch and full (default: 10; 40 for scratch, which "
        "starts from random weights).",
        rich_help_panel="Training",
    )] = None,
    fine_tune_epochs: Annotated[Optional[int], typer.Option(
        help="Epochs of the fine-tuning stage (default: --epochs).",
        rich_help_panel="Training",
    )] = None,
    fine_tune_layers: Annotated[int, typer.Option(
        help="Backbone layers (with weights, batch-norm excepted) trained when fine-tuning.",
        rich_help_panel="Training",
    )] = 10,
    learning_rate: Annotated[float, typer.Option(
        help="Learning rate of the head / scratch CNN.",
        rich_help_panel="Training",
    )] = 1e-3,
    fine_tune_learning_rate: Annotated[float, typer.Option(
        help="The low learning rate of fine-tuning.",
        rich_help_panel="Training",
    )] = 1e-4,
    batch_size: Annotated[Optional[int], typer.Option(
        help="Images per step (default: 32 on a CPU; 128 on a GPU, both learning rates then scaled by sqrt(128/32)).",
        rich_help_panel="Training",
    )] = None,
    augment: Annotated[Optional[bool], typer.Option(
        "--augment/--no-augment",
        help="Random flip/rotation/zoom/contrast. Default: on for fine-tune and scratch; off for feature-extract and "
        "linear, which then train on cached features (many times faster).",
        rich_help_panel="Training",
    )] = None,
    val_split: Annotated[float, typer.Option(
        help="Share of each class held out for validation.",
        rich_help_panel="Data",
    )] = 0.15,
    test_split: Annotated[float, typer.Option(
        help="Share of each class held out for the final test.",
        rich_help_panel="Data",
    )] = 0.15,
    subset: Annotated[float, typer.Option(
        help="Use only this share of the photos (quick tries).",
        rich_help_panel="Data",
    )] = 1.0,
    seed: Annotated[int, typer.Option(
        help="Seed of splits, initialization and augmentation.",
        rich_help_panel="Training",
    )] = 0,
    strict: Annotated[bool, typer.Option(
        help="Unreadable photos are an error instead of being skipped with a warning.",
        rich_help_panel="Data",
    )] = False,
    device: Annotated[Device, typer.Option(
        help="auto uses a GPU when the Keras backend sees one.",
        rich_help_panel="Hardware",
    )] = Device.auto,
    precision: Annotated[Precision, typer.Option(
        help="mixed: bfloat16/float16 compute on a GPU; the saved model stays float32.",
        rich_help_panel="Hardware",
    )] = Precision.float32,
    data_parallel: Annotated[Optional[bool], typer.Option(
        "--data-parallel/--no-data-parallel",
        help="Split each batch across all devices (Keras distribution API, KERAS_BACKEND=jax). Default: on when JAX "
        "sees several GPUs.",
        rich_help_panel="Hardware",
    )] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Replace an existing RUN_DIR (only once the new run is whole).",
        rich_help_panel="Output",
    )] = False,
    resume: Annotated[bool, typer.Option(
        help="Continue an interrupted run of this RUN_DIR from its last finished epoch.",
        rich_help_panel="Output",
    )] = False,
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP, rich_help_panel="Output")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.", rich_help_panel="Output")] = False,
    json_output: Annotated[bool, typer.Option(
        "--json",
        help="Print the run's metrics as JSON on stdout (progress goes to stderr).",
        rich_help_panel="Output",
    )] = False,
) -> None:
    """Train a transfer-learning classifier on a folder of labelled photos."""
    _require_toolchain("train")
    import contextlib
    import json
    import sys

    from edgetl.backbones import BackboneOptions
    from edgetl.train import TrainOptions
    from edgetl.train import train as train_api

    def run() -> Any:
        backbone_options = BackboneOptions(name=backbone, alpha=alpha, image_size=image_size, weights=weights)
        options = TrainOptions(
            strategy=strategy.value, epochs=epochs, fine_tune_epochs=fine_tune_epochs,
            fine_tune_layers=fine_tune_layers, learning_rate=learning_rate,
            fine_tune_learning_rate=fine_tune_learning_rate, batch_size=batch_size, augment=augment,
            val_split=val_split, test_split=test_split, subset=subset, seed=seed, strict=strict, device=device.value,
            precision=precision.value, data_parallel=data_parallel,
        )
        return train_api(data_dir, out, backbone=backbone_options, options=options, overwrite=overwrite, resume=resume,
                         verbose=keras_verbosity(quiet), wait=wait)

    show_progress(None if quiet else err_console if json_output else console)
    # With --json, stdout carries only the JSON document: Keras' epoch lines go to stderr (and
    # keras_verbosity, called inside, judges that stream).
    with contextlib.redirect_stdout(sys.stderr) if json_output else contextlib.nullcontext():
        result = _run(run)
    metrics = result.metrics
    if json_output:
        typer.echo(json.dumps({"run_dir": str(result.run_dir), **metrics}, indent=2, ensure_ascii=False))
        return
    render.print_train(console, result)


# --- runtime commands ---


class DelegateChoice(str, Enum):
    edgetpu = "edgetpu"


def _runtime_warnings(caught: list[Any]) -> None:
    """Show warnings raised while opening a model (e.g. a labels file of the wrong length) as one line each."""
    for warning in caught:
        err_console.print(f"warning: {escaped(str(warning.message))}", markup=False, highlight=False)


def _open_classifier(
    model: Path, *, threads: int | None, delegate: DelegateChoice | None, labels: Path | None = None,
) -> Any:
    import warnings

    from edgetl.runtime import Classifier

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = _run(Classifier.from_file, model, threads=threads, delegate=delegate.value if delegate else None,
                   labels=labels)
    _runtime_warnings(caught)
    return clf


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="Model file (.tflite or .onnx).")],
    images: Annotated[list[Path], typer.Argument(
        help="Photos to classify, or folders: every photo below them, sorted.",
    )],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Classes shown per photo.")] = 3,
    labels: Annotated[Optional[Path], typer.Option(
        help="Labels file (one per line) overriding the model's own labels.",
    )] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
    threads: Annotated[Optional[int], typer.Option(
        min=1,
        help="Interpreter threads (default: the interpreter's).",
    )] = None,
    delegate: Annotated[Optional[DelegateChoice], typer.Option(
        help="Run on an accelerator: edgetpu loads libedgetpu.so.1.",
    )] = None,
) -> None:
    """Classify photos with an exported model; labels and preprocessing are read from the model file."""
    import json

    from edgetl.runtime.classifier import prediction_records
    from edgetl.runtime.image import expand_image_paths

    clf = _open_classifier(model, threads=threads, delegate=delegate, labels=labels)
    images = _run(expand_image_paths, images)
    results = _run(clf.classify, images, top_k=top_k)
    if json_output:
        typer.echo(json.dumps(prediction_records(images, results), indent=2, ensure_ascii=False))
        return
    render.print_predictions(console, f"{model.name} ({clf.backend})", images, results)


@app.command()
def bench(
    model: Annotated[Path, typer.Argument(help="Model file (.tflite or .onnx).")],
    threads: Annotated[Optional[int], typer.Option(
        min=1,
        help="Interpreter threads (default: the interpreter's).",
    )] = None,
    runs: Annotated[int, typer.Option(min=1, help="Timed iterations.")] = 100,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed iterations first.")] = 10,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
    delegate: Annotated[Optional[DelegateChoice], typer.Option(
        help="Run on an accelerator: edgetpu loads libedgetpu.so.1.",
    )] = None,
    images: Annotated[Optional[Path], typer.Option(
        "--images",
        help="A folder of photos: also time classify on them end to end (decode + resize + invoke).",
    )] = None,
) -> None:
    """Time a model: p50/p90/p99 latency, images/s, and the runner's overhead over a bare invoke()."""
    import json

    from edgetl.runtime.benchmark import benchmark, photo_files

    clf = _open_classifier(model, threads=threads, delegate=delegate)
    photos = _run(photo_files, images) if images is not None else []
    report = _run(benchmark, clf, runs=runs, warmup=warmup, photos=photos)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    render.print_benchmark(console, model.name, report)


@app.command()
def selftest(
    model: Annotated[Path, typer.Argument(help="Model file (.tflite or .onnx) to check on this device.")],
    golden: Annotated[Optional[Path], typer.Option(
        help="Folder with golden.json (default: golden/ beside the model).",
    )] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
) -> None:
    """Re-run a model on its golden vectors; exit 0 if every image matches, 1 if any differs."""
    import json

    from edgetl.runtime.golden import check_golden

    report = _run(check_golden, model, golden if golden is not None else model.parent / "golden")
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render.print_selftest(console, model.name, report)
    raise typer.Exit(code=0 if report.passed else 1)


# --- export commands ---


IoDtype = _choices("IoDtype", IO_DTYPES)


def _split_formats(values: list[str]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


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
        help="Int8 recipe: default (gptq: error-compensating weight rounding), gptq, minmax (plain converters), "
        "percentile, entropy, or auto (the best by agreement on the validation split).",
    )] = "default",
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
    _require_toolchain("export")
    import json

    from edgetl.export import ExportOptions, copy_to_android_assets, export, export_pretrained
    from edgetl.export.android import check_android_assets

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
            formats=_split_formats(formats), calibration_size=calibration_size, calibration_dir=calibration_dir,
            io_dtype=io_dtype.value, onnx_opset=onnx_opset, golden=golden, quantization=quantization,
            output_dir=out if run_dir is not None else None,
        )
        if android_assets is not None:  # checked before the old export is replaced
            check_android_assets(android_assets, options.resolved_formats, run_dir, calibration_dir)
        if pretrained is not None:
            return export_pretrained(pretrained, out, options, weights=weights, alpha=alpha, image_size=image_size,
                                     labels_file=labels, overwrite=overwrite, wait=wait)
        return export(run_dir, options, wait=wait)

    show_progress(err_console if json_output else console)
    report = _run(run)
    if json_output:
        _echo_json_report(json.dumps(report.to_dict(), indent=2), report.output_dir)
    else:
        render.print_export(console, report)
    if android_assets is not None:
        asset = _run(copy_to_android_assets, report, android_assets)
        (err_console if json_output else console).print(f"Android asset: {asset}", markup=False, highlight=False)
    for failure in report.failures:
        err_console.print(f"error: {failure.format} failed: {failure.error}", markup=False, highlight=False)
    if report.golden_error:
        err_console.print(f"error: golden vectors: {report.golden_error}", markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)


def _echo_json_report(document: str, output_dir: Path) -> None:
    """Print an export's --json report; when stdout cannot take it, say plainly that the export is in place."""
    try:
        typer.echo(document)
    except OSError as e:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered goes nowhere
        err_console.print(f"error: the export is in place in {output_dir} (its report is export.json there), but the "
                          f"--json report could not be written to stdout: {os.strerror(e.errno or 0)}",
                          markup=False, highlight=False)
        raise typer.Exit(code=2) from None


@app.command("verify")
def verify_command(
    run_dir: Annotated[Path, typer.Argument(help="RUN_DIR with model.keras and export/.")],
    data: Annotated[Optional[Path], typer.Option(
        help="TEST_DIR of <class>/<image> folders named as the run's labels, or of unlabelled photos (default: every "
        "held-out photo of the run, its validation and test splits).",
    )] = None,
    probe: Annotated[Optional[Path], typer.Option(
        help="A folder of further unlabelled photos that count towards agreement (not accuracy).",
    )] = None,
    min_agreement: Annotated[Optional[float], typer.Option(
        help="Minimum share of images where an artefact's top-1 equals the float model's (default: each format's "
        "parity row, 0.98; 0.99 for tflite-fp16).",
    )] = None,
    max_accuracy_drop: Annotated[Optional[float], typer.Option(
        help="Maximum accuracy loss against the float model, 0.02 = 2 points (default 0.02).",
    )] = None,
    max_images: Annotated[Optional[int], typer.Option(
        min=1,
        help="Compare at most this many images (a seeded draw).",
    )] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Interpreter threads for the artefacts.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    allow_unproven: Annotated[bool, typer.Option(
        "--allow-unproven",
        help="Check an export without export.json (its manifest) on the artefacts' own metadata, with a warning "
        "(default: exit 2, as nothing proves they come from this model.keras).",
    )] = False,
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
) -> None:
    """Check every artefact against the float Keras model; exit 1 naming each one that fails."""
    _require_toolchain("verify")
    import json

    from edgetl.verify import verify

    show_progress(err_console)  # with --wait: whom it waits for
    report = _run(verify, run_dir, data=data, probe=probe, min_agreement=min_agreement,
                  max_accuracy_drop=max_accuracy_drop, max_images=max_images, threads=threads,
                  allow_unproven=allow_unproven, wait=wait)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render.print_verify(console, report)
    for line in report.failures:
        err_console.print(f"FAIL {line.removeprefix('- ')}", markup=False, highlight=False)
    raise typer.Exit(code=0 if report.passed else 1)


@app.command("inspect")
def inspect_command(
    model: Annotated[Path, typer.Argument(help="A .tflite or .onnx model.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
) -> None:
    """Show a model's inputs/outputs, quantization, op histogram, embedded metadata and Edge TPU pre-flight."""
    import json

    from edgetl.inspect import inspect_model

    report = _run(inspect_model, model)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    render.print_inspect(console, model.name, report)


# --- demo command ---


@app.command()
def demo(
    out: Annotated[Path, typer.Option(
        "--out", "-o",
        help="Folder to create: the digits as PNG folders, both runs, the exported artefacts.",
    )] = Path("edgetl-demo"),
    overwrite: Annotated[bool, typer.Option(help="Re-run into an existing demo folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Run the whole pipeline offline on handwritten digits: train, export, verify, predict (a few minutes on a CPU)."""
    _require_toolchain("demo")
    from edgetl.demo import run_demo

    def say(message: str) -> None:
        console.print(f"[bold cyan]==>[/] {message}", highlight=False)

    show_progress(None if quiet else console)
    report = _run(run_demo, out, overwrite=overwrite, verbose=keras_verbosity(quiet), progress=say)
    render.print_export(console, report.export)
    render.print_verify(console, report.verify)
    for image, truth, top in report.predictions:
        console.print(f"  {image.relative_to(report.out)}: predicted {top.label} ({top.score:.2f}), truly {truth}",
                      highlight=False)
    acc = {
        name: run.metrics["test_accuracy"] for name, run in (("transfer", report.transfer), ("scratch", report.scratch))
    }
    console.print(f"Transfer gain: [bold]{100 * report.transfer_gain:+.1f} points[/] of test accuracy "
                  f"(shipped backbone, {report.transfer.metrics['fine_tune']['kept']}: {acc['transfer']:.1%} "
                  f"vs scratch CNN {acc['scratch']:.1%}, "
                  f"{report.transfer.metrics['class_counts']['train']['0']} training images per digit)")
    console.print(f"Everything is in {report.out}: digits/ (data), runs/digits/ (model, curves, export/), "
                  f"runs/digits-scratch/, demo.json. Done in {report.seconds / 60:.1f} min.", highlight=False)
    console.print("Online? `--weights imagenet` (the default) is the recommended path for your own photos: "
                  "edgetl train ./photos",
                  highlight=False, markup=False)
    raise typer.Exit(code=0 if report.passed else 1)
