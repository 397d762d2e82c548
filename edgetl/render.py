"""How the CLI writes: rich output in a terminal, plain full-width lines in a log or a pipe.

Every table and report the commands print is drawn here (`print_*`); `edgetl.cli` only parses
options, calls the API and chooses exit codes.

Written to a file, Keras' progress bars become hundreds of lines of escape codes and rich
tables are cut to 80 columns. Here the consoles get an unlimited width when their stream is
not a terminal (tables are sized to their content, never truncated), Keras prints one line per
epoch, and the library's own progress messages (`logging` records of the `edgetl` loggers)
become `==> message` lines.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgetl.spec import escaped, first_few

LOG_WIDTH = 10_000
"""Width of a console that writes to a file or pipe: wide enough that no table is cut."""


def is_terminal(stream: TextIO) -> bool:
    """True when `stream` is an interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def make_console(*, stderr: bool = False) -> Console:
    """A rich console for stdout (or stderr): terminal width in a terminal, unlimited otherwise."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if is_terminal(stream) else LOG_WIDTH
    return Console(stderr=stderr, width=width, soft_wrap=stderr)


def keras_verbosity(quiet: bool) -> int | str:
    """Keras' `verbose`: 0 when quiet, progress bars in a terminal, else one line per epoch."""
    if quiet:
        return 0
    return "auto" if is_terminal(sys.stdout) else 2


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        self._console.print(f"[bold cyan]==>[/] {escape(record.getMessage())}", highlight=False)


def show_progress(console: Console | None) -> None:
    """Print what edgetl's stages log at INFO (stage names, per-format export progress) on `console`.

    None (`--quiet`) prints none, also when an earlier command in this process showed them.
    """
    logger = logging.getLogger("edgetl")
    for handler in [h for h in logger.handlers if isinstance(h, _ConsoleHandler)]:
        logger.removeHandler(handler)
    if console is None:
        return
    logger.addHandler(_ConsoleHandler(console))
    logger.setLevel(logging.INFO)
    logger.propagate = False


def print_train(console: Console, result: Any) -> None:
    """Accuracy per held-out split, the fine-tuning verdict, and where the run is."""
    metrics = result.metrics
    summary = ", ".join(
        f"{split} accuracy {metrics[f'{split}_accuracy']:.3f}"
        for split in ("val", "test")
        if f"{split}_accuracy" in metrics
    )
    console.print(f"[bold green]Trained[/] {metrics['strategy']} on {metrics['backbone']['name']}: {summary}")
    if "fine_tune" in metrics:
        ft = metrics["fine_tune"]
        console.print(
            f"Kept: {ft['kept']} (val accuracy: head {ft['head_val_accuracy']:.3f}, "
            f"fine-tuned {ft['fine_tuned_val_accuracy']:.3f})",
            highlight=False,
        )
    console.print(
        f"Run written to {result.run_dir}  (model.keras, labels.txt, preprocessing.json, metrics.json, curves.png)"
    )
    console.print(f"Next: edgetl export {result.run_dir}")


def print_predictions(console: Console, title: str, images: Sequence[Path], results: Sequence[Any]) -> None:
    """One row per class shown: image, rank, label, index, score."""
    table = Table(title=title)
    for column in ("image", "rank", "label", "index", "score"):
        table.add_column(column, justify="right" if column in ("rank", "index", "score") else "left")
    for image, predictions in zip(images, results):
        for rank, p in enumerate(predictions, start=1):
            table.add_row(
                escaped(str(image)) if rank == 1 else "", str(rank), escaped(p.label), str(p.index), f"{p.score:.4f}"
            )
    console.print(table)


