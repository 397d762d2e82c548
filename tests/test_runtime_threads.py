"""One runner shared by threads, a model file swapped under a runner, and large batches: real
interpreters (ai-edge-litert, onnxruntime) on real conversions of a small Keras model, and
Coral's third-party uint8 model."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from edgetl.runtime import Classifier
from edgetl.spec import ModelMetadata, PreprocessingSpec

SPEC = PreprocessingSpec(image_size=(32, 32))
LABELS = ("a", "b", "c", "d", "e")
THREADS, CALLS = 8, 24


def _keras_model(seed: int):  # noqa: ANN202 (keras stays a lazy import)
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="edgetl_probs")(x)
    return keras.Model(inputs, outputs)


def _tflite(model, int8: bool) -> bytes:  # noqa: ANN001
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.integers(0, 256, (1, 32, 32, 3)).astype(np.float32)] for _ in range(16)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def _onnx(model, path: Path) -> None:  # noqa: ANN001
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, 32, 32, 3), tf.float32, name="pixels"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(path))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two different models (seeds 0 and 1) in tflite-fp32, tflite-int8 (int8 io) and onnx, with sidecars."""
    out = tmp_path_factory.mktemp("thread_models")
    paths = {}
    for seed in (0, 1):
        model = _keras_model(seed)
        for fmt, suffix in (("tflite-fp32", ".tflite"), ("tflite-int8", ".tflite"), ("onnx", ".onnx")):
            path = out / f"seed{seed}" / f"model_{fmt}{suffix}"
            path.parent.mkdir(exist_ok=True)
            if fmt == "onnx":
                _onnx(model, path)
            else:
                path.write_bytes(_tflite(model, int8=fmt == "tflite-int8"))
            meta = ModelMetadata(labels=LABELS, preprocessing=SPEC, format=fmt, backbone="tiny")
            path.with_suffix(".json").write_text(meta.to_json())
            paths[f"{fmt}/{seed}"] = path
    return paths


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """48 distinct photos: a colour each, noise, and a size of their own (so every resize differs)."""
    root = tmp_path_factory.mktemp("thread_photos")
    rng = np.random.default_rng(7)
    paths = []
    for i in range(48):
        colour = rng.integers(0, 256, 3)
        noise = rng.integers(-60, 61, (30 + i, 40 + i % 7, 3))
        Image.fromarray(np.clip(colour + noise, 0, 255).astype(np.uint8)).save(root / f"{i:02d}.png")
        paths.append(root / f"{i:02d}.png")
    return paths


def _hammer(work: Callable[[int], object], calls: int) -> list[object]:
    """`work(i)` for i in range(calls), spread over THREADS threads started at once; results by i."""
    results: list[object] = [None] * calls
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(first: int) -> None:
        start.wait()
        for i in range(first, calls, THREADS):
            try:
                results[i] = work(i)
            except BaseException as e:  # noqa: BLE001 (reported below with the others)
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    return results


def _check_shared_runner(clf: Classifier, photos: list[Path]) -> None:
    """8 threads x many calls (single photos, batches through the per-core lanes, bare run_pixels)
    on one classifier give exactly the sequential results, call for call."""
    pixels = np.stack([clf.load_pixels(p) for p in photos])

    def call(i: int) -> object:
        if i % 3 == 0:
            return clf.classify([photos[i % len(photos)]], top_k=len(clf.labels))
        if i % 3 == 1:
            batch = [photos[(i + k) % len(photos)] for k in range(5)]
            return clf.classify(batch, top_k=len(clf.labels))
        return clf.run_pixels(pixels[i % len(photos)][None])

    sequential = [call(i) for i in range(THREADS * CALLS)]
    threaded = _hammer(call, THREADS * CALLS)
    for i, (want, got) in enumerate(zip(sequential, threaded, strict=True)):
        if isinstance(want, np.ndarray):
            assert np.array_equal(want, got), f"call {i}: another photo's scores"
        else:
            assert want == got, f"call {i}: another photo's scores"


@pytest.mark.parametrize("fmt", ["tflite-fp32", "tflite-int8", "onnx"])
def test_one_runner_shared_by_eight_threads_gives_each_call_its_own_scores(
    models: dict[str, Path], photos: list[Path], fmt: str
) -> None:
    clf = Classifier.from_file(models[f"{fmt}/0"])
    if fmt == "tflite-int8":
        assert clf.input_info.dtype == "int8" and clf.output_info.dtype == "int8"
    scores = clf.run_pixels(np.stack([clf.load_pixels(p) for p in photos]))
    assert len({s.tobytes() for s in scores}) > len(photos) // 2  # distinct photos: a mix-up would show
    _check_shared_runner(clf, photos)


def test_coral_uint8_runner_shared_by_eight_threads(photos: list[Path]) -> None:
    clf = Classifier.from_file(shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite"))
    assert clf.input_info.dtype == "uint8" and clf.output_info.dtype == "uint8"
    _check_shared_runner(clf, photos[:16])


def test_threads_opening_lanes_at_once_share_one_set(models: dict[str, Path], photos: list[Path]) -> None:
    clf = Classifier.from_file(models["tflite-fp32/0"])
    _hammer(lambda i: clf.classify(photos[:4]), THREADS)
    assert len(clf._twins) <= 3  # one set of twins however many threads asked first


@pytest.mark.parametrize("fmt", ["tflite-fp32", "tflite-int8", "onnx"])
def test_model_file_swapped_under_a_runner_keeps_the_original_model(
    models: dict[str, Path], photos: list[Path], tmp_path: Path, fmt: str
) -> None:
    deployed = tmp_path / models[f"{fmt}/0"].name
    shutil.copy(models[f"{fmt}/0"], deployed)
    shutil.copy(models[f"{fmt}/0"].with_suffix(".json"), deployed.with_suffix(".json"))
    original = Classifier.from_file(models[f"{fmt}/0"]).classify(photos, top_k=5)
    other = Classifier.from_file(models[f"{fmt}/1"]).classify(photos, top_k=5)
    assert original != other  # the two models disagree, so a mix would show

    clf = Classifier.from_file(deployed)
    assert clf.classify(photos[:1], top_k=5) == original[:1]  # one photo: the lanes are not open yet
    swapped = deployed.with_name("incoming")
    shutil.copy(models[f"{fmt}/1"], swapped)
    swapped.replace(deployed)  # a deploy: the new model takes the old one's name
    assert clf.classify(photos, top_k=5) == original  # opens the per-core lanes now, after the swap
    deployed.write_bytes(b"truncated by a failed copy")
    assert clf.classify(photos, top_k=5) == original


def test_large_batches_are_fed_in_bounded_chunks(models: dict[str, Path], photos: list[Path]) -> None:
    from edgetl.runtime.classifier import BATCH_PIXELS

    clf = Classifier.from_file(models["tflite-fp32/0"])
    pixels = np.stack([clf.load_pixels(photos[i % len(photos)]) for i in range(1000)])
    assert clf._backend.dynamic_batch
    scores = clf.run_pixels(pixels)
    fed = clf._backend._interpreter.get_input_details()[0]["shape"][0]
    assert scores.shape == (1000, len(LABELS)) and fed <= BATCH_PIXELS // (32 * 32) < 1000
    singles = np.concatenate([clf.run_pixels(pixels[i : i + 1]) for i in range(len(photos))])
    np.testing.assert_allclose(scores[: len(photos)], singles, rtol=0, atol=1e-6)
