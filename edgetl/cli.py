"""The `edgetl` command line: a thin Typer layer over the Python API.

This is the only module that knows about the terminal and chooses exit codes:
0 success, 1 a negative verdict (parity or self-test failed), 2 bad input (`EdgetlError`).
Heavy modules are imported inside each command so that `edgetl --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console

from edgetl import __version__
from edgetl.errors import EdgetlError

app = typer.Typer(
    name="edgetl",
    help="Train an image classifier from a folder of photos, export it for the edge, verify it, run it.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")


def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the API; an `EdgetlError` becomes one line on stderr and exit code 2."""
    try:
        return fn(*args, **kwargs)
    except EdgetlError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        err_console.print("error: interrupted", markup=False, highlight=False)
        raise typer.Exit(code=130) from None


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"edgetl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."),
) -> None:
    """edgetl: photos -> transfer-learned classifier -> TFLite/ONNX -> verified -> on the device."""


def main() -> None:
    app()


# --- train commands ---


class Strategy(str, Enum):
    feature_extract = "feature-extract"
    fine_tune = "fine-tune"
    scratch = "scratch"
    linear = "linear"


class Device(str, Enum):
    auto = "auto"
    gpu = "gpu"
    cpu = "cpu"


class Precision(str, Enum):
    float32 = "float32"
    mixed = "mixed"


