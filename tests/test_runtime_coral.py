"""The runner on third-party models no one here made: Coral's quantized MobileNets and photos."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from edgetl.errors import EdgetlError
from edgetl.runtime import Classifier, Prediction, load_runner

CORAL_MODELS = ["mobilenet_v1_0.25_128_quant.tflite", "mobilenet_v1_0.5_160_quant.tflite"]
CAT_LABELS = {"Egyptian cat", "tabby, tabby cat", "tiger cat"}


@pytest.fixture(scope="module", params=CORAL_MODELS)
def coral(request: pytest.FixtureRequest) -> Classifier:
    return Classifier.from_file(shared_path("coral", request.param))


def test_labels_and_normalization_come_from_the_models_own_metadata(coral: Classifier) -> None:
    assert len(coral.labels) == 1001
    assert coral.labels[:2] == ("background", "tench, Tinca tinca")
    assert coral.metadata is None
    assert coral.spec.mean == (127.5,) * 3 and coral.spec.std == (127.5,) * 3
    assert coral.input_info.dtype == "uint8" and coral.input_info.layout == "NHWC"
    assert coral.output_info.scale == pytest.approx(1 / 256)


def test_real_photos_get_the_right_imagenet_labels(coral: Classifier) -> None:
    photos = [shared_path("coral", name) for name in ("cat.bmp", "bird.bmp", "grace_hopper.bmp")]
    cat, bird, hopper = coral.classify(photos, top_k=10)
    assert cat[0].label in CAT_LABELS and cat[0].label == "Egyptian cat"
    assert bird[0].label == "chickadee"
    # These tiny MobileNets (0.25/128, 0.5/160) call Grace Hopper's navy uniform an academic
    # gown; the uniform is still among their top 10 (rank 4 and 6 with Pillow bilinear).
    assert hopper[0].label.startswith("academic gown")
    assert "military uniform" in [p.label for p in hopper]
    assert all(isinstance(p, Prediction) for p in cat)
    assert [p.score for p in cat] == sorted((p.score for p in cat), reverse=True)


def test_quantized_input_is_the_raw_pixels_as_corals_classify_feeds_them(coral: Classifier) -> None:
    # mean=std=127.5 with scale 1/128, zero point 128 is the identity within one step.
    pixels = np.arange(256, dtype=np.uint8).repeat(3).reshape(1, 16, 16, 3)
    pixels = np.resize(pixels, (1, *coral.spec.image_size, 3))
    tensor = coral.quantize_input(pixels)
    assert tensor.dtype == np.uint8 and np.array_equal(tensor, pixels)


def test_batch_larger_than_the_fixed_batch_of_one_runs_item_by_item(coral: Classifier) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(3, *coral.spec.image_size, 3), dtype=np.uint8)
    together = coral.run_pixels(pixels)
    apart = np.concatenate([coral.run_pixels(pixels[i : i + 1]) for i in range(3)])
    assert together.shape == (3, 1001) and together.dtype == np.float32
    assert np.array_equal(together, apart)


def test_pil_images_and_paths_give_the_same_prediction(coral: Classifier) -> None:
    path = shared_path("coral", "bird.bmp")
    with Image.open(path) as img:
        from_pil = coral.classify([img.copy()], top_k=3)
    assert from_pil == coral.classify([path], top_k=3)


def test_explicit_labels_file_overrides_and_a_wrong_length_one_is_refused(tmp_path: Path) -> None:
    model = shared_path("coral", CORAL_MODELS[0])
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"class {i}" for i in range(1001)) + "\n")
    assert load_runner(model, labels=names).labels[286] == "class 286"
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    with pytest.raises(EdgetlError, match="the model has 1001 outputs, the file has 2 labels. Received: .*short.txt"):
        load_runner(model, labels=short)


def test_edgetpu_model_without_the_delegate_says_what_to_install() -> None:
    model = shared_path("coral", "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    with pytest.raises(EdgetlError, match="compiled for the Edge TPU.*libedgetpu1-std.*--delegate edgetpu"):
        Classifier.from_file(model)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_missing_edgetpu_library_says_what_to_install() -> None:
    model = shared_path("coral", "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    try:
        import ctypes

        ctypes.CDLL("libedgetpu.so.1")
        pytest.skip("libedgetpu.so.1 is installed here: the delegate loads")
    except OSError:
        pass
    with pytest.raises(EdgetlError, match="Edge TPU delegate could not be loaded.*libedgetpu1-std"):
        Classifier.from_file(model, delegate="edgetpu")
    gc.collect()  # a half-built interpreter Delegate would print 'Exception ignored in __del__' here


def test_model_that_cannot_run_is_one_clear_error() -> None:
    model = shared_path("coral", "invalid", "model_invoking_error.tflite")
    with pytest.raises(EdgetlError, match="cannot prepare this model: .*fake-op-double"):
        Classifier.from_file(model)


def test_unknown_delegate_and_bad_threads_are_refused() -> None:
    model = shared_path("coral", CORAL_MODELS[0])
    with pytest.raises(EdgetlError, match="delegate must be one of"):
        Classifier.from_file(model, delegate="gpu")
    with pytest.raises(EdgetlError, match=r"threads must be in \[1, "):
        Classifier.from_file(model, threads=0)
