"""verify: every artefact of the tiny run against its float Keras model, through the runtime."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _export_shared import Exported, copy_run, exported_run
from PIL import Image
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.errors import EdgetlError
from edgetl.export import ALL_FORMATS
from edgetl.rundir import read_split
from edgetl.verify import VerifyReport, render_markdown, sample_note, verify
from edgetl.verify.sample_gate import allowed_count, flipped_photos, judge_sample, wilson_interval

runner = CliRunner()


@pytest.fixture(scope="session")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported_run(tiny_run, tmp_path_factory)


@pytest.fixture(scope="module")
def report(exported: Exported) -> VerifyReport:
    return verify(exported.run)


def test_every_artefact_passes_with_default_thresholds(report: VerifyReport) -> None:
    assert report.passed, report.failures
    assert [r.format for r in report.results] == list(ALL_FORMATS)
    assert report.labelled and report.data.startswith("validation and test splits")
    held_out = json.loads((report.run_dir / "splits.json").read_text())
    assert report.images == len(held_out["val"]) + len(held_out["test"]) > len(held_out["test"])
    assert report.reference["accuracy"] == 1.0  # three solid colours: a confident float model
    for r in report.results:
        assert r.shape_ok and r.top1_agreement == 1.0 and r.accuracy_delta == 0.0
        assert set(r.per_class_delta) == {"red", "green", "blue"}
        assert r.latency_ms_p50 > 0 and r.latency_ms_p95 >= r.latency_ms_p50
    by_format = {r.format: r for r in report.results}
    assert by_format["tflite-fp32"].max_abs_diff < 1e-4 and by_format["onnx"].max_abs_diff < 1e-4
    assert by_format["tflite-fp32"].threshold["atol"] == 1e-4  # from the format's Parity row
    assert report.cross["agreement"] == 1.0 and report.cross["max_abs_diff"] < 1e-4


def test_reports_are_written(exported: Exported, report: VerifyReport) -> None:
    export_dir = exported.run / "export"
    data = json.loads((export_dir / "verify.json").read_text())
    assert data["passed"] is True and len(data["artefacts"]) == 6
    table = (export_dir / "verify.md").read_text()
    assert "model_tflite-int8.tflite" in table and "Verdict: PASS" in table
    assert (export_dir / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_forced_threshold_exits_1_naming_each_artefact(exported: Exported) -> None:
    result = runner.invoke(app, ["verify", str(exported.run), "--min-agreement", "1.01", "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["passed"] is False
    assert set(data["reference"]) >= {"accuracy", "latency_ms_p50"}
    for artefact in data["artefacts"]:
        assert set(artefact) >= {"name", "format", "path", "size_bytes", "accuracy", "agreement", "max_abs_diff",
                                 "latency_ms_p50", "passed"}
        assert artefact["passed"] is False
        assert f"FAIL {artefact['name']}: top-1 agreement" in result.stderr


def test_strict_raises_one_error_listing_every_failure(exported: Exported) -> None:
    with pytest.raises(EdgetlError) as info:
        verify(exported.run, min_agreement=1.01, strict=True, write=False, max_images=3)
    assert str(info.value).count("\n- model_") == 6


def test_bad_input_exits_2(exported: Exported, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    result = runner.invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 2 and "has no model.keras" in result.stderr

    wrong = tmp_path / "test"
    for name in ("red", "purple"):
        (wrong / name).mkdir(parents=True)
        shutil.copy(next((exported.run / "export" / "golden").glob("*.png")), wrong / name / "a.png")
    result = runner.invoke(app, ["verify", str(exported.run), "--data", str(wrong)])
    assert result.exit_code == 2
    assert "['purple']" in result.stderr and "['blue', 'green']" in result.stderr

    broken = copy_run(exported.run, tmp_path_factory, "broken")
    shutil.copytree(exported.run / "export", broken / "export")
    int8 = broken / "export" / "model_tflite-int8.tflite"
    int8.write_bytes(int8.read_bytes()[: int8.stat().st_size // 3])
    result = runner.invoke(app, ["verify", str(broken)])
    assert result.exit_code == 2 and "model_tflite-int8.tflite" in result.stderr


def test_verify_uses_the_float_scores_export_recorded_and_they_are_the_models(
    exported: Exported, report: VerifyReport, tmp_path: Path
) -> None:
    export_dir = exported.run / "export"
    assert "reference.json" in json.loads((export_dir / "export.json").read_text())["manifest"]["files"]
    assert report.reference["scores_from"] == "export/reference.json"
    # The same photos in another folder were not recorded: Keras runs, and agrees with the record.
    for path, label in [*read_split(exported.run, "val"), *read_split(exported.run, "test")]:
        (tmp_path / label).mkdir(exist_ok=True)
        shutil.copy(path, tmp_path / label / Path(path).name)
    computed = verify(exported.run, data=tmp_path, write=False)
    assert computed.reference["scores_from"] == "model.keras"
    assert computed.images == report.images and computed.reference["accuracy"] == report.reference["accuracy"]
    for mine, theirs in zip(computed.results, report.results, strict=True):
        assert mine.top1_agreement == theirs.top1_agreement
        assert abs(mine.max_abs_diff - theirs.max_abs_diff) < 1e-5


def test_altered_recorded_scores_are_ignored_and_the_model_runs(exported: Exported, report: VerifyReport) -> None:
    recorded = exported.run / "export" / "reference.json"
    original = recorded.read_bytes()
    document = json.loads(original)
    document["scores"] = [[1.0] + [0.0] * (len(row) - 1) for row in document["scores"]]  # every photo "red"
    try:
        recorded.write_text(json.dumps(document))
        again = verify(exported.run, write=False)
    finally:
        recorded.write_bytes(original)
    assert again.reference["scores_from"] == "model.keras"
    assert again.reference["accuracy"] == report.reference["accuracy"] == 1.0
    assert [r.top1_agreement for r in again.results] == [r.top1_agreement for r in report.results]


def test_recorded_scores_are_found_by_path_and_content_only(tmp_path: Path) -> None:
    from edgetl.verify.float_reference import FILE, lookup

    photos = []
    for i, colour in enumerate(((200, 30, 30), (30, 180, 40))):
        photos.append(tmp_path / f"photo{i}.png")
        Image.new("RGB", (8, 8), colour).save(photos[-1])
    (tmp_path / FILE).write_text(json.dumps({
        "photos": [{"path": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in photos],
        "scores": [[0.9, 0.1], [0.2, 0.8]], "latency_ms_p50": 3.0, "latency_ms_p95": 4.0,
    }))
    scores, latency_ms = lookup(tmp_path, photos[::-1])
    assert np.array_equal(scores, np.float32([[0.2, 0.8], [0.9, 0.1]])) and latency_ms == (3.0, 4.0)
    assert lookup(tmp_path, [tmp_path / "elsewhere.png"]) is None
    Image.new("RGB", (8, 8), (0, 0, 0)).save(photos[1])  # same path, other photo
    assert lookup(tmp_path, photos) is None


def test_unlabelled_images_measure_agreement_only(exported: Exported) -> None:
    photos = sorted((exported.run / "export" / "golden").glob("*.png"))
    report = verify(exported.run, images=photos, write=False)
    assert report.passed and not report.labelled and report.images == len(photos)
    assert all(r.accuracy is None and r.top1_agreement == 1.0 for r in report.results)


def test_probe_photos_count_towards_agreement_only(exported: Exported, report: VerifyReport) -> None:
    probe = exported.run / "export" / "golden"
    photos = sorted(probe.glob("*.png"))
    probed = verify(exported.run, probe=probe, write=False)
    assert probed.images == report.images + len(photos) and "probe" in probed.data
    for r in probed.results:
        assert r.gate["photos"] == probed.images and r.gate["labelled_photos"] == report.images
        assert r.accuracy == 1.0  # measured on the labelled photos only; a probe has no class
    result = runner.invoke(app, ["verify", str(exported.run), "--probe", str(exported.run / "no-such-folder")])
    assert result.exit_code == 2 and "Probe folder not found" in result.stderr


def test_small_sample_reports_its_interval_and_allowance(report: VerifyReport) -> None:
    assert report.images < 200
    note = sample_note(report)
    assert f"Small sample ({report.images} photos" in note and "Wilson" in note
    assert note in render_markdown(report)
    gate = report.results[0].gate
    assert gate["disagreements"] == 0 and gate["allowed_disagreements"] == allowed_count(report.images, 0.02)


def test_one_photo_on_a_small_split_does_not_flip_the_verdict() -> None:
    """37 photos, min agreement 98%: one or two disagreements pass, three fail; accuracy alike."""
    threshold = {"min_agreement": 0.98, "max_accuracy_drop": 0.02, "atol": None}
    truth = np.arange(37) % 3
    for wrong, passes in ((1, True), (2, True), (3, False)):
        pred = truth.copy()
        pred[:wrong] = (truth[:wrong] + 1) % 3
        gate, failures = judge_sample(pred, truth, truth, threshold)
        assert (not failures) == passes, failures
        assert gate["disagreements"] == gate["photos_lost"] == wrong and gate["allowed_disagreements"] == 2
    lo, hi = gate["agreement_interval"]
    assert lo < 34 / 37 < hi


def test_count_gate_tightens_with_sample_size() -> None:
    shares = [allowed_count(n, 0.02) / n for n in (37, 100, 310, 1000, 10_000)]
    assert shares == sorted(shares, reverse=True) and 0.02 < shares[-1] < 0.025
    assert allowed_count(1000, 0.0) == 0 and allowed_count(50, -0.01) == -1
    for k, n in ((0, 10), (5, 10), (37, 37)):
        lo, hi = wilson_interval(k, n)
        assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_flipped_photos_name_both_scores_closest_call_first() -> None:
    ref = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.7, 0.3]])
    int8 = np.array([[0.4, 0.6], [0.45, 0.55], [0.2, 0.8], [0.7, 0.3]])
    flips = flipped_photos([Path(f"{i}.png") for i in range(4)], ref, {"tflite-int8": int8, "onnx": ref}, ["cat", "dog"])
    assert list(flips) == ["tflite-int8"]  # an artefact that agrees everywhere lists nothing
    assert [Path(r["image"]).name for r in flips["tflite-int8"]] == ["1.png", "0.png"]
    assert flips["tflite-int8"][1] == {"image": "0.png", "float": {"label": "cat", "score": 0.9},
                                       "artefact": {"label": "dog", "score": 0.6, "float_label_score": 0.4}}
