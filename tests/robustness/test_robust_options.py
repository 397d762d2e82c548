"""Every numeric option is checked when the options are built: range, NaN and infinity, through
the Python API as through the CLI (one `error:` line, exit 2)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgetl.backbones import BackboneOptions
from edgetl.cli import app
from edgetl.errors import EdgetlError
from edgetl.export import ExportOptions
from edgetl.train import TrainOptions

runner = CliRunner()
BAD_FLOATS = (math.nan, math.inf, -math.inf)


@pytest.mark.parametrize("field", ["learning_rate", "fine_tune_learning_rate", "dropout", "val_split", "test_split", "subset"])
@pytest.mark.parametrize("value", [*BAD_FLOATS, -1.0, 1e9])
def test_train_float_options_refuse_nan_infinity_and_out_of_range(field: str, value: float) -> None:
    with pytest.raises(EdgetlError, match=f"{field} must be a finite number in"):
        TrainOptions(**{field: value})


@pytest.mark.parametrize("field", ["epochs", "fine_tune_epochs", "fine_tune_layers", "batch_size", "patience", "seed"])
@pytest.mark.parametrize("value", [-1, 10**12, 2.5, math.nan])
def test_train_integer_options_refuse_out_of_range_and_non_integers(field: str, value: float) -> None:
    with pytest.raises(EdgetlError, match=f"{field} must be an integer in"):
        TrainOptions(**{field: value})


@pytest.mark.parametrize("kwargs", [{"alpha": math.nan}, {"alpha": math.inf}, {"image_size": 100_000}, {"image_size": 8}])
def test_backbone_options_refuse_nan_and_absurd_sizes(kwargs: dict) -> None:
    with pytest.raises(EdgetlError, match="must be"):
        BackboneOptions(**kwargs)


@pytest.mark.parametrize("kwargs", [{"calibration_size": 0}, {"calibration_size": 1.5}, {"seed": -1}])
def test_export_options_refuse_out_of_range(kwargs: dict) -> None:
    with pytest.raises(EdgetlError, match="must be an integer in"):
        ExportOptions(**kwargs)


@pytest.mark.parametrize("args", [("--learning-rate", "nan"), ("--seed", "-1"), ("--image-size", "100000"),
                                  ("--val-split", "inf"), ("--batch-size", "0")])
def test_cli_numbers_are_one_line_exit_2(tmp_path: Path, args: tuple[str, str]) -> None:
    result = runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.output


def test_verify_thresholds_and_thread_counts_are_bounded(tmp_path: Path) -> None:
    from edgetl.verify import verify

    for kwargs in ({"min_agreement": math.nan}, {"max_accuracy_drop": math.inf}, {"max_images": 0}):
        with pytest.raises(EdgetlError, match="must be"):
            verify(tmp_path, **kwargs)
    model = Path(__file__).resolve().parents[2].parent / "shared" / "coral" / "mobilenet_v1_0.25_128_quant.tflite"
    if not model.is_file():
        pytest.skip("needs ../shared/coral")
    result = runner.invoke(app, ["predict", str(model), str(model), "--threads", "50000"])
    assert result.exit_code == 2 and "threads must be in [1, " in result.stderr


def test_a_zip_bomb_appended_to_a_model_never_inflates(tmp_path: Path) -> None:
    """200 MB of zeros deflated to 200 KB, zipped into a third-party model as edgetl.json."""
    import shutil
    import tracemalloc
    import warnings
    import zipfile

    from edgetl.runtime import Classifier

    source = Path(__file__).resolve().parents[2].parent / "shared" / "coral" / "mobilenet_v1_0.25_128_quant.tflite"
    if not source.is_file():
        pytest.skip("needs ../shared/coral")
    model = tmp_path / "bomb.tflite"
    shutil.copy(source, model)
    with zipfile.ZipFile(model, "a", compression=zipfile.ZIP_DEFLATED) as archive, archive.open("edgetl.json", "w", force_zip64=True) as entry:
        zeros = bytes(1 << 20)
        for _ in range(200):
            entry.write(zeros)
    assert model.stat().st_size < source.stat().st_size + (2 << 20)
    tracemalloc.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = Classifier.from_file(model)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40 << 20, peak  # the model itself, not 200 MB
    assert any("Ignored the file 'edgetl.json'" in str(w.message) for w in caught)
    assert len(clf.labels) == 1001  # its own TFLite metadata labels still read


def _nchw(tmp_path: Path) -> Path:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from runtime_onnx_models import write_nchw_classifier

    return write_nchw_classifier(tmp_path / "nchw.onnx")


def _photo(tmp_path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 200, 200)).save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


@pytest.mark.parametrize("which", ["photo", "model", "labels"])
def test_pipes_and_devices_are_refused_without_opening_them(tmp_path: Path, which: str) -> None:
    import os

    model, photo, fifo = _nchw(tmp_path), _photo(tmp_path), tmp_path / {"photo": "p.png", "model": "m.onnx", "labels": "l.txt"}[which]
    os.mkfifo(fifo)  # reading it would block forever: no writer
    args = {"photo": [str(model), str(fifo)], "model": [str(fifo), str(photo)],
            "labels": [str(model), str(photo), "--labels", str(fifo)]}[which]
    result = runner.invoke(app, ["predict", *args])
    assert result.exit_code == 2, result.output
    assert "is not a regular file (a pipe, device or socket)" in result.stderr
    (tmp_path / "zero.onnx").symlink_to("/dev/zero")
    result = runner.invoke(app, ["predict", str(tmp_path / "zero.onnx"), str(photo)])
    assert result.exit_code == 2 and "not a regular file" in result.stderr


def test_a_model_whose_output_is_not_a_class_vector_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["pixels"], ["maps"])], "feature_maps",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 8, 8, 3])],
                              [helper.make_tensor_value_info("maps", TensorProto.FLOAT, [1, 8, 8, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "maps.onnx")
    result = runner.invoke(app, ["predict", str(tmp_path / "maps.onnx"), str(_photo(tmp_path))])
    assert result.exit_code == 2, result.output
    assert "not a score vector per image" in result.stderr and "(1, 8, 8, 3)" in result.stderr


def test_onnx_label_count_error_names_onnx_metadata(tmp_path: Path) -> None:
    import onnx

    path = _nchw(tmp_path)
    model = onnx.load(path)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {"labels": "a\nb\nc"})
    onnx.save(model, path)
    result = runner.invoke(app, ["predict", str(path), str(_photo(tmp_path))])
    assert "TFLite" not in result.output + result.stderr and "ONNX metadata_props" in result.output + result.stderr


def test_labels_from_files_reach_the_terminal_escaped_and_json_stays_valid(tmp_path: Path) -> None:
    import json

    labels = tmp_path / "labels.txt"
    labels.write_text("\x1b[31mdark\n\x9bbright\n", encoding="utf-8")
    args = ["predict", str(_nchw(tmp_path)), str(_photo(tmp_path)), "--labels", str(labels)]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "\x1b" not in table.stdout and "\x9b" not in table.stdout and "\\x1b[31mdark" in table.stdout
    as_json = runner.invoke(app, [*args, "--json"])
    assert json.loads(as_json.stdout)[0]["top_k"][0]["label"] in ("\x1b[31mdark", "\x9bbright")


def test_metadata_with_nan_is_refused_and_nan_scores_are_json_null() -> None:
    import json

    from edgetl.runtime.classifier import Prediction
    from edgetl.spec import ModelMetadata, PreprocessingSpec

    with pytest.raises(EdgetlError, match="mean and std must be finite"):
        PreprocessingSpec(image_size=(8, 8), mean=(math.nan, 0.0, 0.0))
    document = '{"labels": ["a"], "preprocessing": {"image_size": [8, 8], "std": [Infinity, 1, 1]}}'
    with pytest.raises(EdgetlError, match="finite"):
        ModelMetadata.from_json(document)
    record = Prediction(label="a", index=0, score=math.nan).to_dict()
    assert json.loads(json.dumps(record, allow_nan=False))["score"] is None
