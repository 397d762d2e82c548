"""The Android demo's JVM core (android_demo/core) against the Python runtime, run through javac/java.

Golden vectors come from `edgetl.runtime.golden.write_golden` on real converted models (a tiny
Keras classifier as TFLite fp32, full int8 and uint8-io) and real photos at assorted sizes, so
the JVM must reproduce the runtime's own pixels, input tensors and top-k. A second fixture set
checks the Pillow resize port on real photos at many sizes and the zip reader on real .tflite
files with their metadata appended by Python's zipfile.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetl.runtime.golden import write_golden
from edgetl.runtime.image import load_image, load_pixels
from edgetl.spec import ModelMetadata, PreprocessingSpec
from tests.conftest import REPO, shared_path

RUN_TESTS = REPO / "android_demo" / "core" / "run_tests.sh"
LABELS = ("cat", "dog, big", "\u00e9clair au caf\u00e9")
# Non-square on purpose: a height/width mix-up anywhere on the JVM side changes every checksum.
RGB_SPEC = PreprocessingSpec(image_size=(32, 40))
# A third-party-style spec: BGR, per-channel mean/std outside the model, so the float path and the
# float64 rounding path of quantized inputs (no identity shift) are exercised too.
BGR_SPEC = PreprocessingSpec(image_size=(32, 40), color_order="BGR", mean=(127.5, 120.0, 110.0), std=(64.0, 60.0, 58.0))
# (width, height) of the golden photos: larger and smaller than the model input, the exact size,
# non-square both ways, thin strips. Larger photos are stored by write_golden at <= 256 px.
GOLDEN_SIZES = [None, (300, 200), (41, 31), (40, 32), (20, 13), (13, 50), (90, 300), (256, 17), (7, 9)]


def _require_jvm() -> None:
    if shutil.which("javac") is None or shutil.which("java") is None:
        pytest.skip("needs a JDK 17+ (javac and java on PATH) to compile and run the JVM core")
    if not any(Path("/usr/share/java", name).is_file() for name in ("junit4.jar", "junit.jar")):
        pytest.skip("needs JUnit 4 in /usr/share/java: apt-get install -y junit4")


def _run_jvm_tests(*dirs: Path) -> str:
    result = subprocess.run(["bash", str(RUN_TESTS), *map(str, dirs)], capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "OK (" in output, output[-6000:]
    return output


@pytest.fixture(scope="module")
def cat_photos() -> list[Path]:
    folder = shared_path("data", "cats_vs_dogs", "test", "cat")
    photos = sorted(folder.glob("*.jpg"))[:12]
    if len(photos) < 6:
        pytest.skip(f"needs a few real photos in {folder}")
    return photos


@pytest.fixture(scope="module")
def golden_photos(cat_photos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real photos re-saved as PNG at GOLDEN_SIZES (None keeps the original size)."""
    out = tmp_path_factory.mktemp("golden_photos")
    paths = []
    for i, (photo, size) in enumerate(zip(cat_photos, GOLDEN_SIZES)):
        img = load_image(photo)
        if size is not None:
            img = img.resize(size, Image.Resampling.LANCZOS)
        paths.append(out / f"photo_{i}.png")
        img.save(paths[-1])
    return paths


