"""Export of a real (tiny) trained run to all six formats, with real converters and interpreters."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _export_shared import Exported, copy_run, exported_run
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.errors import EdgetlError
from edgetl.export import ALL_FORMATS, FORMATS, ExportOptions, artefact_path, export
from edgetl.export.edgetpu import compiler_path

runner = CliRunner()


@pytest.fixture(scope="session")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported_run(tiny_run, tmp_path_factory)


def test_all_six_formats_are_written_whole_and_load(exported: Exported) -> None:
    from edgetl.runtime import Classifier

    report = exported.report
    assert report.ok, [(r.format, r.error) for r in report.failures]
    assert [r.format for r in report.results] == list(ALL_FORMATS)
    labels = tuple((exported.run / "labels.txt").read_text().split())
    export_dir = exported.run / "export"
    for result in report.results:
        assert result.path == artefact_path(export_dir, result.format)
        assert result.size_bytes == result.path.stat().st_size > 0
        sidecar = json.loads(result.path.with_suffix(".json").read_text())
        assert sidecar["format"] == result.format and tuple(sidecar["labels"]) == labels
        clf = Classifier.from_file(result.path)
        assert clf.labels == labels
        assert clf.run_pixels(np.zeros((2, 64, 64, 3), np.uint8)).shape == (2, len(labels))
    assert not list(export_dir.glob("*.partial")) and not list(export_dir.glob(".*partial*"))
    assert json.loads((export_dir / "export.json").read_text())["ok"] is True


def test_calibration_is_stratified_and_small_sets_are_flagged(exported: Exported) -> None:
    calib = exported.report.calibration
    assert calib["source"].startswith("training split")
    counts = calib["class_counts"]
    assert set(counts) == {"red", "green", "blue"} and min(counts.values()) > 0
    # The tiny run has 24 training images: fewer than int8 calibration wants, which is said.
    assert any("calibration images" in w for w in exported.warnings)


def test_tflite_metadata_round_trips(exported: Exported) -> None:
    from edgetl.runtime.tflite_reader import read_metadata

    labels = (exported.run / "labels.txt").read_text()
    for fmt in ("tflite-fp32", "tflite-int8"):
        path = artefact_path(exported.run / "export", fmt)
        with zipfile.ZipFile(path) as zf:  # the associated files are a zip appended to the model
            assert zf.read("labels.txt").decode() == labels
            embedded = json.loads(zf.read("edgetl.json"))
        assert embedded == json.loads(path.with_suffix(".json").read_text())
        standard = read_metadata(path.read_bytes())
        assert standard.labels_file == "labels.txt"
        assert ("labels.txt", "TENSOR_AXIS_LABELS") in standard.associated_files
        assert standard.input.color_space == "RGB" and standard.input.size == (64, 64)
        assert standard.input.mean == (0.0, 0.0, 0.0) and standard.input.std == (1.0, 1.0, 1.0)
        assert standard.min_parser_version == "1.0.0"
    int8 = json.loads(artefact_path(exported.run / "export", "tflite-int8").with_suffix(".json").read_text())
    assert int8["extra"]["input"]["dtype"] == "uint8" and int8["extra"]["output"]["dtype"] == "uint8"
    assert int8["extra"]["calibration_images"] > 0


def test_onnx_metadata_props_and_opset(exported: Exported) -> None:
    import onnx

    for fmt in ("onnx", "onnx-int8"):
        model = onnx.load(str(artefact_path(exported.run / "export", fmt)))
        props = {p.key: p.value for p in model.metadata_props}
        assert props["labels"].split("\n") == (exported.run / "labels.txt").read_text().split()
        meta = json.loads(props["edgetl.json"])
        assert meta["format"] == fmt and meta["extra"]["onnx_opset"] == 17
        assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {17}
    int8_ops = {n.op_type for n in onnx.load(str(artefact_path(exported.run / "export", "onnx-int8"))).graph.node}
    assert "QuantizeLinear" in int8_ops and "DequantizeLinear" in int8_ops


def test_quantized_artefacts_are_smaller(exported: Exported) -> None:
    sizes = {r.format: r.size_bytes for r in exported.report.results}
    assert sizes["tflite-int8"] < 0.5 * sizes["tflite-fp32"]
    assert sizes["tflite-fp16"] < 0.6 * sizes["tflite-fp32"]
    assert sizes["onnx-int8"] < 0.5 * sizes["onnx"]


def test_golden_vectors_cover_every_artefact(exported: Exported) -> None:
    from edgetl.runtime.golden import check_golden

    golden = json.loads(exported.report.golden.read_text())
    assert set(golden["artefacts"]) == {r.path.name for r in exported.report.results}
    assert len(golden["images"]) == 4
    for fmt in ("tflite-int8", "onnx"):
        assert check_golden(artefact_path(exported.run / "export", fmt), exported.report.golden.parent).passed


def test_edgetpu_preflight_of_the_int8_model(exported: Exported) -> None:
    preflight = exported.report.edgetpu_preflight
    assert preflight["total_ops"] > 50
    assert preflight["fully_mappable"], preflight  # MobileNetV2 int8 uses only Edge TPU ops
    assert (exported.run / "export" / "edgetpu_preflight.json").is_file()


def test_one_failing_format_keeps_the_others(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    run = copy_run(tiny_run, tmp_path_factory, "failing")
    # An edgetpu_compiler that rejects the model: the edgetpu format fails for real, after the int8
    # conversion (a missing compiler is refused before any conversion starts).
    bin_dir = tmp_path_factory.mktemp("failing_compiler")
    compiler = bin_dir / "edgetpu_compiler"
    compiler.write_text("#!/bin/sh\necho 'Model not quantized' >&2\nexit 1\n")
    compiler.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = runner.invoke(app, ["export", str(run), "--formats", "tflite-int8,edgetpu", "--io-dtype", "int8", "--no-golden"], env=env)
    assert result.exit_code == 1, result.output
    assert "edgetpu failed" in result.stderr and "edgetpu_compiler failed (exit 1): Model not quantized" in result.stderr
    int8 = artefact_path(run / "export", "tflite-int8")
    assert int8.is_file() and int8.with_suffix(".json").is_file()
    report = json.loads((run / "export" / "export.json").read_text())
    assert [r["format"] for r in report["results"] if r["error"]] == ["edgetpu"]
    assert set(report["manifest"]["files"]) >= {int8.name, "model_edgetpu_preflight.json"}
    preflight = json.loads((run / "export" / "model_edgetpu_preflight.json").read_text())
    assert preflight["fully_mappable"]
    assert not any("dynamic batch" in note for note in preflight["notes"])
    # Not a terminal: one progress line per format, no escape codes.
    assert "==> tflite-int8: model_tflite-int8.tflite" in result.stdout and "==> edgetpu: failed" in result.stdout
    assert "\x1b" not in result.stdout
    from edgetl.runtime import Classifier

    clf = Classifier.from_file(int8)
    assert clf.input_info.dtype == "int8" and clf.output_info.dtype == "int8"


@pytest.mark.skipif(compiler_path() is not None, reason="edgetpu_compiler is installed here")
def test_missing_edgetpu_compiler_stops_before_any_conversion(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    run = copy_run(tiny_run, tmp_path_factory, "no-compiler")
    result = runner.invoke(app, ["export", str(run), "--formats", "tflite-int8,edgetpu"])
    assert result.exit_code == 2, result.output
    int8 = run / "export" / "model_tflite-int8.tflite"
    assert result.stderr.startswith("error: edgetpu_compiler is not on PATH") and len(result.stderr.splitlines()) == 1
    assert f"edgetpu_compiler -s -o {int8.parent} {int8}" in result.stderr
    assert not (run / "export").exists()


def test_options_are_validated_before_any_work(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as archive:  # a whole archive, never loaded:
        archive.writestr("config.json", "the options and the run's splits are checked first")
    with pytest.raises(EdgetlError, match="Did you mean 'tflite-int8'"):
        ExportOptions(formats=("tflite_int8",))
    with pytest.raises(EdgetlError, match="io_dtype is set but none of the requested formats"):
        export(tmp_path, ExportOptions(formats=("tflite-fp32",), io_dtype="int8"))
    with pytest.raises(EdgetlError, match="onnx_opset must be in"):
        ExportOptions(onnx_opset=9)
    with pytest.raises(EdgetlError, match="need calibration images"):
        export(tmp_path, ExportOptions(formats=("tflite-int8",)))  # no splits.json to draw from
    assert ExportOptions(formats=("all", "edgetpu")).resolved_formats == (*ALL_FORMATS, "edgetpu")


def test_every_option_field_is_documented() -> None:
    import dataclasses

    for field in dataclasses.fields(ExportOptions):
        assert f"{field.name}:" in ExportOptions.__doc__
    assert set(ALL_FORMATS) < set(FORMATS)


def test_cli_export_bad_input_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "Run directory not found" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["export", str(empty), "--formats", "onnx"])
    assert result.exit_code == 2 and "has no model.keras" in result.stderr
    result = runner.invoke(app, ["export", str(empty), "--pretrained", "mobilenet_v2"])
    assert result.exit_code == 2 and "either RUN_DIR or --pretrained" in result.stderr
    result = runner.invoke(app, ["export", "--pretrained", "mobilenet_v3", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Did you mean 'mobilenet_v2'" in result.stderr


def test_android_assets_get_the_int8_model(exported: Exported, tmp_path: Path) -> None:
    from edgetl.export import copy_to_android_assets

    asset = copy_to_android_assets(exported.report, tmp_path / "app" / "src" / "main" / "assets")
    assert asset.name == "model.tflite"
    assert asset.read_bytes() == (exported.run / "export" / "model_tflite-int8.tflite").read_bytes()
    assert [p.name for p in asset.parent.iterdir()] == ["model.tflite"]


def test_cli_android_assets_flag(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    run = copy_run(tiny_run, tmp_path_factory, "android")
    result = runner.invoke(app, ["export", str(run), "--formats", "tflite-fp16", "--no-golden", "--android-assets", str(tmp_path / "assets")])
    assert result.exit_code == 0, result.output
    assert "Android asset:" in result.output
    assert (tmp_path / "assets" / "model.tflite").read_bytes() == (run / "export" / "model_tflite-fp16.tflite").read_bytes()


def test_the_worker_process_takes_the_largest_tflite_formats_only_when_it_pays() -> None:
    from edgetl.export.parallel import ROUNDING_COST, _worker_share

    def share(formats: tuple[str, ...], stay: tuple[str, ...] = (), rounding: float = 0.0) -> list[str]:
        return _worker_share([f for f in formats if f not in stay], formats, rounding)

    assert share(ALL_FORMATS) == ["tflite-int8", "tflite-fp32"]
    assert share(("tflite-int8", "onnx")) == ["tflite-int8"]
    assert share(("tflite-int8",)) == []  # alone: a worker start would only add time
    assert share(("onnx", "onnx-int8")) == []  # they trace the Keras model, which stays here
    # gptq: the kernels are rounded here first; the worker converts the float formats while it waits for them
    assert share(ALL_FORMATS, rounding=ROUNDING_COST) == ["tflite-int8", "tflite-fp32", "tflite-dynamic", "tflite-fp16"]
    assert share(("tflite-int8", "onnx"), rounding=ROUNDING_COST) == ["tflite-int8"]
    assert share(("tflite-int8",), rounding=ROUNDING_COST) == []  # nothing here to overlap it with
    # auto compares recipes on the float model here: the int8 TFLite conversions stay, the float ones move
    assert share(ALL_FORMATS, stay=("tflite-int8",)) == ["tflite-fp32", "tflite-dynamic", "tflite-fp16"]


def test_only_expected_errors_count_as_a_failed_format(tmp_path: Path) -> None:
    from edgetl.export.parallel import timed

    result = timed("onnx", lambda: (_ for _ in ()).throw(EdgetlError("the model has an op ONNX lacks")))
    assert result.path is None and result.error == "EdgetlError: the model has an op ONNX lacks"
    with pytest.raises(AttributeError):  # a bug in edgetl keeps its traceback
        timed("onnx", lambda: None.stat())  # type: ignore[attr-defined]
    artefact = tmp_path / "model_onnx.onnx"
    artefact.write_bytes(b"12345")
    assert timed("onnx", lambda: artefact).size_bytes == 5
