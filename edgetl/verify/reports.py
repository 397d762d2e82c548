"""verify's reports: `verify.json`, `verify.md` (the table), `parity.png`, `verify.html`, and their sample note.

`verify.html` is one self-contained page that opens from disk in any browser, offline: the CSS
is inline, there is no script, and every image is a `data:` URI (the parity plot, and a
thumbnail of each photo that flipped). Only flipped photos are inlined, at most
`sample_gate.MAX_FLIPS` per artefact as ~3 KB JPEG thumbnails, so a probe set of thousands of
photos still makes a page of a few hundred KB; the page says how many more flipped than it shows.
"""

from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgetl.errors import EdgetlError
from edgetl.verify import sample_gate

if TYPE_CHECKING:
    from edgetl.verify.results import ParityResult, VerifyReport


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
    """Write verify.json, verify.md, parity.png and verify.html (which inlines parity.png) into the export folder."""
    from edgetl.spec import write_text_atomic

    write_text_atomic(export_dir / "verify.json", json.dumps(report.to_dict(), indent=2))
    write_text_atomic(export_dir / "verify.md", render_markdown(report))
    from edgetl.plots import plot_parity

    plot_parity(report, export_dir / "parity.png")
    write_text_atomic(export_dir / "verify.html", render_html(report, (export_dir / "parity.png").read_bytes()))


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


DEVICE_COLUMNS = ("artefact", "host agreement", "device agreement", "device accuracy", "device max |Δp|",
                  "host≠device top-1", "host-device max |Δp|", "host p50 ms", "device p50 ms", "device p95 ms",
                  "verdict")
"""The device table's columns, in verify.md and verify.html alike."""


def _device_facts(facts: dict[str, Any]) -> str:
    interpreters = ", ".join(sorted({f"{i['name']} {i['version']}" for i in facts["interpreters"]})) or "none"
    return (f"{facts['machine']}, {facts['system']}, Python {facts['python']}, edgetl {facts['edgetl']}, "
            f"CPU {facts.get('cpu') or 'not reported'}; interpreters: {interpreters}.")


def _device_rows(report: VerifyReport) -> list[tuple[str, ...]]:
    """One row of `DEVICE_COLUMNS` per artefact: the device's figures beside the host's."""
    rows = []
    for r in report.results:
        d = r.device or {"skipped": "skipped on the device: not run"}
        if "skipped" in d:
            rows.append((r.name, _pct(r.top1_agreement), d["skipped"], *[""] * (len(DEVICE_COLUMNS) - 3)))
            continue
        failed = [reason for reason in r.failures if reason.startswith("on the device")]
        diff = "n/a" if d["host_device_max_abs_diff"] is None else f"{d['host_device_max_abs_diff']:.2e}"
        agreement = f"{_pct(d['agreement'])} ({d['disagreements']} of {d['n']} differ)"
        rows.append((r.name, _pct(r.top1_agreement), agreement,
                     _pct(d["accuracy"]), f"{d['max_abs_dprob']:.2e}", str(d["host_device_top1_differ"]), diff,
                     f"{r.latency_ms_p50:.2f}", f"{d['p50_ms']:.2f}", f"{d['p95_ms']:.2f}",
                     "pass" if not failed else "FAIL: " + "; ".join(failed)))
    return rows


def device_markdown(report: VerifyReport) -> list[str]:
    """The device's figures beside the host's, after `verify --device` (else no lines)."""
    if report.device is None:
        return []
    header = " | ".join(column.replace("|", "\\|") for column in DEVICE_COLUMNS)
    return ["", f"## On the device {report.device['target']}", "", _device_facts(report.device), "",
            f"| {header} |", "|" + "---|" * len(DEVICE_COLUMNS),
            *(f"| {' | '.join(row)} |" for row in _device_rows(report))]


