"""What `edgetl.runtime` adds over a bare interpreter call, per format (issues 4 and 16 target: <= 5%).

Measures in one run, on one interpreter per model (MobileNetV2-224 int8, or every artefact of an
export folder with --export-dir):
  - bare `invoke()` on an already-fed tensor, and `Classifier.run_pixels` (quantize, feed,
    invoke, read, dequantize), interleaved so load changes hit both alike;
  - the full `classify([path])`: JPEG decode + resize included.
Prints one JSON object; `runner_overhead = run_pixels_p50 / invoke_p50 - 1` (below zero it is
noise, reported as 0 with `noise: true`).

    python bench/runtime_overhead.py                      # builds the int8 model first (~1 min)
    python bench/runtime_overhead.py --model /tmp/mnv2/model_tflite-int8.tflite --threads 1   # build once, reuse
    python bench/runtime_overhead.py --export-dir RUN_DIR/export   # every format of a real export
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edgetl.runtime import Classifier
from edgetl.runtime.benchmark import Latency, benchmark
from edgetl.runtime.image import load_pixels
from edgetl.spec import ModelMetadata, PreprocessingSpec

SHARED = Path(__file__).resolve().parents[2] / "shared"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5"
PHOTOS = SHARED / "data" / "cats_vs_dogs" / "train"
SPEC = PreprocessingSpec(image_size=(224, 224), normalization="MobileNetV2: x / 127.5 - 1 inside the model")
TARGET = 0.05


def build_int8_model(out_dir: Path, calibration: list[Path]) -> Path:
    """MobileNetV2-1.0-224 (ImageNet backbone if ../shared has it) + a 2-class head, full int8 TFLite."""
    import keras
    import tensorflow as tf

    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    backbone = keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=False, weights=None)
    if WEIGHTS.exists():
        backbone.load_weights(WEIGHTS)
    x = keras.layers.GlobalAveragePooling2D()(backbone(x))
    outputs = keras.layers.Dense(2, activation="softmax", name="edgetl_probs")(x)
    model = keras.Model(inputs, outputs)

    samples = [load_pixels(p, SPEC).astype(np.float32)[None] for p in calibration]
    if not samples:
        samples = [np.random.default_rng(i).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32) for i in range(16)]
    saved = out_dir / "saved_model"
    model.export(saved, verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = out_dir / "model_tflite-int8.tflite"
    path.write_bytes(converter.convert())
    meta = ModelMetadata(labels=("cat", "dog"), preprocessing=SPEC, format="tflite-int8", backbone="mobilenet_v2")
    path.with_suffix(".json").write_text(meta.to_json())
    return path


def time_classify(clf: Classifier, photo: Path, runs: int) -> Latency:
    clf.classify([photo])
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        clf.classify([photo])
        seconds.append(time.perf_counter() - start)
    return Latency.of(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="The int8 .tflite to time; MobileNetV2-224 int8 is built there first if it does not exist (default: built in a temporary folder).")
    parser.add_argument("--export-dir", type=Path, help="Time every model_*.tflite / model_*.onnx in this folder instead.")
    parser.add_argument("--photo", type=Path, help="Photo for the classify() timing (default: a cats_vs_dogs JPEG).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    photos = sorted(PHOTOS.glob("*/*.jpg"))[::10] if PHOTOS.exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        if args.export_dir:
            models = sorted(p for p in args.export_dir.glob("model_*") if p.suffix in (".tflite", ".onnx"))
        else:
            model = args.model if args.model and args.model.exists() else build_int8_model(Path(tmp), photos[:32])
            if args.model and model != args.model:
                args.model.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(model, args.model)
                shutil.copy(model.with_suffix(".json"), args.model.with_suffix(".json"))
            models = [model]
        photo = args.photo or (photos[0] if photos else _synthetic_photo(Path(tmp)))
        formats = {model.stem.removeprefix("model_"): time_model(model, photo, args) for model in models}
    result = {
        "cpu": cpu_name(),
        "source": str(args.export_dir or args.model or "MobileNetV2-1.0-224 int8, built in a temporary folder"),
        "threads": args.threads,
        "runs": args.runs,
        "formats": formats,
        "worst_overhead": max(f["runner_overhead"] for f in formats.values()),
        "target": TARGET,
        "meets_target": all(f["runner_overhead"] <= TARGET for f in formats.values()),
    }
    print(json.dumps(result, indent=2))


def time_model(model: Path, photo: Path, args: argparse.Namespace) -> dict:
    """Bare invoke vs run_pixels (interleaved), and classify() on one photo, for one model."""
    clf = Classifier.from_file(model, threads=args.threads)
    report = benchmark(clf, runs=args.runs, warmup=args.warmup)
    classify = time_classify(clf, photo, max(20, args.runs // 4))
    overhead = report.runner_overhead
    return {
        "backend": report.backend,
        "input": clf.input_info.to_dict(),
        "invoke_p50_ms": round(report.invoke.p50_ms, 4),
        "run_pixels_p50_ms": round(report.run_pixels.p50_ms, 4),
        "classify_p50_ms": round(classify.p50_ms, 4),
        "invoke": vars(report.invoke),
        "run_pixels": vars(report.run_pixels),
        "classify": vars(classify),
        "measured_overhead": round(overhead, 4),
        "runner_overhead": round(max(overhead, 0.0), 4),
        "noise": overhead < 0,
    }


def cpu_name() -> str:
    """The CPU model and core count, for the record."""
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    return f"{name}, {os.cpu_count()} cores"


def _synthetic_photo(folder: Path) -> Path:
    path = folder / "photo.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(path, quality=90)
    return path


if __name__ == "__main__":
    main()
