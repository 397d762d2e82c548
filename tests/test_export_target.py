"""`--target-agreement`: the layers kept wider, the target reached on validation, the refusals.

The model is built by hand so that exactly one layer breaks under int8: `fragile` reads the colour
channels with weights of 0.01 and a dead channel with a weight of 5, so its per-channel int8 grid
(5 / 127 a step) rounds every colour weight to 0 and the int8 model calls every photo "red". In
float, that layer (and the rest of the model in int8) classifies the colours exactly. Real
conversions throughout (TFLite converter, its quantization debugger, LiteRT).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests._export_shared import copy_run

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def fragile_model(image_size: int) -> object:
    """RGB pixels -> (red, green, blue) probabilities, through one layer that int8 ruins."""
    import keras

    pixels = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1 / 255)(pixels)
    stem = keras.layers.Conv2D(4, 1, activation="relu", name="stem")
    x = stem(x)
    fragile = keras.layers.Conv2D(3, 1, name="fragile")
    x = keras.layers.GlobalAveragePooling2D()(fragile(x))
    head = keras.layers.Dense(3, activation="softmax", name="head")
    model = keras.Model(pixels, head(x))
    stem_kernel = np.zeros((1, 1, 3, 4), np.float32)
    stem_kernel[0, 0, :, 1:] = np.eye(3)  # channels 1-3: the colours; channel 0: dead (bias -1, ReLU)
    stem.set_weights([stem_kernel, np.array([-1, 0, 0, 0], np.float32)])
    fragile_kernel = np.zeros((1, 1, 4, 3), np.float32)
    fragile_kernel[0, 0, 0, :] = 5.0
    fragile_kernel[0, 0, 1:, :] = 0.01 * np.eye(3)
    fragile.set_weights([fragile_kernel, np.zeros(3, np.float32)])
    head.set_weights([1000 * np.eye(3, dtype=np.float32), np.zeros(3, np.float32)])
    return model


@pytest.fixture(scope="module")
def fragile_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run's photos and splits, with `fragile_model` as its model."""
    from edgetl.rundir import read_run_metadata, write_run

    run = copy_run(tiny_run, tmp_path_factory, "fragile")
    meta = read_run_metadata(run)
    write_run(run, fragile_model(meta.preprocessing.image_size[0]), meta)
    return run


@pytest.fixture(scope="module")
def reached(fragile_run: Path) -> object:
    from edgetl.export import ExportOptions, export

    options = ExportOptions(formats=("tflite-int8", "onnx-int8"), quantization="minmax", target_agreement=0.99,
                            golden=False)
    return export(fragile_run, options)


@pytest.mark.parametrize("fmt", ["tflite-int8", "onnx-int8"])
def test_exactly_the_sensitive_layer_is_kept_wider(reached: object, fmt: str) -> None:
    assert reached.ok, reached.failures
    target = reached.quantization[fmt]["target_agreement"]
    assert [w["layer"] for w in target["wider"]] == ["fragile"]
    assert target["wider"][0]["precision"] == "float32" and target["wider"][0]["sensitivity"] > 10


def test_the_tflite_layer_kept_wider_runs_in_float(reached: object) -> None:
    from edgetl.runtime.tflite_reader import read_tflite

    artefact = reached.results[0].path
    float_convs = [op for op in read_tflite(artefact.read_bytes(), source="t")["operators"]
                   if op["op"] == "CONV_2D" and op["input_dtypes"][0] == "float32"]
    assert len(float_convs) == 1
    assert read_tflite(artefact.read_bytes(), source="t")["inputs"][0]["dtype"] == "uint8"


@pytest.mark.parametrize("fmt", ["tflite-int8", "onnx-int8"])
def test_the_target_is_reached_on_the_validation_split(reached: object, fragile_run: Path, fmt: str) -> None:
    from edgetl.rundir import read_split

    target = reached.quantization[fmt]["target_agreement"]
    assert target["validation_photos"] == len(read_split(fragile_run, "val"))
    assert target["before"] < 0.99 <= target["after"]
    assert target["target"] == 0.99


