"""`edgetl demo`: the whole pipeline offline on the shipped digits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgetl import render
from edgetl.cli.common import app, call_api, console, require_toolchain
from edgetl.render import keras_verbosity, show_progress


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
    require_toolchain("demo")
    from edgetl.demo import run_demo

    def say(message: str) -> None:
        console.print(f"[bold cyan]==>[/] {message}", highlight=False)

    show_progress(None if quiet else console)
    report = call_api(run_demo, out, overwrite=overwrite, verbose=keras_verbosity(quiet), progress=say)
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
