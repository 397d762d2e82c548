"""ONNX (NCHW, dynamic batch, metadata_props) and every kind of bad input, through the API,
`edgetl predict` and `python -m edgetl.runtime`: one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, shared_path
from PIL import Image
from runtime_onnx_models import NCHW_LABELS, write_nchw_classifier, write_rank2_model
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.errors import EdgetlError
from edgetl.runtime import Classifier
from edgetl.spec import ModelMetadata, PreprocessingSpec

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good and bad models and images, all made here."""
    root = tmp_path_factory.mktemp("inputs")
    good = write_nchw_classifier(root / "nchw.onnx")
    data = good.read_bytes()
    (root / "empty.tflite").write_bytes(b"")
    (root / "garbage.tflite").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "garbage.onnx").write_bytes(np.random.default_rng(1).bytes(4096))
    (root / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (root / "onnx_named.tflite").write_bytes(data)
    write_rank2_model(root / "rank2.onnx")
    Image.new("RGB", (40, 30), (250, 250, 250)).save(root / "white.png")
    Image.new("RGB", (40, 30), (5, 5, 5)).save(root / "black.png")
    (root / "not_an_image.jpg").write_text("hello")
    (root / "a_directory.png").mkdir()
    return {path.name: path for path in root.iterdir()} | {"root": root}


def test_nchw_onnx_model_reads_metadata_props_and_transposes(files: dict[str, Path]) -> None:
    clf = Classifier.from_file(files["nchw.onnx"])
    assert clf.labels == NCHW_LABELS and clf.backend == "onnxruntime"
    assert clf.input_info.layout == "NCHW" and clf.spec.layout == "NCHW"
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)
    tensor = clf.quantize_input(pixels)
    assert tensor.shape == (5, 3, 8, 8) and tensor.dtype == np.float32
    assert np.array_equal(tensor, pixels.transpose(0, 3, 1, 2).astype(np.float32))
    assert clf.run_pixels(pixels).shape == (5, 2)  # dynamic batch: one call
    white, black = clf.classify([files["white.png"], files["black.png"]], top_k=1)
    assert (white[0].label, black[0].label) == ("bright", "dark")


def test_onnx_without_metadata_uses_the_sidecar_else_indices(tmp_path: Path) -> None:
    model = write_nchw_classifier(tmp_path / "bare.onnx", embed_metadata=False)
    assert Classifier.from_file(model).labels == ("0", "1")
    meta = ModelMetadata(labels=("night", "day"), preprocessing=PreprocessingSpec(image_size=(8, 8), layout="NCHW"))
    (tmp_path / "bare.json").write_text(meta.to_json())
    assert Classifier.from_file(model).labels == ("night", "day")


@pytest.mark.parametrize("text", ['{"labels": ["mine"], "note": "my own notes"}', "[1, 2, 3]", "not JSON at all", "\xff\xfe"])
def test_a_users_own_json_beside_the_model_is_not_taken_for_metadata(tmp_path: Path, text: str) -> None:
    model = write_nchw_classifier(tmp_path / "bare.onnx", embed_metadata=False)
    (tmp_path / "bare.json").write_text(text, encoding="latin-1")
    assert Classifier.from_file(model).labels == ("0", "1")


def test_a_folder_is_every_photo_below_it_in_sorted_order(files: dict[str, Path], tmp_path: Path) -> None:
    for name in ("b.png", "a.png", "sub/c.png", ".hidden.png", ".git/d.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(files["white.png"], tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a photo")
    expected = [str(tmp_path / name) for name in ("a.png", "b.png", "sub/c.png")]
    result = _module_cli(files["nchw.onnx"], tmp_path, files["black.png"], "--json", "--top-k", "1")
    assert result.returncode == 0, result.stderr
    assert [r["image"] for r in json.loads(result.stdout)] == [*expected, str(files["black.png"])]
    result = runner.invoke(app, ["predict", str(files["nchw.onnx"]), str(tmp_path), "--json"])
    assert result.exit_code == 0 and [r["image"] for r in json.loads(result.stdout)] == expected


BAD_MODELS = {
    "missing.tflite": "Model file not found",
    "empty.tflite": "Model file is empty",
    "garbage.tflite": "Not a valid TFLite model",
    "garbage.onnx": "Not a valid ONNX model",
    "truncated.onnx": "Not a valid ONNX model",
    "onnx_named.tflite": "looks like an ONNX model named .tflite",
    "rank2.onnx": "input is not an RGB image",
    "a_directory.png": "got a directory",
}
BAD_IMAGES = {
    "not_an_image.jpg": "Not a readable image",
    "a_directory.png": "The folder holds no photos",
    "missing.jpg": "Image file not found",
}


def _path(files: dict[str, Path], name: str) -> Path:
    return files.get(name, files["root"] / name)


