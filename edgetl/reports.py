"""verify's reports: `verify.json`, `verify.md` (the parity table) and `parity.png`, and the sample note they share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from edgetl import sample_gate

if TYPE_CHECKING:
    from edgetl.verify import ParityResult, VerifyReport


def sample_note(report: VerifyReport) -> str:
    """One sentence on how far the sample can be trusted, for reports: always below `SMALL_SAMPLE` photos."""
    gates = [r.gate for r in report.results if r.gate]
    if not gates or report.images >= sample_gate.SMALL_SAMPLE:
        return ""
    allowed = sorted({g["allowed_disagreements"] for g in gates if g["allowed_disagreements"] >= 0})
    worst = min(gates, key=lambda g: g["agreement_interval"][0])
    low, high = worst["agreement_interval"]
    return (f"Small sample ({report.images} photos, under {sample_gate.SMALL_SAMPLE}): one photo is "
            f"{100 / report.images:.1f} points. The gate allows {' or '.join(map(str, allowed)) or 'no'} "
            f"disagreement(s) per artefact; the widest 90% (Wilson) agreement interval is {_pct(low)}-{_pct(high)}. "
            "Add photos with --probe DIR for a sharper verdict.")


def write_reports(report: VerifyReport, export_dir: Path) -> None:
    """Write verify.json, verify.md and parity.png into the export folder."""
    from edgetl.spec import write_text_atomic

    write_text_atomic(export_dir / "verify.json", json.dumps(report.to_dict(), indent=2))
    write_text_atomic(export_dir / "verify.md", render_markdown(report))
    from edgetl.plots import plot_parity

    plot_parity(report, export_dir / "parity.png")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _count_cell(r: ParityResult) -> str:
    """"3 differ, 5 allowed" from the count gate, or the bare threshold for a result without one."""
    if not r.gate:
        return f"min {_pct(r.threshold['min_agreement'])}"
    return f"{r.gate['disagreements']} differ, {max(r.gate['allowed_disagreements'], 0)} allowed"


def render_markdown(report: VerifyReport) -> str:
    """The parity table as Markdown."""
    ref = report.reference
    lines = [
        f"# Parity report: {report.run_dir.name}",
        "",
        f"{report.images} images from {report.data}. Reference: float Keras model, accuracy {_pct(ref['accuracy'])}, "
        f"latency p50 {ref['latency_ms_p50']:.2f} ms.",
        "",
        "| artefact | format | size | accuracy | Δ accuracy | top-1 agreement | max \\|Δp\\| | mean \\|Δp\\| "
        "| p50 ms | p95 ms | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.results:
        delta = "n/a" if r.accuracy_delta is None else f"{100 * r.accuracy_delta:+.2f} pt"
        verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.failures)
        atol = "" if r.threshold["atol"] is None else f" (atol {r.threshold['atol']:.0e})"
        lines.append(
            f"| {r.name} | {r.format} | {r.size_bytes / 1e6:.2f} MB | {_pct(r.accuracy)} | {delta} | "
            f"{_pct(r.top1_agreement)} ({_count_cell(r)}) | {r.max_abs_diff:.2e}{atol} | {r.mean_abs_diff:.2e} | "
            f"{r.latency_ms_p50:.2f} | {r.latency_ms_p95:.2f} | {verdict} |"
        )
    if report.cross:
        lines += ["", f"TFLite fp32 vs ONNX: top-1 agreement {_pct(report.cross['agreement'])}, "
                      f"max |Δp| {report.cross['max_abs_diff']:.2e}."]
    for name, why in report.skipped:
        lines += ["", f"Skipped {name}: {why}."]
    if note := sample_note(report):
        lines += ["", note]
    for fmt, rows in report.flips.items():
        lines += ["", f"Photos where {fmt} and the float model disagree (closest calls first):", "",
                  "| photo | float model | " + fmt + " |", "|---|---|---|"]
        lines += [f"| {Path(r['image']).name} | {r['float']['label']} {r['float']['score']:.3f} | "
                  f"{r['artefact']['label']} {r['artefact']['score']:.3f} ({r['float']['label']} "
                  f"{r['artefact']['float_label_score']:.3f}) |" for r in rows]
    lines += device_markdown(report)
    lines += ["", f"Verdict: {'PASS' if report.passed else 'FAIL'}", ""]
    return "\n".join(lines)


def device_markdown(report: VerifyReport) -> list[str]:
    """The device's figures beside the host's, after `verify --device` (else no lines)."""
    facts = report.device
    if facts is None:
        return []
    interpreters = ", ".join(sorted({f"{i['name']} {i['version']}" for i in facts["interpreters"]})) or "none"
    lines = ["", f"## On the device {facts['target']}", "",
             f"{facts['machine']}, {facts['system']}, Python {facts['python']}, edgetl {facts['edgetl']}, "
             f"CPU {facts.get('cpu') or 'not reported'}; interpreters: {interpreters}.", "",
             "| artefact | host agreement | device agreement | device accuracy | device max \\|Δp\\| "
             "| host≠device top-1 | host-device max \\|Δp\\| | host p50 ms | device p50 ms | device p95 ms | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.results:
        d = r.device or {"skipped": "skipped on the device: not run"}
        if "skipped" in d:
            lines.append(f"| {r.name} | {_pct(r.top1_agreement)} | {d['skipped']} | | | | | | | | |")
            continue
        failed = [reason for reason in r.failures if reason.startswith("on the device")]
        diff = "n/a" if d["host_device_max_abs_diff"] is None else f"{d['host_device_max_abs_diff']:.2e}"
        lines.append(
            f"| {r.name} | {_pct(r.top1_agreement)} | {_pct(d['agreement'])} ({d['disagreements']} of {d['n']} differ) "
            f"| {_pct(d['accuracy'])} | {d['max_abs_dprob']:.2e} | {d['host_device_top1_differ']} | {diff} "
            f"| {r.latency_ms_p50:.2f} | {d['p50_ms']:.2f} | {d['p95_ms']:.2f} | "
            f"{'pass' if not failed else 'FAIL: ' + '; '.join(failed)} |")
    return lines
