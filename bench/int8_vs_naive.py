"""Benchmark: edgetl's int8 artefacts against a naive TFLite full-int8 PTQ of the same model.

    .venv/bin/python bench/int8_vs_naive.py [--run RUN_DIR] [--shared ../shared] [--recipes default,auto]

For one `model.keras` and one set of photos, in one run, counts the photos whose top-1 differs
from the float Keras model for
  (a) naive: `TFLiteConverter` full-int8 PTQ (DEFAULT optimizations, TFLITE_BUILTINS_INT8, int8
      I/O), calibrated min/max on 200 training photos, the 20-line script a user would write;
  (b) edgetl's tflite-int8 and (c) edgetl's onnx-int8, once per `--recipes` entry.
Agreement needs no labels, so the photos are every photo under `--photos` (default: the
cats_vs_dogs test and train photos and the Coral photos in ../shared) in several variants each
(the photo, its mirror image, and four 80% corner crops), at least 600 in all, less the run's
training split: the model was fitted, and int8 is calibrated, on those photos, so they are not
held out.

A pretrained classifier exported with `edgetl export --pretrained` has no training split: pass
`--calibration-dir` (its photos are then excluded from `--photos` by folder, so keep them apart).

Without --run it first trains MobileNetV2-1.0 (ImageNet backbone from ../shared, feature
extraction, 224 px) on cats_vs_dogs/train. Prints one JSON document; `ratio` is edgetl's
disagreements over naive's (issue 29's target: <= 0.25).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NAIVE_CALIBRATION = 200
MIN_PHOTOS = 600


def variants(image) -> list:
    """The photo, its mirror image, and its four 80% corner crops (PIL images, not yet resized)."""
    from PIL import ImageOps

    w, h = image.size
    cw, ch = int(w * 0.8), int(h * 0.8)
    crops = [image.crop((x, y, x + cw, y + ch)) for x in (0, w - cw) for y in (0, h - ch)]
    return [image, ImageOps.mirror(image), *crops]


def probe_pixels(folders: list[Path], spec, exclude: set[Path]) -> np.ndarray:
    """uint8 pixels of every photo under `folders` but `exclude`, in every variant, decoded as edgetl decodes."""
    from edgetl.runtime.image import image_to_pixels, is_image_file, load_image

    files = sorted(p for folder in folders for p in folder.rglob("*") if is_image_file(p) and p.resolve() not in exclude)
    return np.stack([image_to_pixels(v, spec) for f in files for v in variants(load_image(f))])


def naive_tflite(model, calib: np.ndarray) -> bytes:
    """What a user writes from TensorFlow's guide: full-integer PTQ, min/max on the calibration photos."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calib[i : i + 1].astype(np.float32)] for i in range(len(calib)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def run_tflite(data: bytes, pixels: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=2)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    scores = []
    for pix in pixels:
        q = np.clip(np.rint(pix.astype(np.float64) / s_in + z_in), -128, 127).astype(np.int8)[None]
        interpreter.set_tensor(inp["index"], q)
        interpreter.invoke()
        scores.append((interpreter.get_tensor(out["index"])[0].astype(np.float32) - z_out) * s_out)
    return np.stack(scores)


def run_artefact(path: Path, pixels: np.ndarray) -> np.ndarray:
    from edgetl.runtime import Classifier

    clf = Classifier.from_file(path, threads=2)
    return np.concatenate([clf.run_pixels(pixels[i : i + 32]) for i in range(0, len(pixels), 32)])


def train_run(shared: Path, run: Path) -> None:
    from edgetl.backbones import BackboneOptions
    from edgetl.train import TrainOptions, train

    weights = shared / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5"
    train(shared / "data" / "cats_vs_dogs" / "train", run, verbose=0,
          backbone=BackboneOptions(name="mobilenet_v2", alpha=1.0, image_size=224, weights=str(weights)),
          options=TrainOptions(strategy="feature-extract", epochs=5, batch_size=16, cache_dir=run.parent / "cache"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("EDGETL_SHARED", repo.parent / "shared")))
    parser.add_argument("--run", type=Path, default=None, help="A trained RUN_DIR (default: train one on cats_vs_dogs).")
    parser.add_argument("--photos", type=Path, nargs="*", default=None, help="Folders of photos to count agreement on.")
    parser.add_argument("--recipes", default="default", help="Comma-separated --quantization recipes for edgetl.")
    parser.add_argument("--calibration-dir", type=Path, default=None,
                        help="Calibrate naive and edgetl on 200 photos drawn from here (default: the training split).")
    args = parser.parse_args()

    from edgetl.export import ExportOptions, artefact_path, calibration, export, load_run
    from edgetl.rundir import read_split

    started = time.perf_counter()
    run = args.run or Path(tempfile.mkdtemp(prefix="edgetl-int8-bench-")) / "run"
    if not (run / "model.keras").is_file():
        train_run(args.shared, run)
    model, meta = load_run(run)
    folders = args.photos or [args.shared / "data" / "cats_vs_dogs", args.shared / "coral"]
    trained_on = {Path(p).resolve() for p, _ in read_split(run, "train") or ()}  # a --pretrained export has none
    pixels = probe_pixels(folders, meta.preprocessing, trained_on)
    if len(pixels) < MIN_PHOTOS:
        print(f"only {len(pixels)} photo variants under {folders}; need {MIN_PHOTOS}", file=sys.stderr)
        return 2
    ref = np.concatenate([np.asarray(model.predict_on_batch(pixels[i : i + 32].astype(np.float32)))
                          for i in range(0, len(pixels), 32)]).argmax(1)
    # The same 200 photos as edgetl's default draw (stratified, seed 0), so only the recipe differs.
    if args.calibration_dir is not None:
        calib = calibration.from_dir(args.calibration_dir, meta.preprocessing, size=NAIVE_CALIBRATION, seed=0,
                                     labels=meta.labels).as_float()
    else:
        calib = calibration.from_split(read_split(run, "train"), meta.labels, meta.preprocessing, size=NAIVE_CALIBRATION,
                                       seed=0, source="training split").as_float()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):  # Keras prints the SavedModel it writes
        warnings.simplefilter("ignore")
        naive = naive_tflite(model, calib)
    counts = {"naive": int((run_tflite(naive, pixels).argmax(1) != ref).sum())}
    sizes = {"naive": len(naive)}
    for recipe in args.recipes.split(","):
        out = run.parent / f"export-{recipe}"
        report = export(run, ExportOptions(formats=("tflite-fp32", "tflite-int8", "onnx-int8"), output_dir=out,
                                           quantization=recipe, golden=False, calibration_dir=args.calibration_dir,
                                           calibration_size=NAIVE_CALIBRATION))
        for fmt in ("tflite-int8", "onnx-int8"):
            path = artefact_path(out, fmt)
            counts[f"{fmt}:{recipe}"] = int((run_artefact(path, pixels).argmax(1) != ref).sum())
            sizes[f"{fmt}:{recipe}"] = path.stat().st_size
        sizes["tflite-fp32"] = artefact_path(out, "tflite-fp32").stat().st_size
        print(f"{recipe}: export {report.seconds:.0f} s, {counts}", file=sys.stderr)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "run": str(run), "photos": len(pixels), "photo_folders": [str(f) for f in folders],
        "disagreements": counts,
        "ratio_to_naive": {k: round(v / max(counts["naive"], 1), 3) for k, v in counts.items() if k != "naive"},
        "size_ratio_to_fp32": {k: round(v / sizes["tflite-fp32"], 3) for k, v in sizes.items() if k != "tflite-fp32"},
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
