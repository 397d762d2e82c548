"""Broken, foreign and awkward model files, through `edgetl predict`, `inspect`, `bench` and the API.

Every case is one `error:` line and exit 2 (never a traceback), and nothing is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _export_shared import Exported, exported_run
from conftest import shared_path
from PIL import Image
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.errors import EdgetlError
from edgetl.runtime import Classifier

runner = CliRunner()


@pytest.fixture(scope="session")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported_run(tiny_run, tmp_path_factory)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "red.png"
    Image.new("RGB", (50, 70), (200, 30, 30)).save(path)
    return path


def _fails(args: list[str], message: str, folder: Path) -> None:
    before = sorted(folder.rglob("*"))
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert sorted(folder.rglob("*")) == before  # nothing written beside the model


def _artefact(exported: Exported, name: str) -> Path:
    return exported.run / "export" / name


@pytest.mark.parametrize("command", ["predict", "inspect", "bench"])
def test_truncated_tflite(exported: Exported, photo: Path, tmp_path: Path, command: str) -> None:
    data = _artefact(exported, "model_tflite-fp32.tflite").read_bytes()
    (tmp_path / "cut.tflite").write_bytes(data[: len(data) // 2])
    args = [command, str(tmp_path / "cut.tflite")] + ([str(photo)] if command == "predict" else [])
    message = {"inspect": "cut.tflite"}.get(command, "Not a valid TFLite model: corrupt, truncated or another format")
    _fails(args, message, tmp_path)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.onnx", b"", "Model file is empty"),
    ("garbage.onnx", bytes(range(256)) * 16, "Not a valid ONNX model: corrupt, truncated or another format"),
    ("garbage.tflite", b"\x1c\x00\x00\x00TFL3" + bytes(200),  # the right magic, then nothing: one line all the same
     "Not a valid TFLite model: corrupt, truncated or another format (Model provided is schema version 0 not equal to supported version 3)"),
])
def test_empty_and_garbage_models(photo: Path, tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    _fails(["predict", str(tmp_path / name), str(photo)], message, tmp_path)


def test_truncated_onnx_from_a_real_export(exported: Exported, photo: Path, tmp_path: Path) -> None:
    data = _artefact(exported, "model_onnx.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) * 2 // 3])
    _fails(["predict", str(tmp_path / "cut.onnx"), str(photo)], "Not a valid ONNX model", tmp_path)


def test_edgetl_tflite_renamed_onnx_says_how_to_fix(exported: Exported, photo: Path, tmp_path: Path) -> None:
    shutil.copy(_artefact(exported, "model_tflite-int8.tflite"), tmp_path / "phone.onnx")
    _fails(["predict", str(tmp_path / "phone.onnx"), str(photo)],
           f"This file is a TFLite model named .onnx. Received: {tmp_path / 'phone.onnx'}. Rename it to phone.tflite", tmp_path)


@pytest.mark.parametrize("command", ["predict", "bench"])
def test_edgetpu_model_without_delegate(photo: Path, command: str) -> None:
    model = shared_path("coral", "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    args = [command, str(model)] + ([str(photo)] if command == "predict" else [])
    _fails(args, "This model is compiled for the Edge TPU and needs its delegate", model.parent)


def test_model_failing_at_invoke_in_bench(photo: Path) -> None:
    model = shared_path("coral", "invalid", "model_invoking_error.tflite")
    _fails(["bench", str(model), "--runs", "2"], "fake-op-double", model.parent)


def _dense_tflite(path: Path, input_shape: tuple[int, ...]) -> Path:
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_model_whose_input_is_not_an_image_is_refused(photo: Path, tmp_path: Path) -> None:
    model = _dense_tflite(tmp_path / "tabular.tflite", (10,))
    _fails(["predict", str(model), str(photo)],
           "The model's input is not an RGB image: expected shape (N, H, W, 3) or (N, 3, H, W). Received: input shape (1, 10)",
           tmp_path)


def test_third_party_model_of_another_input_size_resizes_any_photo(tmp_path: Path) -> None:
    model = Classifier.from_file(_dense_tflite(tmp_path / "odd.tflite", (24, 40, 3)))
    assert model.spec.image_size == (24, 40) and model.labels == ("0", "1", "2")
    Image.new("RGB", (640, 480), (1, 2, 3)).save(tmp_path / "big.png")
    assert model.load_pixels(tmp_path / "big.png").shape == (24, 40, 3)
    assert len(model.classify([tmp_path / "big.png"], top_k=5)[0]) == 3  # top_k beyond the classes: all of them


@pytest.mark.parametrize("name", ["model_tflite-fp32.tflite", "model_tflite-int8.tflite", "model_onnx.onnx"])
def test_batch_of_five_equals_five_single_images(exported: Exported, name: str) -> None:
    clf = Classifier.from_file(_artefact(exported, name))
    pixels = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    batch = clf.run_pixels(pixels)
    single = np.concatenate([clf.run_pixels(pixels[i : i + 1]) for i in range(5)])
    assert batch.shape == (5, 3)
    np.testing.assert_allclose(batch, single, atol=1e-6)


def test_pixels_of_the_wrong_shape_or_type_are_refused(exported: Exported) -> None:
    clf = Classifier.from_file(_artefact(exported, "model_tflite-fp32.tflite"))
    for bad in (np.zeros((1, 32, 32, 3), np.uint8), np.zeros((64, 64, 3), np.uint8), np.zeros((1, 64, 64, 3), np.float32)):
        with pytest.raises(EdgetlError, match=r"Pixels must be a uint8 array of shape \(N, 64, 64, 3\)"):
            clf.run_pixels(bad)