def print_benchmark(console: Console, model_name: str, report: Any) -> None:
    """Latency percentiles of the bare invoke and of the runner, throughput and overhead."""
    table = Table(title=f"{model_name} ({report.backend}, threads={report.threads or 'default'}, {report.runs} runs)")
    for column in ("step", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for name, latency in (("bare invoke()", report.invoke), ("run_pixels (runner)", report.run_pixels)):
        table.add_row(name, f"{latency.p50_ms:.3f}", f"{latency.p90_ms:.3f}", f"{latency.p99_ms:.3f}")
    console.print(table)
    overhead = report.runner_overhead
    said = f"{overhead:+.1%}" if overhead >= 0 else f"within noise (measured {overhead:+.1%})"
    console.print(f"{report.images_per_s:.1f} images/s; runner overhead {said} over bare invoke()")
    if report.photos_per_s is not None:
        console.print(
            f"{report.photos_per_s:.1f} photos/s end to end (decode + resize + invoke) on {report.photos} photos"
        )


def print_selftest(console: Console, model_name: str, report: Any) -> None:
    """One ✓/✗ line per golden image, then the verdict."""
    for check in report.checks:
        mark = "[green]✓[/]" if check.passed else "[red]✗[/]"
        console.print(f"{mark} {check.image}" + (f": {'; '.join(check.reasons)}" if check.reasons else ""))
    verdict = "[bold green]PASS[/]" if report.passed else "[bold red]FAIL[/]"
    console.print(f"{verdict} {model_name} against {report.golden} (rule: {report.rule})", highlight=False)
    if report.hint:
        console.print(f"note: {report.hint}", highlight=False)


def print_export(console: Console, report: Any) -> None:
    """The export table, calibration, Edge TPU pre-flight and next steps."""
    table = Table(title=f"Export to {report.output_dir}")
    for column in ("format", "file", "size", "seconds", "status"):
        table.add_column(column, justify="right" if column in ("size", "seconds") else "left")
    for r in report.results:
        status = "[green]✓[/]" if r.error is None else f"[red]✗ {r.error}[/]"
        table.add_row(
            r.format,
            r.path.name if r.path else "-",
            f"{r.size_bytes / 1e6:.2f} MB" if r.path else "-",
            f"{r.seconds:.1f}",
            status,
        )
    console.print(table)
    for fmt, used in report.quantization.items():
        if used.get("target_agreement"):
            console.print(_target_line(fmt, used["target_agreement"]), highlight=False)
    if report.calibration:
        c = report.calibration
        counts = f" ({first_few([f'{k}: {v}' for k, v in c['class_counts'].items()])})" if c["class_counts"] else ""
        console.print(f"Calibration: {c['images']} images from {c['source']}{counts}", highlight=False)
    if report.edgetpu_preflight:
        p = report.edgetpu_preflight
        where = _where_mapping_stops(p)
        console.print(
            f"Edge TPU pre-flight (int8): {p['mapped_ops']}/{p['total_ops']} ops on the Edge TPU; {where}",
            highlight=False,
        )
    if report.golden:
        console.print(f"Golden vectors: {report.golden}", highlight=False)
    console.print(f"Done in {report.seconds:.1f} s.{_next_steps(report)}", highlight=False)


def _target_line(fmt: str, target: dict[str, Any]) -> str:
    """What `--target-agreement` did for one format: agreement before -> after, and each layer kept wider."""
    test = (f"; test split {target['test_before']:.1%} -> {target['test_after']:.1%} (reported, not used)"
            if target["test_before"] is not None else "")
    wider = ", ".join(f"{w['layer']} ({w['precision']}, {w['size_bytes'] / 1e3:+.1f} kB, {w['latency_ms']:+.2f} ms)"
                      for w in target["wider"]) or "none"
    return (f"{fmt}: target agreement {target['target']:g} on {target['validation_photos']} validation photos: "
            f"{target['before']:.1%} -> {target['after']:.1%}{test}. Kept wider: {wider}")


def _next_steps(report: Any) -> str:
    """" Next: ..." naming only what exists: verify for an export inside its run, inspect the int8 model (or any)."""
    written = {r.format: r.path for r in report.results if r.path is not None and Path(r.path).is_file()}
    steps = []
    run_dir = Path(report.output_dir).parent
    if Path(report.output_dir).name == "export" and (run_dir / "model.keras").is_file():
        steps.append(f"edgetl verify {run_dir}")
    if written:
        steps.append(f"edgetl inspect {written.get('tflite-int8') or next(iter(written.values()))}")
    return f" Next: {'   |   '.join(steps)}" if steps else ""


def _where_mapping_stops(preflight: dict[str, Any], after: str = "") -> str:
    """Either all ops map, or the first op the Edge TPU compiler would leave to the CPU."""
    if preflight["fully_mappable"]:
        return "all ops map"
    index, op = preflight["first_unmappable"]
    return f"mapping stops at op {index} ({op}){after}"


def _threshold_summary(report: Any, key: str, show: Callable[[float], str]) -> str:
    """The threshold most formats share, then the formats that differ: "98% (tflite-fp16 99%)"."""
    values = [r.threshold[key] for r in report.results]
    if not values:
        return "-"
    usual = max(set(values), key=values.count)
    others = ", ".join(f"{r.format} {show(r.threshold[key])}" for r in report.results if r.threshold[key] != usual)
    return show(usual) + (f" ({others})" if others else "")


def print_verify(console: Console, report: Any) -> None:
    """The parity table, thresholds, skipped formats and the verdict."""
    from edgetl.verify.reports import sample_note

    ref = report.reference
    acc = "n/a" if ref["accuracy"] is None else f"{ref['accuracy']:.2%}"
    table = Table(title=f"Parity on {report.images} images ({report.data}); float model accuracy {acc}")
    for column in (
        "",
        "format",
        "size",
        "accuracy",
        "Δ acc",
        "agreement (differ/allowed)",
        "max |Δp|",
        "p50 ms",
        "p95 ms",
    ):
        table.add_column(column, justify="left" if column in ("", "format") else "right", no_wrap=column == "format")
    for r in report.results:
        delta = "n/a" if r.accuracy_delta is None else f"{100 * r.accuracy_delta:+.1f}"
        table.add_row(
            "[green]✓[/]" if r.passed else "[red]✗[/]",
            r.format,
            f"{r.size_bytes / 1e6:.2f}M",
            "n/a" if r.accuracy is None else f"{r.accuracy:.1%}",
            delta,
            f"{r.top1_agreement:.1%}"
            + (f" ({r.gate['disagreements']}/{max(r.gate['allowed_disagreements'], 0)})" if r.gate else ""),
            f"{r.max_abs_diff:.0e}",
            f"{r.latency_ms_p50:.1f}",
            f"{r.latency_ms_p95:.1f}",
        )
    console.print(table)
    atols = ", ".join(
        f"{r.format} {r.threshold['atol']:.0e}" for r in report.results if r.threshold["atol"] is not None
    )
    console.print(
        f"Thresholds: agreement >= {_threshold_summary(report, 'min_agreement', '{:.0%}'.format)}, accuracy drop <= "
        f"{_threshold_summary(report, 'max_accuracy_drop', lambda drop: f'{100 * drop:.1f} pt')}; "
        f"max |Δp| <= {atols or '-'}",
        highlight=False,
    )
    if report.cross:
        console.print(
            f"TFLite fp32 vs ONNX: agreement {report.cross['agreement']:.2%}, "
            f"max |Δp| {report.cross['max_abs_diff']:.1e}",
            highlight=False,
        )
    for name, why in report.skipped:
        console.print(f"Skipped {name}: {why}", highlight=False)
    if note := sample_note(report):
        console.print(note, highlight=False)
    console.print(
        f"{'[bold green]PASS[/]' if report.passed else '[bold red]FAIL[/]'}: verify.html, verify.json, verify.md, "
        f"parity.png in {report.run_dir / 'export'}"
    )


def print_inspect(console: Console, model_name: str, report: Any) -> None:
    """Tensors, op histogram, embedded metadata and the Edge TPU pre-flight of one model file."""
    table = Table(title=f"{model_name}: {report.format}, {report.size_bytes / 1e6:.2f} MB")
    for column in ("", "name", "dtype", "shape", "scale", "zero point"):
        table.add_column(column)
    for kind, tensors in (("input", report.inputs), ("output", report.outputs)):
        for t in tensors:
            table.add_row(
                kind,
                escaped(t.name),
                t.dtype,
                str(list(t.shape)),
                f"{t.scale:.6g}" if t.scale else "-",
                str(t.zero_point) if t.scale else "-",
            )
    console.print(table)
    console.print("Ops: " + ", ".join(f"{op} x{n}" for op, n in report.ops.items()), highlight=False)
    if report.edgetl:
        e = report.edgetl
        labels = e.get("labels", [])
        console.print(
            escaped(
                f"edgetl.json: format {e.get('format')}, {len(labels)} labels ({', '.join(map(str, labels[:5]))}"
                f"{', ...' if len(labels) > 5 else ''}), preprocessing {e.get('preprocessing')}"
            ),
            highlight=False,
            markup=False,
        )
    if report.tflite_metadata:
        m = report.tflite_metadata
        console.print(
            escaped(
                f"TFLite Model Metadata: {m['name']!r}, labels file {m['labels_file'] or '-'}, "
                f"mean {m['mean']} std {m['std']}, "
                f"colour space {m['input_color_space'] or '-'}, packed files {m['packed_files']}"
            ),
            highlight=False,
            markup=False,
        )
    if report.metadata_props:
        console.print(f"ONNX metadata_props: {', '.join(report.metadata_props)}", highlight=False)
    if report.details.get("opset"):
        console.print(f"ONNX opset {report.details['opset']}, producer {report.details['producer']}", highlight=False)
    if report.edgetpu:
        p = report.edgetpu
        where = _where_mapping_stops(p, "; the rest runs on the CPU")
        console.print(f"Edge TPU pre-flight: {p['mapped_ops']}/{p['total_ops']} ops; {where}", highlight=False)
        for op in p["ops"]:
            if not op["mappable"]:
                console.print(f"  ✗ {op['op']} x{op['count']}: {'; '.join(op['reasons'])}", highlight=False)
        for note in p["notes"]:
            console.print(f"  note: {note}", highlight=False)


def device_line(facts: dict[str, Any]) -> str:
    """One line naming the device (target, machine, system, python, edgetl, CPU), escaped for rich."""
    return escape(escaped(f"Device {facts['target']}: {facts['machine']}, {facts['system']}, Python {facts['python']}, "
                          f"edgetl {facts['edgetl']}, CPU {facts.get('cpu') or 'not reported'}"))


def print_verify_device(console: Console, report: Any) -> None:
    """The device's columns beside the host's, one row per artefact (only after `verify --device`)."""
    if report.device is None:
        return
    table = Table(title=device_line(report.device))
    for column in ("", "format", "host agreement", "device agreement (differ/allowed)", "device acc",
                   "device max |Δp|", "host≠device top-1", "host-device max diff", "host p50 ms", "device p50 ms",
                   "device p95 ms"):
        table.add_column(column, justify="left" if column in ("", "format") else "right", no_wrap=column == "format")
    for r in report.results:
        d = r.device or {"skipped": "skipped on the device: not run"}
        if "skipped" in d:
            table.add_row("-", r.format, f"{r.top1_agreement:.1%}", escape(escaped(d["skipped"])), *[""] * 7)
            continue
        gate = d.get("gate") or {}
        table.add_row(
            "[green]✓[/]" if d.get("passed") else "[red]✗[/]", r.format, f"{r.top1_agreement:.1%}",
            f"{d['agreement']:.1%} ({gate.get('disagreements')}/{max(gate.get('allowed_disagreements', 0), 0)})",
            "n/a" if d["accuracy"] is None else f"{d['accuracy']:.1%}", f"{d['max_abs_dprob']:.0e}",
            str(d["host_device_top1_differ"]), "n/a" if d["host_device_max_abs_diff"] is None
            else f"{d['host_device_max_abs_diff']:.0e}", f"{r.latency_ms_p50:.1f}", f"{d['p50_ms']:.1f}",
            f"{d['p95_ms']:.1f}",
        )
    console.print(table)


def print_device_benchmark(console: Console, model_name: str, report: dict[str, Any]) -> None:
    """`bench --device`: the device's own latency table, then the device it ran on."""
    from edgetl.runtime.benchmark import BenchReport, Latency

    fields = {k: report[k] for k in ("model", "backend", "threads", "runs", "photos", "photos_per_s")}
    bench = BenchReport(**fields, invoke=Latency(**report["invoke"]), run_pixels=Latency(**report["run_pixels"]))
    print_benchmark(console, f"{model_name} on {report['device']['target']}", bench)
    console.print(device_line(report["device"]), highlight=False)