@pytest.mark.parametrize("name", BAD_MODELS)
def test_bad_model_is_one_line_and_exit_2_in_edgetl_predict(files: dict[str, Path], name: str) -> None:
    result = runner.invoke(app, ["predict", str(_path(files, name)), str(files["white.png"])])
    assert result.exit_code == 2, result.output
    assert BAD_MODELS[name] in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", BAD_IMAGES)
def test_bad_image_is_one_line_and_exit_2_in_edgetl_predict(files: dict[str, Path], name: str) -> None:
    result = runner.invoke(app, ["predict", str(files["nchw.onnx"]), str(_path(files, name))])
    assert result.exit_code == 2, result.output
    assert BAD_IMAGES[name] in result.stderr


def test_tflite_named_onnx_is_refused(tmp_path: Path) -> None:
    renamed = tmp_path / "coral.onnx"
    shutil.copy(shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite"), renamed)
    result = runner.invoke(app, ["predict", str(renamed), str(shared_path("coral", "cat.bmp"))])
    assert result.exit_code == 2
    assert "TFLite model named .onnx" in result.stderr and "coral.tflite" in result.stderr


def test_model_failing_in_the_interpreter_is_exit_2() -> None:
    model = shared_path("coral", "invalid", "model_invoking_error.tflite")
    result = runner.invoke(app, ["predict", str(model), str(shared_path("coral", "cat.bmp"))])
    assert result.exit_code == 2
    assert "fake-op-double" in result.stderr


def test_wrong_length_labels_file_is_refused_keeping_the_models_labels(files: dict[str, Path], tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    message = "the model has 2 outputs, the file has 3 labels"
    with pytest.raises(EdgetlError, match=message):
        Classifier.from_file(files["nchw.onnx"], labels=labels)
    assert Classifier.from_file(files["nchw.onnx"]).labels == NCHW_LABELS  # the model's own labels stay
    result = runner.invoke(app, ["predict", str(files["nchw.onnx"]), str(files["white.png"]), "--labels", str(labels)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr and str(labels) in result.stderr
    module = _module_cli(files["nchw.onnx"], files["white.png"], "--labels", labels)
    assert module.returncode == 2 and module.stdout == "" and message in module.stderr


def _module_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "edgetl.runtime", *map(str, args)], capture_output=True, text=True, env=env, timeout=60
    )


def test_python_m_runtime_bad_inputs_exit_2_with_one_line(files: dict[str, Path]) -> None:
    # One subprocess per case costs ~0.3 s; a few representative cases cover the wiring.
    invoking_error = shared_path("coral", "invalid", "model_invoking_error.tflite")
    cases = [
        ([files["garbage.tflite"], files["white.png"]], BAD_MODELS["garbage.tflite"]),
        ([files["rank2.onnx"], files["white.png"]], BAD_MODELS["rank2.onnx"]),
        ([files["nchw.onnx"], files["a_directory.png"]], BAD_IMAGES["a_directory.png"]),
        ([files["nchw.onnx"], files["not_an_image.jpg"]], BAD_IMAGES["not_an_image.jpg"]),
        ([invoking_error, files["white.png"]], "fake-op-double"),
    ]
    for args, message in cases:
        result = _module_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr


def test_python_m_runtime_predicts_as_json(files: dict[str, Path]) -> None:
    result = _module_cli(files["nchw.onnx"], files["white.png"], files["black.png"], "--json", "--top-k", "1")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [r["top_k"][0]["label"] for r in records] == ["bright", "dark"]
    assert set(records[0]) == {"image", "top_k"} and set(records[0]["top_k"][0]) == {"label", "index", "score"}


def test_onnx_bare_labels_prop_is_used_without_edgetl_json(tmp_path: Path) -> None:
    import onnx

    model = write_nchw_classifier(tmp_path / "labelled.onnx", embed_metadata=False)
    proto = onnx.load(model)
    onnx.helper.set_model_props(proto, {"labels": "night\nday\n"})
    onnx.save(proto, model)
    assert Classifier.from_file(model).labels == ("night", "day")


def test_label_count_warning_names_where_the_metadata_was_read(tmp_path: Path) -> None:
    import onnx

    embedded = write_nchw_classifier(tmp_path / "embedded.onnx")
    proto = onnx.load(embedded)
    wrong = ModelMetadata(labels=("a", "b", "c"), preprocessing=PreprocessingSpec(image_size=(8, 8), layout="NCHW"))
    onnx.helper.set_model_props(proto, {"edgetl.json": wrong.to_json()})
    onnx.save(proto, embedded)
    sidecar = write_nchw_classifier(tmp_path / "beside.onnx", embed_metadata=False)
    sidecar.with_suffix(".json").write_text(wrong.to_json())
    for model, source in ((embedded, "the edgetl.json inside 'embedded.onnx'"), (sidecar, "the sidecar 'beside.json'")):
        with pytest.warns(UserWarning, match=f"The model has 2 outputs but {source} has 3 labels"):
            Classifier.from_file(model)