def test_the_test_split_is_reported_in_every_record(reached: object, fragile_run: Path) -> None:
    from edgetl.export.common import sidecar_path
    from edgetl.rundir import read_split

    target = reached.quantization["tflite-int8"]["target_agreement"]
    assert target["test_photos"] == len(read_split(fragile_run, "test")) > 0
    assert target["test_before"] < target["test_after"] == 1.0
    document = json.loads((reached.output_dir / "export.json").read_text())
    assert document["quantization"]["tflite-int8"]["target_agreement"] == target
    sidecar = json.loads(sidecar_path(reached.results[0].path).read_text())
    assert sidecar["extra"]["target_agreement"] == target
    with zipfile.ZipFile(reached.results[0].path) as archive:  # the artefact's own embedded edgetl.json
        assert json.loads(archive.read("edgetl.json"))["extra"]["target_agreement"] == target


def test_the_choice_ignores_the_test_split(fragile_run: Path, tmp_path: Path) -> None:
    """The same validation photos with opposite test photos (or none) keep the same layers.

    (The artefacts differ only in the test figures their metadata reports.)"""
    from edgetl.export import ExportOptions, calibration
    from edgetl.export.common import ExportSource
    from edgetl.export.tflite import export_tflite_int8
    from edgetl.rundir import load_run, read_split

    model, meta = load_run(fragile_run)
    val = calibration.decode([p for p, _ in read_split(fragile_run, "val")], meta.preprocessing)
    calib = calibration.decode([p for p, _ in read_split(fragile_run, "train")], meta.preprocessing)
    options = ExportOptions(formats=("tflite-int8",), quantization="minmax", target_agreement=0.99)
    kept = []
    for test in (None, np.full((4, *val.shape[1:]), 255, np.uint8), val[::-1]):
        source = ExportSource(model=model, metadata=meta, workdir=tmp_path, validation=val, test=test)
        out = export_tflite_int8(source, options, tmp_path / "model.tflite", calib.astype(np.float32))
        target = json.loads(out.with_suffix(".json").read_text())["extra"]["target_agreement"]
        kept.append(([w["node"] for w in target["wider"]], target["before"], target["after"]))
    assert kept[0] == kept[1] == kept[2]
    assert len(kept[0][0]) == 1 and kept[0][2] == 1.0


def test_full_integer_refuses_an_unreachable_target_in_one_line(fragile_run: Path) -> None:
    from edgetl.cli import app

    result = CliRunner().invoke(app, ["export", str(fragile_run), "--formats", "tflite-int8", "--quantization",
                                      "minmax", "--target-agreement", "0.99", "--full-integer", "--no-golden"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "must stay fully integer" in errors[0] and "below --target-agreement 0.99" in errors[0]
    assert not (fragile_run / "export" / "model_tflite-int8.tflite").exists()


def test_options_refuse_what_they_cannot_do() -> None:
    from edgetl.errors import EdgetlError
    from edgetl.export import ExportOptions, check_formats_options

    with pytest.raises(EdgetlError, match="target_agreement must be a finite number in"):
        ExportOptions(target_agreement=1.5)
    with pytest.raises(EdgetlError, match="full_integer only applies with target_agreement"):
        ExportOptions(full_integer=True)
    with pytest.raises(EdgetlError, match="none of the requested formats"):
        check_formats_options(ExportOptions(formats=("tflite-fp32",), target_agreement=0.99))


def test_pretrained_has_no_validation_split_to_aim_at(tmp_path: Path) -> None:
    from edgetl.errors import EdgetlError
    from edgetl.export import ExportOptions, export_pretrained

    with pytest.raises(EdgetlError, match="--pretrained has none"):
        export_pretrained("mobilenet_v2", tmp_path / "out", ExportOptions(formats=("tflite-int8",),
                                                                          target_agreement=0.99))
    assert not (tmp_path / "out").exists()
