"""`edgetl train`: its flags, grouped as in `--help`, turned into `TrainOptions` and a call of `edgetl.train`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgetl import render
from edgetl.choices import DEVICES, PRECISIONS, STRATEGIES
from edgetl.cli.common import WAIT_HELP, app, call_api, choice_enum, console, err_console, require_toolchain
from edgetl.render import keras_verbosity, show_progress

Strategy = choice_enum("Strategy", STRATEGIES)
Device = choice_enum("Device", DEVICES)
Precision = choice_enum("Precision", PRECISIONS)


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
    require_toolchain("train")
    import contextlib
    import json

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
        result = call_api(run)
    metrics = result.metrics
    if json_output:
        typer.echo(json.dumps({"run_dir": str(result.run_dir), **metrics}, indent=2, ensure_ascii=False))
        return
    render.print_train(console, result)
