"""inspect: .tflite and .onnx files described without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _export_shared import Exported, exported_run
from conftest import shared_path
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.errors import EdgetlError
from edgetl.inspect import inspect_model

runner = CliRunner()


@pytest.fixture(scope="session")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported_run(tiny_run, tmp_path_factory)


def test_int8_tflite(exported: Exported) -> None:
    report = inspect_model(exported.run / "export" / "model_tflite-int8.tflite")
    (inp,), (out,) = report.inputs, report.outputs
    assert (inp.dtype, inp.shape[1:], inp.zero_point) == ("uint8", (64, 64, 3), 0) and inp.scale > 0
    assert out.dtype == "uint8" and out.shape[-1] == 3 and out.scale == pytest.approx(1 / 256)
    assert report.ops["CONV_2D"] > 10 and "SOFTMAX" in report.ops
    assert report.edgetl["labels"] == ["blue", "green", "red"] and report.edgetl["format"] == "tflite-int8"
    assert report.tflite_metadata["labels_file"] == "labels.txt"
    assert report.details["packed_files"] == ["labels.txt", "edgetl.json"]
    assert report.edgetpu["fully_mappable"] is True


def test_fp32_tflite_is_not_edgetpu_mappable(exported: Exported) -> None:
    report = inspect_model(exported.run / "export" / "model_tflite-fp32.tflite")
    assert report.inputs[0].dtype == "float32" and not report.inputs[0].quantized
    assert report.to_dict()["inputs"][0]["scale"] is None  # what `inspect --json` prints for a float tensor
    assert report.edgetpu["first_unmappable"] is not None
    assert any("float32" in reason for op in report.edgetpu["ops"] for reason in op["reasons"])


def test_onnx(exported: Exported) -> None:
    report = inspect_model(exported.run / "export" / "model_onnx-int8.onnx")
    assert report.format == "onnx" and report.details["opset"] == 17 and report.details["quantized"]
    assert report.inputs[0].name == "pixels" and report.inputs[0].shape == (-1, 64, 64, 3)
    assert report.metadata_props["labels"] == "blue\ngreen\nred"
    assert report.edgetl["format"] == "onnx-int8" and report.ops["QuantizeLinear"] > 0


def test_third_party_model_metadata() -> None:
    report = inspect_model(shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite"))
    assert report.inputs[0].dtype == "uint8" and report.inputs[0].zero_point == 128
    assert report.tflite_metadata["labels_file"] == "imagenet_labels.txt"
    assert report.tflite_metadata["mean"] == [127.5] and report.edgetl is None
    compiled = inspect_model(shared_path("coral", "mobilenet_v1_0.25_128_quant_edgetpu.tflite"))
    assert list(compiled.ops) == ["CUSTOM:edgetpu-custom-op"]


def test_corrupt_and_truncated_files(exported: Exported, tmp_path: Path) -> None:
    for name in ("model_tflite-fp32.tflite", "model_onnx.onnx"):
        data = (exported.run / "export" / name).read_bytes()
        broken = tmp_path / name
        broken.write_bytes(data[: len(data) // 4])
        with pytest.raises(EdgetlError, match="corrupt or truncated"):
            inspect_model(broken)
    garbage = tmp_path / "x.tflite"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(EdgetlError, match="Not a TFLite model"):
        inspect_model(garbage)
    with pytest.raises(EdgetlError, match="reads .tflite and .onnx"):
        inspect_model(tmp_path / "model.pb")


def test_cli(exported: Exported, tmp_path: Path) -> None:
    model = exported.run / "export" / "model_tflite-int8.tflite"
    result = runner.invoke(app, ["inspect", str(model)])
    assert result.exit_code == 0, result.output
    assert "CONV_2D" in result.stdout and "Edge TPU pre-flight" in result.stdout
    result = runner.invoke(app, ["inspect", str(model), "--json"])
    assert json.loads(result.stdout)["inputs"][0]["dtype"] == "uint8"
    result = runner.invoke(app, ["inspect", str(tmp_path / "missing.tflite")])
    assert result.exit_code == 2 and "Model file not found" in result.stderr


def test_inspect_does_not_import_tensorflow(exported: Exported) -> None:
    code = (
        "import sys; from edgetl.inspect import inspect_model; "
        f"inspect_model({str(exported.run / 'export' / 'model_tflite-int8.tflite')!r}); "
        f"inspect_model({str(exported.run / 'export' / 'model_onnx.onnx')!r}); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
