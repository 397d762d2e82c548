"""`edgetl verify`: every artefact against the float model; exit 1 naming each one that fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgetl import render
from edgetl.cli.common import (
    DEVICE_OPTION,
    DEVICE_PYTHON_OPTION,
    SSH_CONFIG_OPTION,
    WAIT_HELP,
    app,
    call_api,
    console,
    err_console,
    require_toolchain,
    split_formats,
)
from edgetl.render import show_progress


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
    formats: Annotated[Optional[list[str]], typer.Option(
        "--formats", "-f",
        help="Comma-separated or repeated: judge only these formats (default: every artefact).",
    )] = None,
    device: Annotated[Optional[str], DEVICE_OPTION] = None,
    ssh_config: Annotated[Optional[Path], SSH_CONFIG_OPTION] = None,
    device_python: Annotated[str, DEVICE_PYTHON_OPTION] = "python3",
    allow_unproven: Annotated[bool, typer.Option(
        "--allow-unproven",
        help="Check an export without export.json (its manifest) on the artefacts' own metadata, with a warning "
        "(default: exit 2, as nothing proves they come from this model.keras).",
    )] = False,
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
) -> None:
    """Check every artefact against the float Keras model; exit 1 naming each one that fails."""
    require_toolchain("verify")
    import json

    from edgetl.verify import verify

    show_progress(err_console)  # with --wait: whom it waits for
    call = _verify_interrupt_is_exit_2(device is not None)
    report = call(verify, run_dir, data=data, probe=probe, min_agreement=min_agreement,
                  max_accuracy_drop=max_accuracy_drop, max_images=max_images, threads=threads,
                  formats=split_formats(formats) if formats else None, device=device, ssh_config=ssh_config,
                  device_python=device_python, allow_unproven=allow_unproven, wait=wait)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render.print_verify(console, report)
        render.print_verify_device(console, report)
    for line in report.failures:
        err_console.print(f"FAIL {line.removeprefix('- ')}", markup=False, highlight=False)
    raise typer.Exit(code=0 if report.passed else 1)


def _verify_interrupt_is_exit_2(on_device: bool) -> Any:
    """With --device, Ctrl-C is one of the faults that end in exit 2 (docs/device-verify.md), in any phase."""
    if not on_device:
        return call_api

    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call_api(fn, *args, **kwargs)
        except typer.Exit as e:
            if e.exit_code == 130:
                raise typer.Exit(code=2) from None
            raise

    return call
