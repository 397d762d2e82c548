"""verify: every artefact of the tiny run against its float Keras model, through the runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _export_shared import Exported, copy_run, exported_run
from edgetl.cli import app
from edgetl.errors import EdgetlError
from edgetl.export import ALL_FORMATS
from edgetl.verify import VerifyReport, verify

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
    assert report.labelled and report.images > 0 and report.data.startswith("test split")
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


def test_unlabelled_images_measure_agreement_only(exported: Exported) -> None:
    photos = sorted((exported.run / "export" / "golden").glob("*.png"))
    report = verify(exported.run, images=photos, write=False)
    assert report.passed and not report.labelled and report.images == len(photos)
    assert all(r.accuracy is None and r.top1_agreement == 1.0 for r in report.results)
