"""The commands a device runs (predict, inspect, bench, selftest): they import neither TensorFlow nor Keras."""

from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgetl import render
from edgetl.cli.common import (
    DEVICE_OPTION,
    DEVICE_PYTHON_OPTION,
    SSH_CONFIG_OPTION,
    app,
    call_api,
    console,
    err_console,
)
from edgetl.spec import escaped


class DelegateChoice(str, Enum):
    edgetpu = "edgetpu"


def _runtime_warnings(caught: list[Any]) -> None:
    """Show warnings raised while opening a model (e.g. a labels file of the wrong length) as one line each."""
    for warning in caught:
        err_console.print(f"warning: {escaped(str(warning.message))}", markup=False, highlight=False)


def _open_classifier(
    model: Path, *, threads: int | None, delegate: DelegateChoice | None, labels: Path | None = None,
) -> Any:

    from edgetl.runtime import Classifier

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = call_api(Classifier.from_file, model, threads=threads, delegate=delegate.value if delegate else None,
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
    strict: Annotated[bool, typer.Option(
        help="An unreadable photo is an error (exit 2, nothing printed) instead of being skipped with a warning.",
    )] = False,
) -> None:
    """Classify photos with an exported model; labels and preprocessing are read from the model file.

    A photo that cannot be read is skipped with a warning naming it, and the others are printed
    (exit 0, as `train` skips unreadable photos); with --strict it stops the command (exit 2).
    """
    from edgetl.runtime.image import expand_image_paths
    from edgetl.runtime.predict import classify_files, predictions_json

    clf = _open_classifier(model, threads=threads, delegate=delegate, labels=labels)
    files = call_api(expand_image_paths, images)
    done = call_api(classify_files, clf, files, top_k, strict=strict)
    for file, reason in done.skipped:
        err_console.print(f"warning: skipped {escaped(str(file))}: {escaped(reason)}", markup=False, highlight=False)
    if json_output:
        typer.echo(predictions_json(done.images, done.results))
        return
    render.print_predictions(console, f"{model.name} ({clf.backend})", done.images, done.results)


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
    device: Annotated[Optional[str], DEVICE_OPTION] = None,
    ssh_config: Annotated[Optional[Path], SSH_CONFIG_OPTION] = None,
    device_python: Annotated[str, DEVICE_PYTHON_OPTION] = "python3",
) -> None:
    """Time a model: p50/p90/p99 latency, images/s, and the runner's overhead over a bare invoke()."""
    import json

    from edgetl.runtime.benchmark import benchmark, photo_files

    photos = call_api(photo_files, images) if images is not None else []
    if device is not None:
        from edgetl.device import bench_on_device, parse_target

        on_device = call_api(lambda: bench_on_device(parse_target(device, ssh_config), device_python, model,
                                                     photos=photos, runs=runs, warmup=warmup, threads=threads))
        if json_output:
            typer.echo(json.dumps(on_device, indent=2))
        else:
            render.print_device_benchmark(console, model.name, on_device)
        return
    clf = _open_classifier(model, threads=threads, delegate=delegate)
    report = call_api(benchmark, clf, runs=runs, warmup=warmup, photos=photos)
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

    report = call_api(check_golden, model, golden if golden is not None else model.parent / "golden")
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render.print_selftest(console, model.name, report)
    raise typer.Exit(code=0 if report.passed else 1)




@app.command("inspect")
def inspect_command(
    model: Annotated[Path, typer.Argument(help="A .tflite or .onnx model.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
) -> None:
    """Show a model's inputs/outputs, quantization, op histogram, embedded metadata and Edge TPU pre-flight."""
    import json

    from edgetl.inspect import inspect_model
    from edgetl.streams import stdout_carries_unicode

    report = call_api(inspect_model, model)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=not stdout_carries_unicode()))
        return
    render.print_inspect(console, model.name, report)
