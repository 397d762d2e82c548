"""The runner on edgetl-shaped models: a tiny Keras classifier trained here, converted to TFLite
fp32 and full int8, with its metadata as a sidecar or zipped into the file; golden vectors."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.errors import EdgetlError
from edgetl.runtime import Classifier
from edgetl.runtime.benchmark import benchmark
from edgetl.runtime.golden import QUANTIZED_STEPS, check_golden, write_golden
from edgetl.runtime.image import load_pixels
from edgetl.spec import ModelMetadata, PreprocessingSpec

SPEC = PreprocessingSpec(image_size=(32, 32))
runner = CliRunner()


@pytest.fixture(scope="module")
def models(colour_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train the tiny classifier, write model_tflite-fp32.tflite and model_tflite-int8.tflite + sidecars."""
    import keras
    import tensorflow as tf

    labels = tuple(sorted(p.name for p in colour_photos.iterdir()))
    photos = sorted(colour_photos.glob("*/*.png"))
    pixels = np.stack([load_pixels(p, SPEC) for p in photos])
    targets = np.array([labels.index(p.parent.name) for p in photos])

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(labels), activation="softmax", name="edgetl_probs")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    model.fit(pixels.astype(np.float32), targets, epochs=20, batch_size=12, verbose=0)

    # A 0..255 ramp in the calibration set makes the int8 input scale exactly 1 (zero point -128).
    ramp = np.broadcast_to(np.linspace(0, 255, 32, dtype=np.float32)[None, :, None], (32, 32, 3))
    calibration = [ramp, *pixels.astype(np.float32)]

    def int8(converter: tf.lite.TFLiteConverter) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([c[None]] for c in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8

    out = tmp_path_factory.mktemp("edgetl_models")
    paths = {}
    for fmt, configure in (("tflite-fp32", None), ("tflite-int8", int8)):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if configure:
            configure(converter)
        paths[fmt] = out / f"model_{fmt}.tflite"
        paths[fmt].write_bytes(converter.convert())
        meta = ModelMetadata(labels=labels, preprocessing=SPEC, format=fmt, backbone="tiny")
        (out / f"model_{fmt}.json").write_text(meta.to_json())
    keras_probs = model.predict(pixels.astype(np.float32), verbose=0)
    return {"paths": paths, "labels": labels, "photos": photos, "pixels": pixels, "keras": keras_probs}


def test_sidecar_metadata_gives_labels_and_spec(models: dict) -> None:
    clf = Classifier.from_file(models["paths"]["tflite-fp32"])
    assert clf.labels == models["labels"]
    assert clf.spec == SPEC and clf.metadata.format == "tflite-fp32"
    assert clf.input_info.dtype == "float32" and clf.input_info.shape == (1, 32, 32, 3)


def test_fp32_tflite_matches_keras(models: dict) -> None:
    clf = Classifier.from_file(models["paths"]["tflite-fp32"])
    probs = clf.run_pixels(models["pixels"])  # dynamic batch signature: one resized call
    assert probs.shape == models["keras"].shape
    assert np.max(np.abs(probs - models["keras"])) < 1e-4


def test_int8_quantize_input_is_exact_and_agrees_with_fp32(models: dict) -> None:
    fp32 = Classifier.from_file(models["paths"]["tflite-fp32"])
    int8 = Classifier.from_file(models["paths"]["tflite-int8"])
    info = int8.input_info
    assert (info.dtype, info.scale, info.zero_point) == ("int8", 1.0, -128)
    pixels = models["pixels"]
    tensor = int8.quantize_input(pixels)
    assert tensor.dtype == np.int8
    assert np.array_equal(tensor.astype(np.int16), pixels.astype(np.int16) - 128)
    # The general formula gives the same tensor: round(((p - 0) / 1) / scale + zp), clipped.
    reference = np.clip(np.rint(pixels / info.scale + info.zero_point), -128, 127).astype(np.int8)
    assert np.array_equal(tensor, reference)
    raw = int8.invoke_raw(tensor)
    assert raw.dtype == np.int8
    probs = int8.dequantize_output(raw)
    assert np.array_equal(probs, (raw.astype(np.float32) - int8.output_info.zero_point) * int8.output_info.scale)
    agreement = np.mean(probs.argmax(1) == fp32.run_pixels(pixels).argmax(1))
    assert agreement >= 0.97
    assert np.mean(probs.argmax(1) == models["keras"].argmax(1)) >= 0.97


def test_embedded_edgetl_json_wins_over_the_sidecar(models: dict, tmp_path: Path) -> None:
    model = tmp_path / "embedded.tflite"
    shutil.copy(models["paths"]["tflite-int8"], model)
    meta = ModelMetadata(labels=("r", "g", "b"), preprocessing=SPEC, format="tflite-int8")
    with zipfile.ZipFile(model, "a") as archive:  # appended after the flatbuffer, as export does
        archive.writestr("edgetl.json", meta.to_json())
    (tmp_path / "embedded.json").write_text(meta.to_json().replace('"r"', '"sidecar"'))
    clf = Classifier.from_file(model)
    assert clf.labels == ("r", "g", "b") and clf.metadata.format == "tflite-int8"
    assert clf.classify(models["photos"][:1])[0][0].index in (0, 1, 2)


def test_metadata_that_contradicts_the_input_tensor_is_refused(models: dict, tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    shutil.copy(models["paths"]["tflite-fp32"], model)
    meta = ModelMetadata(labels=models["labels"], preprocessing=PreprocessingSpec(image_size=(64, 64)))
    (tmp_path / "model.json").write_text(meta.to_json())
    with pytest.raises(EdgetlError, match=r"metadata does not match its input tensor.*\(1, 32, 32, 3\)"):
        Classifier.from_file(model)


def test_golden_vectors_round_trip_and_catch_a_difference(models: dict, tmp_path: Path) -> None:
    paths = models["paths"]
    big = tmp_path / "big.jpg"
    Image.new("RGB", (640, 480), (200, 40, 40)).save(big)
    golden = write_golden(tmp_path / "golden", [paths["tflite-fp32"], paths["tflite-int8"]], [*models["photos"][:2], big])
    document = json.loads(golden.read_text())
    assert document["golden_version"] == 1 and document["labels"] == list(models["labels"])
    assert [i["file"] for i in document["images"]] == ["img_000.png", "img_001.png", "img_002.png"]
    with Image.open(golden.parent / "img_002.png") as img:
        assert img.size == (256, 192)
    entry = document["artefacts"]["model_tflite-int8.tflite"]
    assert entry["input"] == {"dtype": "int8", "scale": 1.0, "zero_point": -128, "shape": [1, 32, 32, 3]}
    assert all(isinstance(v, int) for v in entry["results"][0]["raw_output"])
    for model in paths.values():
        report = check_golden(model, golden.parent)
        assert report.passed, report.to_dict()

    # Another CPU's int8 kernels may round a few output steps apart: within QUANTIZED_STEPS passes.
    entry["results"][1]["raw_output"][0] += QUANTIZED_STEPS
    golden.write_text(json.dumps(document))
    report = check_golden(paths["tflite-int8"], golden.parent)
    assert report.passed and f"within {QUANTIZED_STEPS} steps" in report.rule and "same top-1" in report.rule
    entry["results"][1]["raw_output"][0] += 1
    golden.write_text(json.dumps(document))
    report = check_golden(paths["tflite-int8"], golden.parent)
    assert not report.passed
    assert [c.passed for c in report.checks] == [True, False, True]
    assert f"raw output max diff {QUANTIZED_STEPS + 1}" in report.checks[1].reasons[0]
    assert check_golden(paths["tflite-fp32"], golden.parent).rule == "float outputs within 1e-05, same top-k"


def test_selftest_cli_exit_codes(models: dict, tmp_path: Path) -> None:
    model = tmp_path / "model_tflite-int8.tflite"
    shutil.copy(models["paths"]["tflite-int8"], model)
    shutil.copy(models["paths"]["tflite-int8"].with_suffix(".json"), tmp_path / "model_tflite-int8.json")
    missing = runner.invoke(app, ["selftest", str(model)])
    assert missing.exit_code == 2 and "No golden vectors found" in missing.stderr
    write_golden(tmp_path / "golden", [model], models["photos"][:2])
    assert runner.invoke(app, ["selftest", str(model)]).exit_code == 0
    golden = tmp_path / "golden" / "golden.json"
    document = json.loads(golden.read_text())
    document["images"][0]["pixels_sha256"] = "0" * 64
    golden.write_text(json.dumps(document))
    failed = runner.invoke(app, ["selftest", str(model), "--golden", str(tmp_path / "golden")])
    assert failed.exit_code == 1 and "pixels_sha256" in failed.stdout


def test_predict_and_bench_cli(models: dict) -> None:
    model = models["paths"]["tflite-int8"]
    photo = models["photos"][0]
    result = runner.invoke(app, ["predict", str(model), str(photo), "--json", "--top-k", "2"])
    assert result.exit_code == 0, result.stderr
    records = json.loads(result.stdout)
    assert records[0]["image"] == str(photo) and records[0]["top_k"][0]["label"] == photo.parent.name
    assert len(records[0]["top_k"]) == 2
    table = runner.invoke(app, ["predict", str(model), str(photo)])
    assert table.exit_code == 0 and photo.parent.name in table.stdout
    bench = runner.invoke(app, ["bench", str(model), "--runs", "5", "--warmup", "1", "--json"])
    assert bench.exit_code == 0, bench.stderr
    assert set(json.loads(bench.stdout)) >= {"invoke", "run_pixels", "images_per_s", "runner_overhead"}
    bad = runner.invoke(app, ["bench", str(model.with_suffix(".onnx"))])
    assert bad.exit_code == 2 and "Model file not found" in bad.stderr


def test_benchmark_reports_percentiles(models: dict) -> None:
    report = benchmark(Classifier.from_file(models["paths"]["tflite-fp32"], threads=1), runs=6, warmup=1)
    assert report.threads == 1 and report.runs == 6
    assert 0 < report.invoke.p50_ms <= report.invoke.p99_ms
    assert report.images_per_s > 0
    with pytest.raises(EdgetlError, match="runs must be >= 1"):
        benchmark(Classifier.from_file(models["paths"]["tflite-fp32"]), runs=0)
