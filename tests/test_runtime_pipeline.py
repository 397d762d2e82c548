"""The runner's fast paths give the same bits as the plain ones: looked-up normalization, and
photos decoded on worker threads while the interpreter runs."""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image
from runtime_onnx_models import NCHW_LABELS, write_nchw_classifier

from edgetl.errors import EdgetlError
from edgetl.runtime import Classifier
from edgetl.runtime.image import load_pixels
from edgetl.runtime.pipeline import decode_ahead, interpreter_lanes, map_ahead
from edgetl.spec import ModelMetadata, PreprocessingSpec

MEAN, STD = (123.7, 116.3, 103.5), (58.4, 57.1, 57.4)


def _pixels(size: tuple[int, int], batch: int = 2) -> np.ndarray:
    """Every value 0..255 in every channel, then random ones."""
    pixels = np.random.default_rng(0).integers(0, 256, size=(batch, *size, 3), dtype=np.uint8)
    flat = pixels.reshape(-1, 3)
    flat[:256] = np.arange(256, dtype=np.uint8)[:, None]
    return pixels


def test_float_normalization_by_table_is_the_formula_bit_for_bit(tmp_path: Path) -> None:
    model = write_nchw_classifier(tmp_path / "normalized.onnx", embed_metadata=False)
    spec = PreprocessingSpec(image_size=(8, 8), layout="NCHW", mean=MEAN, std=STD)
    model.with_suffix(".json").write_text(ModelMetadata(labels=NCHW_LABELS, preprocessing=spec).to_json())
    clf = Classifier.from_file(model)
    pixels = _pixels((8, 8), batch=8)
    expected = (pixels.astype(np.float32) - np.float32(MEAN)) / np.float32(STD)
    tensor = clf.quantize_input(pixels)
    assert tensor.dtype == np.float32 and np.array_equal(tensor, expected.transpose(0, 3, 1, 2))


def test_quantized_normalization_by_table_is_the_formula_bit_for_bit(tmp_path: Path) -> None:
    model = tmp_path / "coral.tflite"
    shutil.copy(shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite"), model)
    spec = PreprocessingSpec(image_size=(128, 128), mean=MEAN, std=STD)  # not the identity: no integer shift
    labels = tuple(str(i) for i in range(1001))
    model.with_suffix(".json").write_text(ModelMetadata(labels=labels, preprocessing=spec).to_json())
    clf = Classifier.from_file(model)
    scale, zero_point = clf.input_info.scale, clf.input_info.zero_point
    pixels = _pixels((128, 128))
    expected = np.clip(np.rint((pixels.astype(np.float64) - MEAN) / STD / scale + zero_point), 0, 255).astype(np.uint8)
    tensor = clf.quantize_input(pixels)
    assert tensor.dtype == np.uint8 and np.array_equal(tensor, expected)


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    return sorted(shared_path("data", "cats_vs_dogs", "test").glob("*/*.jpg"))[::10]


def test_decoding_ahead_gives_the_pixels_of_a_plain_loop_in_order(photos: list[Path]) -> None:
    spec = PreprocessingSpec(image_size=(96, 96))
    threaded = list(decode_ahead(lambda p: load_pixels(p, spec), photos, workers=3))
    assert len(threaded) == len(photos) >= 8
    assert all(np.array_equal(a, load_pixels(p, spec)) for a, p in zip(threaded, photos))


def test_an_undecodable_photo_fails_at_its_turn_and_stops_the_rest(photos: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    started: list[Path] = []
    lock = threading.Lock()

    def load(path: Path) -> Path:
        with lock:
            started.append(path)
        load_pixels(path, PreprocessingSpec(image_size=(32, 32)))
        return path

    items = [*photos[:2], bad, *photos[2:]] * 10
    done = []
    with pytest.raises(EdgetlError, match="Not a readable image"):
        for path in decode_ahead(load, items, workers=2):
            done.append(path)
    assert done == photos[:2]
    assert len(started) <= 2 + 2 * 2 + 2  # what was queued when the error came out, not the whole list


def test_classify_on_threads_matches_one_by_one_and_leaves_warning_filters_alone(photos: list[Path], tmp_path: Path) -> None:
    clf = Classifier.from_file(write_nchw_classifier(tmp_path / "nchw.onnx"))
    images = [*photos, Image.new("RGB", (40, 30), (250, 250, 250))]
    filters = list(warnings.filters)
    together = clf.classify(images, top_k=2)
    assert together == [clf.classify([image], top_k=2)[0] for image in images]
    assert warnings.filters == filters


def test_no_two_threads_hold_one_lane_and_results_keep_their_order() -> None:
    lanes = [threading.Lock() for _ in range(3)]
    used: set[int] = set()

    def work(lane: threading.Lock, item: int) -> int:
        assert lane.acquire(blocking=False), "a lane was handed to two threads at once"
        try:
            used.add(id(lane))
            sum(range(20_000))  # some work, so that threads overlap
            return item * item
        finally:
            lane.release()

    assert list(map_ahead(work, range(200), lanes)) == [i * i for i in range(200)]
    assert len(used) > 1


def test_tflite_photos_run_on_one_interpreter_per_core_with_the_scores_of_one_at_a_time(
    photos: list[Path], tmp_path: Path
) -> None:
    model = tmp_path / "coral.tflite"
    shutil.copy(shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite"), model)
    labels = tuple(f"class {i}" for i in range(1001))
    spec = PreprocessingSpec(image_size=(128, 128), mean=(127.5,) * 3, std=(127.5,) * 3)
    model.with_suffix(".json").write_text(ModelMetadata(labels=labels, preprocessing=spec).to_json())
    clf = Classifier.from_file(model, threads=1)
    one_by_one = [clf.classify([photo], top_k=3)[0] for photo in photos]
    assert clf.classify(photos, top_k=3) == one_by_one
    assert len(clf._twins) == interpreter_lanes(1) - 1  # the cores' other interpreters, kept for the next call
    every_core = Classifier.from_file(model, threads=os.cpu_count())  # one lane: decode threads feed it
    assert every_core.classify(photos, top_k=3) == one_by_one and not every_core._twins
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    with pytest.raises(EdgetlError, match="Not a readable image"):
        clf.classify([*photos, bad])


def test_bench_times_photos_end_to_end(photos: list[Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgetl.cli import app

    model = write_nchw_classifier(tmp_path / "nchw.onnx")
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos[:3]:
        shutil.copy(photo, folder / photo.name)
    result = CliRunner().invoke(app, ["bench", str(model), "--runs", "3", "--warmup", "0", "--json", "--images", str(folder)])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["photos"] == 3 and report["photos_per_s"] > 0
    table = CliRunner().invoke(app, ["bench", str(model), "--runs", "3", "--images", str(folder)])
    assert table.exit_code == 0 and "photos/s end to end" in table.stdout
    empty = CliRunner().invoke(app, ["bench", str(model), "--images", str(tmp_path / "nowhere")])
    assert empty.exit_code == 2 and "--images must be a folder holding photos" in empty.stderr
