"""The ecosystem's own consumers read edgetl's TFLite exports: MediaPipe Tasks and tflite-support.

MediaPipe's `ImageClassifier` refuses a model whose input is neither uint8 nor float32 and reads
the labels from the standard TFLite Model Metadata, so every export (the default int8 one
included) must load there, name edgetl's labels and rank the same class first as edgetl's own
runner. Both get identical pixels: real photos resized by edgetl to the model's input size, so
MediaPipe's own resize (another filter) plays no part in the comparison.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _export_shared import Exported, exported_run
from conftest import shared_path

TFLITE_FORMATS = ("tflite-fp32", "tflite-dynamic", "tflite-fp16", "tflite-int8")


@pytest.fixture(scope="module")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported_run(tiny_run, tmp_path_factory)


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    folder = shared_path("data", "cats_vs_dogs", "test")
    found = sorted(folder.glob("*/*.jpg"))[::10][:8]
    if len(found) < 4:
        pytest.skip(f"needs real photos in {folder}")
    return found


def test_default_int8_export_has_uint8_io(exported: Exported) -> None:
    from edgetl.runtime import Classifier

    clf = Classifier.from_file(exported.run / "export" / "model_tflite-int8.tflite")
    assert (clf.input_info.dtype, clf.output_info.dtype) == ("uint8", "uint8")
    # The identity: the uint8 input is the pixel itself, as MediaPipe and Coral's examples feed it.
    assert (clf.input_info.scale, clf.input_info.zero_point) == (1.0, 0)


@pytest.mark.parametrize("fmt", TFLITE_FORMATS)
def test_mediapipe_image_classifier_reads_every_tflite_export(exported: Exported, photos: list[Path], fmt: str) -> None:
    vision = pytest.importorskip("mediapipe.tasks.python.vision", reason="needs mediapipe (the test extra)")
    import mediapipe as mp
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from edgetl.runtime import Classifier

    model = exported.run / "export" / f"model_{fmt}.tflite"
    ours = Classifier.from_file(model)
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model)),
                                            max_results=len(ours.labels))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for photo in photos:
            pixels = np.ascontiguousarray(ours.load_pixels(photo))
            theirs = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels))
            categories = theirs.classifications[0].categories
            top = ours.top_k(ours.run_pixels(pixels[None])[0], len(ours.labels))
            assert {c.category_name for c in categories} == set(ours.labels), fmt
            tied_first = {p.label for p in top if p.score == top[0].score}  # equal uint8 scores: either order
            assert categories[0].category_name in tied_first, (fmt, photo.name)
            assert categories[0].score == pytest.approx(top[0].score, abs=0.02), (fmt, photo.name)


@pytest.mark.parametrize("fmt", ["tflite-fp32", "tflite-int8"])
def test_tflite_support_metadata_reader_reads_labels_and_normalization(exported: Exported, fmt: str) -> None:
    # The reader itself, not `tflite_support`, whose __init__ loads Task Library protos that need
    # protobuf < 4 (TensorFlow needs 5+): hence `pip install --no-deps tflite-support`.
    metadata = pytest.importorskip(
        "tensorflow_lite_support.metadata.python.metadata",
        reason="needs tflite-support 0.4.4 (pip install --no-deps; Python <= 3.11) and libusb-1.0-0 (apt); .ci/run installs both",
        exc_type=ImportError,
    )
    model = exported.run / "export" / f"model_{fmt}.tflite"
    displayer = metadata.MetadataDisplayer.with_model_file(str(model))
    assert "labels.txt" in displayer.get_packed_associated_file_list()
    labels = displayer.get_associated_file_buffer("labels.txt").decode("utf-8").split()
    assert labels == (exported.run / "labels.txt").read_text().split()
    graph = json.loads(displayer.get_metadata_json())["subgraph_metadata"][0]
    assert graph["output_tensor_metadata"][0]["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    units = graph["input_tensor_metadata"][0].get("process_units", [])
    assert any(unit["options_type"] == "NormalizationOptions" for unit in units) or fmt == "tflite-int8"
