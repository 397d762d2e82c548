"""verify.html: one self-contained page, rendered in real headless Chromium.

The tiny run's artefacts agree with its float model on every photo, so the flips the page shows
are made here: `flipped_photos` (the function verify uses) on made-up artefact scores over real
photos, set into a real `verify` report of 1,200+ photos (a probe set) with matching counts.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _export_shared import Exported, exported_run
from PIL import Image

from edgetl.verify import VerifyReport, verify
from edgetl.verify.reports import THUMBNAIL_PX, _thumbnail, write_reports
from edgetl.verify.sample_gate import MAX_FLIPS, flipped_photos

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
FLIPPED = {"tflite-int8": 45, "onnx-int8": 3}


@pytest.fixture(scope="session")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported_run(tiny_run, tmp_path_factory)


@pytest.fixture(scope="module")
def probe_report(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> VerifyReport:
    """A real verify of the run's held-out photos plus 1,200 probe photos, with flips set in."""
    probe = tmp_path_factory.mktemp("probe")
    rng = np.random.default_rng(1)
    for i in range(1200):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(probe / f"probe_{i:04d}.png")
    report = verify(exported.run, probe=probe, write=False)
    assert report.images > 1200
    paths = [Path(p) for p in sorted(str(p) for p in probe.glob("*.png"))]
    return _with_flips(report, paths)


def _with_flips(report: VerifyReport, paths: list[Path]) -> VerifyReport:
    """The report with FLIPPED[format] photos flipped for those formats (photo i is class i % 3, but photo 1
    has no class)."""
    labels = ["red", "green", "blue"]
    truth = np.arange(len(paths)) % 3
    truth[1] = -1  # a probe photo without a class: its card shows no label
    ref = np.full((len(paths), 3), 0.1)
    ref[np.arange(len(paths)), truth] = 0.8
    outputs = {}
    for fmt, count in FLIPPED.items():
        probs = ref.copy()
        probs[:count] = np.roll(probs[:count], 1, axis=1)
        outputs[fmt] = probs
    flips = flipped_photos(paths, ref, outputs, labels, truth)
    results = tuple(dataclasses.replace(r, gate={**r.gate, "disagreements": FLIPPED.get(r.format, 0)},
                                        top1_agreement=1 - FLIPPED.get(r.format, 0) / report.images)
                    for r in report.results)
    return dataclasses.replace(report, results=results, flips=flips)


def test_html_inlines_only_flipped_photos_and_says_how_many_more(probe_report: VerifyReport, tmp_path: Path) -> None:
    write_reports(probe_report, tmp_path)
    page = (tmp_path / "verify.html").read_text(encoding="utf-8")
    shown = {fmt: min(count, MAX_FLIPS) for fmt, count in FLIPPED.items()}
    assert page.count("data:image/jpeg;base64,") == sum(shown.values())
    assert f"45 flipped, showing the {MAX_FLIPS} closest calls; {45 - MAX_FLIPS} more not shown" in page
    assert "no photo flipped" in page and "3 flipped</h3>" in page
    rows = [row for shown_rows in probe_report.flips.values() for row in shown_rows]
    assert page.count("<dt>label</dt>") == sum(row["label"] is not None for row in rows) < len(rows)
    # 1,200+ photos, 23 thumbnails of at most 96 px and the plot: a small page
    assert (tmp_path / "verify.html").stat().st_size < 400_000
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page and "<link" not in page
    assert not list(tmp_path.glob(".*partial*"))  # written atomically: no temporary left behind


def test_thumbnail_is_upright_and_small(tmp_path: Path) -> None:
    """An EXIF-rotated photo is shown as a person sees it, its longer side THUMBNAIL_PX."""
    photo = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.new("RGB", (400, 200), (200, 40, 40)).save(photo, exif=exif)
    thumb = Image.open(io.BytesIO(base64.b64decode(_thumbnail(photo))))
    assert thumb.format == "JPEG" and thumb.size == (THUMBNAIL_PX // 2, THUMBNAIL_PX)
    assert _thumbnail(tmp_path / "gone.jpg") == ""  # a photo deleted since verify: the card says so


def test_verify_writes_html_beside_the_other_reports(exported: Exported) -> None:
    verify(exported.run)
    page = (exported.run / "export" / "verify.html").read_text(encoding="utf-8")
    assert page.count('<tr data-format="') == 6 and "PASS" in page and "no photo flipped" in page


def test_chromium_renders_the_page_with_its_table_and_cards(probe_report: VerifyReport, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs Debian's chromium (apt-get install -y chromium; .ci/run installs it)")
    out = tmp_path / "export"
    out.mkdir()
    write_reports(probe_report, out)
    url = (out / "verify.html").as_uri()
    base = [chromium, *CHROMIUM_FLAGS, "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*base, f"--user-data-dir={tmp_path / 'a'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    shot = tmp_path / "verify.png"
    subprocess.run([*base, f"--user-data-dir={tmp_path / 'b'}", "--window-size=1280,2200", "--hide-scrollbars",
                    f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120, check=True)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('<tr data-format="') == len(probe_report.results) == 6
    sections = dict(re.findall(r'<div class="cards" data-format="([^"]+)">(.*?)(?=<h3|</main>)', dom.stdout, re.S))
    cards = {fmt: section.count('class="card flip"') for fmt, section in sections.items()}
    assert cards == {fmt: min(count, MAX_FLIPS) for fmt, count in FLIPPED.items()}
    assert ":CONSOLE" not in dom.stderr, dom.stderr  # Chromium logs every console message there
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2200, 1280) and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