def _device_html(report: VerifyReport) -> str:
    """The device section of verify.html (empty without `verify --device`)."""
    if report.device is None:
        return ""
    head = "".join(f"<th>{escape(column)}</th>" for column in DEVICE_COLUMNS)
    left = (0, len(DEVICE_COLUMNS) - 1)  # the artefact's name and the verdict read left to right
    body = "".join("<tr>" + "".join(f'<td class="left">{escape(cell)}</td>' if i in left else f"<td>{escape(cell)}</td>"
                                    for i, cell in enumerate(row)) + "</tr>" for row in _device_rows(report))
    return (f"<h2>On the device {escape(report.device['target'])}</h2>"
            f'<p class="note">{escape(_device_facts(report.device))}</p>'
            f'<table id="device"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


THUMBNAIL_PX = 96
"""The longer side of an inlined photo, in pixels."""

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6475;margin:0 0 16px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;font-size:13px;vertical-align:middle}
.pass{background:#dff3e4;color:#11622a}.fail{background:#fbe2e2;color:#9b1c1c}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0001;border-radius:6px;overflow:hidden}
th,td{padding:7px 10px;text-align:right;border-bottom:1px solid #eceef2;white-space:nowrap}
th{background:#eef0f4;font-weight:600;font-size:12px;color:#3a4354}
td:first-child,th:first-child,td.left{text-align:left}
td.why{white-space:normal;text-align:left;color:#9b1c1c;font-size:12px}
.note{color:#5b6475;font-size:13px;margin:8px 0}
figure{margin:0;background:#fff;padding:8px;border-radius:6px;box-shadow:0 1px 2px #0001}
figure img{max-width:100%;display:block;margin:auto}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px}
.card{background:#fff;border-radius:6px;box-shadow:0 1px 2px #0001;padding:8px;display:flex;gap:8px}
.card img,.card .none{width:72px;height:72px;object-fit:cover;border-radius:4px;flex:none;background:#e3e6ec}
.card .none{display:flex;align-items:center;justify-content:center;font-size:11px;color:#5b6475}
.card dl{margin:0;font-size:12px;min-width:0;display:grid;grid-template-columns:auto 1fr;gap:1px 6px}
.card dt{color:#5b6475;font-size:11px;line-height:18px}
.card dd{margin:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;line-height:18px}
.card .name{grid-column:1/3;font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
h3{font-size:15px;margin:18px 0 8px}h3.quiet{color:#5b6475;font-weight:500;margin:6px 0}
.was{color:#11622a}.now{color:#9b1c1c}
"""


def render_html(report: VerifyReport, parity_png: bytes) -> str:
    """The whole page: header, per-artefact table, parity plot, then the flipped photos per artefact.

    Thread-safe: it reads the report and the photo files only.
    """
    verdict = "PASS" if report.passed else "FAIL"
    ref = report.reference
    accuracy = "n/a" if ref["accuracy"] is None else f"{ref['accuracy']:.2%}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>Parity: {escape(report.run_dir.name)} ({verdict})</title><style>{_STYLE}</style></head>",
        "<body><main>",
        f'<h1>Parity report: {escape(report.run_dir.name)} <span class="badge {verdict.lower()}">{verdict}</span></h1>',
        f'<p class="sub">{report.images} photos from {escape(report.data)}. Reference: the float Keras model, '
        f"accuracy {accuracy}, latency p50 {ref['latency_ms_p50']:.2f} ms.</p>",
        _table(report), *_notes(report), _device_html(report),
        '<h2>Parity plot</h2><figure><img alt="parity plot" src="data:image/png;base64,'
        f'{base64.b64encode(parity_png).decode()}"></figure>',
        "<h2>Photos that flipped</h2>",
        '<p class="note">Photos whose top-1 class differs between the float model and the artefact, '
        "closest calls first.</p>",
        *(_flips(report, r) for r in report.results),
        "</main></body></html>", "",
    ]
    return "\n".join(parts)


def _table(report: VerifyReport) -> str:
    head = ("artefact", "size", "accuracy", "Δ accuracy", "top-1 agreement", "differ / allowed", "max |Δp|",
            "p50 ms", "p95 ms", "verdict")
    rows = ['<table id="artefacts"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in report.results:
        delta = "n/a" if r.accuracy_delta is None else f"{100 * r.accuracy_delta:+.2f} pt"
        counts = f"{r.gate['disagreements']} / {max(r.gate['allowed_disagreements'], 0)}" if r.gate else "-"
        verdict = ('<span class="badge pass">pass</span>' if r.passed else
                   '<span class="badge fail">FAIL</span>')
        cells = (f'<td class="left">{escape(r.name)}</td>', f"<td>{r.size_bytes / 1e6:.2f} MB</td>",
                 f"<td>{_pct(r.accuracy)}</td>", f"<td>{delta}</td>", f"<td>{_pct(r.top1_agreement)}</td>",
                 f"<td>{counts}</td>", f"<td>{r.max_abs_diff:.1e}</td>", f"<td>{r.latency_ms_p50:.2f}</td>",
                 f"<td>{r.latency_ms_p95:.2f}</td>", f"<td>{verdict}</td>")
        rows.append(f'<tr data-format="{escape(r.format)}">' + "".join(cells) + "</tr>")
        if r.failures:
            rows.append(f'<tr><td class="why" colspan="{len(head)}">{escape("; ".join(r.failures))}</td></tr>')
    return "".join(rows) + "</tbody></table>"


def _notes(report: VerifyReport) -> list[str]:
    notes = []
    if report.cross:
        notes.append(f"TFLite fp32 vs ONNX: top-1 agreement {_pct(report.cross['agreement'])}, "
                     f"max |Δp| {report.cross['max_abs_diff']:.1e}.")
    notes += [f"Skipped {name}: {why}." for name, why in report.skipped]
    if note := sample_note(report):
        notes.append(note)
    return [f'<p class="note">{escape(n)}</p>' for n in notes]


def _flips(report: VerifyReport, result: ParityResult) -> str:
    """One artefact's section: a card per flipped photo shown, and how many more flipped."""
    rows = report.flips.get(result.format, [])
    total = result.gate["disagreements"] if result.gate else len(rows)
    if not total:
        return f'<h3 class="quiet">{escape(result.name)}: no photo flipped</h3>'
    title = f'<h3 id="flips-{escape(result.format)}">{escape(result.name)}: '
    more = total - len(rows)
    summary = f"{total} flipped" + (f", showing the {len(rows)} closest calls; {more} more not shown" if more else "")
    cards = "".join(_card(row) for row in rows)
    return f'{title}{summary}</h3><div class="cards" data-format="{escape(result.format)}">{cards}</div>'


def _card(row: dict[str, Any]) -> str:
    path = Path(row["image"])
    thumbnail = _thumbnail(path)
    picture = (f'<img alt="" src="data:image/jpeg;base64,{thumbnail}">' if thumbnail
               else '<div class="none">unreadable</div>')
    label = row.get("label")
    known = f"<dt>label</dt><dd>{escape(label)}</dd>" if label is not None else ""
    return (f'<div class="card flip" title="{escape(str(path))}">{picture}<dl>'
            f'<div class="name">{escape(path.name)}</div>{known}'
            f'<dt>float</dt><dd class="was">{escape(row["float"]["label"])} {row["float"]["score"]:.3f}</dd>'
            f'<dt>artefact</dt><dd class="now">{escape(row["artefact"]["label"])} '
            f'{row["artefact"]["score"]:.3f}</dd></dl></div>')


def _thumbnail(path: Path) -> str:
    """A base64 JPEG of the photo, upright, its longer side `THUMBNAIL_PX`; "" when it cannot be read."""
    from edgetl.runtime.image import load_image

    try:
        image = load_image(path)
    except EdgetlError:  # deleted or changed since verify decoded it: the card says so
        return ""
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode()