@app.command()
def train(
    data_dir: Annotated[Path, typer.Argument(help="Folder of class folders: DATA_DIR/<class>/*.jpg (or train/ val/ test/ split folders).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The RUN_DIR to create.")] = Path("runs/run"),
    backbone: Annotated[str, typer.Option(help="mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0, resnet50_v2, densenet201, or hub:HANDLE (a TF-Hub handle or local SavedModel).")] = "mobilenet_v2",
    alpha: Annotated[float, typer.Option(help="Width multiplier of MobileNet backbones.")] = 1.0,
    weights: Annotated[str, typer.Option(help="imagenet (Keras' download), none (random), or PATH of a local weights file for the headless backbone.")] = "imagenet",
    image_size: Annotated[Optional[int], typer.Option(help="Square input size in pixels (default: the backbone's, 224; 128 for scratch).")] = None,
    strategy: Annotated[Strategy, typer.Option(help="feature-extract: frozen backbone + new head; fine-tune: then the last N layers at a low rate; scratch: small CNN baseline; linear: logistic regression on pooled features.")] = Strategy.feature_extract,
    epochs: Annotated[int, typer.Option(help="Epochs of the head (or of the scratch CNN).")] = 10,
    fine_tune_epochs: Annotated[Optional[int], typer.Option(help="Epochs of the fine-tuning stage (default: --epochs).")] = None,
    fine_tune_layers: Annotated[int, typer.Option(help="Backbone layers (with weights, batch-norm excepted) trained when fine-tuning.")] = 10,
    learning_rate: Annotated[float, typer.Option(help="Learning rate of the head / scratch CNN.")] = 1e-3,
    fine_tune_learning_rate: Annotated[float, typer.Option(help="The low learning rate of fine-tuning.")] = 1e-4,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 32,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Random flip/rotation/zoom/contrast. Default: on for fine-tune and scratch; off for feature-extract and linear, which then train on cached features (many times faster).")] = None,
    val_split: Annotated[float, typer.Option(help="Share of each class held out for validation.")] = 0.15,
    test_split: Annotated[float, typer.Option(help="Share of each class held out for the final test.")] = 0.15,
    subset: Annotated[float, typer.Option(help="Use only this share of the photos (quick tries).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of splits, initialization and augmentation.")] = 0,
    strict: Annotated[bool, typer.Option(help="Unreadable photos are an error instead of being skipped with a warning.")] = False,
    device: Annotated[Device, typer.Option(help="auto uses a GPU when the Keras backend sees one.")] = Device.auto,
    precision: Annotated[Precision, typer.Option(help="mixed: bfloat16/float16 compute on a GPU; the saved model stays float32.")] = Precision.float32,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing RUN_DIR (only once the new run is whole).")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run of this RUN_DIR from its last finished epoch.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train a transfer-learning classifier on a folder of labelled photos."""
    from edgetl.backbones import BackboneOptions
    from edgetl.train import TrainOptions
    from edgetl.train import train as train_api

    def run() -> Any:
        backbone_options = BackboneOptions(name=backbone, alpha=alpha, image_size=image_size, weights=weights)
        options = TrainOptions(
            strategy=strategy.value, epochs=epochs, fine_tune_epochs=fine_tune_epochs, fine_tune_layers=fine_tune_layers,
            learning_rate=learning_rate, fine_tune_learning_rate=fine_tune_learning_rate, batch_size=batch_size,
            augment=augment, val_split=val_split, test_split=test_split, subset=subset, seed=seed, strict=strict,
            device=device.value, precision=precision.value,
        )
        return train_api(data_dir, out, backbone=backbone_options, options=options, overwrite=overwrite, resume=resume, verbose=0 if quiet else "auto")

    result = _run(run)
    metrics = result.metrics
    summary = ", ".join(f"{split} accuracy {metrics[f'{split}_accuracy']:.3f}" for split in ("val", "test") if f"{split}_accuracy" in metrics)
    console.print(f"[bold green]Trained[/] {metrics['strategy']} on {metrics['backbone']['name']}: {summary}")
    console.print(f"Run written to {result.run_dir}  (model.keras, labels.txt, preprocessing.json, metrics.json, curves.png)")
    console.print(f"Next: edgetl export {result.run_dir}")


# --- runtime commands ---


class DelegateChoice(str, Enum):
    edgetpu = "edgetpu"


def _runtime_warnings(caught: list[Any]) -> None:
    """Show warnings raised while opening a model (e.g. a labels file of the wrong length) as one line each."""
    for warning in caught:
        err_console.print(f"warning: {warning.message}", markup=False, highlight=False)


def _open_classifier(model: Path, *, threads: int | None, delegate: DelegateChoice | None, labels: Path | None = None) -> Any:
    import warnings

    from edgetl.runtime import Classifier

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = _run(Classifier.from_file, model, threads=threads, delegate=delegate.value if delegate else None, labels=labels)
    _runtime_warnings(caught)
    return clf


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="Model file (.tflite or .onnx).")],
    images: Annotated[list[Path], typer.Argument(help="Photos to classify.")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Classes shown per photo.")] = 3,
    labels: Annotated[Optional[Path], typer.Option(help="Labels file (one per line) overriding the model's own labels.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Interpreter threads (default: the interpreter's).")] = None,
    delegate: Annotated[Optional[DelegateChoice], typer.Option(help="Run on an accelerator: edgetpu loads libedgetpu.so.1.")] = None,
) -> None:
    """Classify photos with an exported model; labels and preprocessing are read from the model file."""
    import json

    from edgetl.runtime.classifier import prediction_records

    clf = _open_classifier(model, threads=threads, delegate=delegate, labels=labels)
    results = _run(clf.classify, images, top_k=top_k)
    if json_output:
        typer.echo(json.dumps(prediction_records(images, results), indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title=f"{model.name} ({clf.backend})")
    for column in ("image", "rank", "label", "index", "score"):
        table.add_column(column, justify="right" if column in ("rank", "index", "score") else "left")
    for image, predictions in zip(images, results):
        for rank, p in enumerate(predictions, start=1):
            table.add_row(str(image) if rank == 1 else "", str(rank), p.label, str(p.index), f"{p.score:.4f}")
    console.print(table)


@app.command()
def bench(
    model: Annotated[Path, typer.Argument(help="Model file (.tflite or .onnx).")],
    threads: Annotated[Optional[int], typer.Option(min=1, help="Interpreter threads (default: the interpreter's).")] = None,
    runs: Annotated[int, typer.Option(min=1, help="Timed iterations.")] = 100,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed iterations first.")] = 10,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
    delegate: Annotated[Optional[DelegateChoice], typer.Option(help="Run on an accelerator: edgetpu loads libedgetpu.so.1.")] = None,
) -> None:
    """Time a model: p50/p90/p99 latency, images/s, and the runner's overhead over a bare invoke()."""
    import json

    from edgetl.runtime.benchmark import benchmark

    clf = _open_classifier(model, threads=threads, delegate=delegate)
    report = _run(benchmark, clf, runs=runs, warmup=warmup)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{model.name} ({report.backend}, threads={report.threads or 'default'}, {report.runs} runs)")
    for column in ("step", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for name, latency in (("bare invoke()", report.invoke), ("run_pixels (runner)", report.run_pixels)):
        table.add_row(name, f"{latency.p50_ms:.3f}", f"{latency.p90_ms:.3f}", f"{latency.p99_ms:.3f}")
    console.print(table)
    console.print(f"{report.images_per_s:.1f} images/s; runner overhead {report.runner_overhead:+.1%} over bare invoke()")


@app.command()
def selftest(
    model: Annotated[Path, typer.Argument(help="Model file (.tflite or .onnx) to check on this device.")],
    golden: Annotated[Optional[Path], typer.Option(help="Folder with golden.json (default: golden/ beside the model).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
) -> None:
    """Re-run a model on its golden vectors; exit 0 if every image matches, 1 if any differs."""
    import json

    from edgetl.runtime.golden import check_golden

    report = _run(check_golden, model, golden if golden is not None else model.parent / "golden")
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for check in report.checks:
            mark = "[green]✓[/]" if check.passed else "[red]✗[/]"
            console.print(f"{mark} {check.image}" + (f": {'; '.join(check.reasons)}" if check.reasons else ""))
        verdict = "[bold green]PASS[/]" if report.passed else "[bold red]FAIL[/]"
        console.print(f"{verdict} {model.name} against {report.golden}")
    raise typer.Exit(code=0 if report.passed else 1)
