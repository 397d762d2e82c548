"""Real photos, real ImageNet weights: `export --pretrained` and int8 parity on cats and dogs.

MobileNetV2 1.0 with the 1001-class head (../shared/weights, class 0 "background"), exported at
128 px and calibrated on 48 training photos, then compared with its float Keras model on 40
held-out photos through the runtime. Synthetic colours cannot show that calibration and
preprocessing are right; photos can.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path

pytestmark = pytest.mark.slow

SIZE = 128
DOGS = range(152, 270)  # ImageNet indices of dog breeds in the 1001-class (background-first) head
CATS = range(282, 287)  # tabby .. Egyptian cat


def _kind(index: int) -> str:
    return "dog" if index in DOGS else "cat" if index in CATS else "other"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgetl.export import ExportOptions, export_pretrained

    weights = shared_path("weights", "mobilenet_v2_1.0_224_imagenet.weights.h5")
    labels = shared_path("coral", "imagenet_labels.txt")
    train = shared_path("data", "cats_vs_dogs", "train")
    calib = tmp_path_factory.mktemp("calib")
    for kind in ("cat", "dog"):
        (calib / kind).mkdir()
        for photo in sorted((train / kind).iterdir())[:24]:
            (calib / kind / photo.name).symlink_to(photo)
    out = tmp_path_factory.mktemp("pretrained") / "imagenet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 48 calibration images are fewer than recommended: known here
        report = export_pretrained(
            "mobilenet_v2", out, ExportOptions(formats=("tflite-int8",), calibration_dir=calib, calibration_size=48),
            weights=str(weights), image_size=SIZE, labels_file=labels,
        )
    assert report.ok, [(r.format, r.error) for r in report.failures]
    return out


def _test_photos() -> list[Path]:
    test = shared_path("data", "cats_vs_dogs", "test")
    return sorted((test / "cat").iterdir())[:20] + sorted((test / "dog").iterdir())[:20]


def test_pretrained_run_folder_and_metadata(pretrained: Path) -> None:
    from edgetl.runtime import Classifier

    assert {"model.keras", "labels.txt", "metadata.json", "preprocessing.json"} <= {p.name for p in pretrained.iterdir()}
    clf = Classifier.from_file(pretrained / "export" / "model_tflite-int8.tflite")
    assert len(clf.labels) == 1001 and clf.labels[0] == "background" and clf.spec.image_size == (SIZE, SIZE)
    meta = json.loads((pretrained / "export" / "model_tflite-int8.json").read_text())
    assert meta["backbone"] == "mobilenet_v2" and meta["source_run"].startswith("pretrained:")
    assert meta["extra"]["calibration_images"] == 48


def test_int8_agrees_with_float_on_real_photos(pretrained: Path) -> None:
    import keras

    from edgetl.runtime import Classifier
    from edgetl.runtime.image import load_pixels
    from edgetl.verify import verify

    photos = _test_photos()
    report = verify(pretrained, images=photos)
    (int8,) = report.results
    # 1001 fine-grained classes: int8 swaps near-tied breeds (tabby vs tiger cat) on some photos;
    # measured 0.78 here. A broken calibration or value range gives near 0.
    assert int8.top1_agreement >= 0.65, int8
    clf = Classifier.from_file(int8.path)
    pixels = np.stack([load_pixels(p, clf.spec) for p in photos])
    ref = keras.saving.load_model(pretrained / "model.keras").predict(pixels.astype(np.float32), verbose=0)
    quant = clf.run_pixels(pixels)
    top5 = np.mean([ref[i].argmax() in np.argsort(-quant[i])[:5] for i in range(len(photos))])
    assert top5 >= 0.95
    # Cat-or-dog, the question these photos answer: int8 must agree with float, and be right as
    # often (at 128 px, below the weights' 224, the float model itself calls some photos "other").
    kinds, ref_kinds = [_kind(int(i)) for i in quant.argmax(1)], [_kind(int(i)) for i in ref.argmax(1)]
    assert np.mean([a == b for a, b in zip(kinds, ref_kinds)]) >= 0.95
    truth = ["cat"] * 20 + ["dog"] * 20
    right = np.mean([k == t for k, t in zip(kinds, truth)])
    assert right >= np.mean([k == t for k, t in zip(ref_kinds, truth)]) - 0.05
    assert right >= 0.6