def _convert(model, fmt: str, calibration: list[np.ndarray]) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fmt != "tflite-fp32":
        io_type = tf.uint8 if fmt == "tflite-uint8io" else tf.int8
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([c[None].astype(np.float32)] for c in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = io_type
    return converter.convert()


def _append_metadata(model: bytes, meta: ModelMetadata, *, absolute_offsets: bool) -> bytes:
    """The model with labels.txt and edgetl.json zipped onto its end, as export does.

    absolute_offsets: Python's zipfile in append mode counts offsets from the file's start;
    otherwise the zip is built alone and concatenated, so its offsets count from its own start.
    """
    files = {"labels.txt": "\n".join(meta.labels) + "\n", "edgetl.json": meta.to_json()}
    if absolute_offsets:
        buf = io.BytesIO(model)
        buf.seek(0, io.SEEK_END)
        with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, text in files.items():
                archive.writestr(name, text.encode("utf-8"))
        return buf.getvalue()
    alone = io.BytesIO()
    with zipfile.ZipFile(alone, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, text in files.items():
            archive.writestr(name, text.encode("utf-8"))
    return model + alone.getvalue()


def _write_models(out: Path, spec: PreprocessingSpec, photos: list[Path], *, normalize: bool) -> list[Path]:
    """A tiny untrained edgetl-shaped classifier as fp32, int8 and uint8-io TFLite with metadata.

    fp32 and int8 carry edgetl.json zipped into the file (both zip layouts), uint8-io a sidecar.
    """
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((*spec.image_size, 3))
    x = inputs if normalize else keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="edgetl_probs")(x)
    model = keras.Model(inputs, outputs)

    pixels = [load_pixels(p, spec).astype(np.float32) for p in photos]
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    calibration = [(p - mean) / std for p in pixels]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, zipped in (("tflite-fp32", "concatenated"), ("tflite-int8", "append"), ("tflite-uint8io", None)):
        meta = ModelMetadata(labels=LABELS, preprocessing=spec, format=fmt, backbone="tiny")
        data = _convert(model, fmt, calibration)
        path = out / f"model_{fmt}.tflite"
        if zipped is None:
            path.with_suffix(".json").write_text(meta.to_json(), encoding="utf-8")
        else:
            data = _append_metadata(data, meta, absolute_offsets=zipped == "append")
        path.write_bytes(data)
        paths.append(path)
    return paths


def _resize_fixtures(out: Path, cat_photos: list[Path]) -> Path:
    """fixtures.json: Pillow's BILINEAR resize of real photos to many sizes, plus the zipped models."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    sources = []
    for i, photo in enumerate(cat_photos[:4]):
        img = load_image(photo)
        if i == 2:
            img = img.convert("L")  # grey PNG: the JVM must replicate it to RGB as Pillow does
        if i == 3:
            img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)  # palette PNG
        sources.append((f"src_{i}.png", img))
    sources.append(("src_small.png", load_image(cat_photos[4]).resize((23, 17), Image.Resampling.LANCZOS)))
    cases = []
    for name, img in sources:
        img.save(out / name)
        rgb = img.convert("RGB")
        w, h = rgb.size
        sizes = {(1, 1), (1, h), (w, 1), (w, h), (w, 7), (5, h), (2 * w + 1, 3 * h - 2), (224, 224), (40, 32),
                 (max(1, w // 3), max(1, h // 7)), (w - 1, h + 1), (w + 1, h - 1), (5 * w, 2), (2, 5 * h), (w // 2, h // 2)}
        # Both sides of Pillow 13's "vertical pass first" boundary: h - oh vs 2 * (w - ow).
        for d in (1, 2, 3, max(1, w // 10)):
            for oh in (h - 2 * d, h - 2 * d - 1):
                if 0 < w - d and 0 < oh:
                    sizes.add((w - d, oh))
        sizes |= {(rng.randint(1, 2 * w), rng.randint(1, 2 * h)) for _ in range(40)}
        for size in sorted(sizes):
            resized = np.asarray(rgb.resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)
            cases.append({"file": name, "width": size[0], "height": size[1], "sha256": hashlib.sha256(resized.tobytes()).hexdigest()})
    document = {"resize": cases, "models": []}
    (out / "fixtures.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
    return out


def test_jvm_core_matches_the_python_runtime(
    cat_photos: list[Path], golden_photos: list[Path], tmp_path: Path
) -> None:
    _require_jvm()
    golden_dirs = []
    fixtures = _resize_fixtures(tmp_path / "fixtures", cat_photos)
    document = json.loads((fixtures / "fixtures.json").read_text(encoding="utf-8"))
    for name, spec, normalize in (("rgb", RGB_SPEC, False), ("bgr", BGR_SPEC, True)):
        artefacts = _write_models(tmp_path / f"models_{name}", spec, golden_photos, normalize=normalize)
        golden = tmp_path / f"golden_{name}"
        write_golden(golden, artefacts, golden_photos, top_k=3)
        golden_dirs.append(golden)
        for path in artefacts:
            if not path.with_suffix(".json").exists():
                shutil.copy(path, fixtures / f"{name}_{path.name}")
                document["models"].append({"file": f"{name}_{path.name}", "labels": list(LABELS)})
    (fixtures / "fixtures.json").write_text(json.dumps(document, indent=1), encoding="utf-8")

    written = json.loads((golden_dirs[0] / "golden.json").read_text(encoding="utf-8"))
    inputs = {name: entry["input"] for name, entry in written["artefacts"].items()}
    assert inputs["model_tflite-int8.tflite"]["dtype"] == "int8"
    assert inputs["model_tflite-uint8io.tflite"]["dtype"] == "uint8"
    assert len(written["images"]) == len(GOLDEN_SIZES)

    for golden in golden_dirs:
        output = _run_jvm_tests(golden, fixtures)
        assert "GoldenVectorsTest: " in output and "3 artefacts" in output, output[-3000:]
    assert f"ResizeParityTest: {len(document['resize'])} resizes" in output, output[-3000:]


def test_jvm_core_alone_passes_its_hand_made_tests() -> None:
    _require_jvm()
    output = _run_jvm_tests()
    assert "OK (" in output
