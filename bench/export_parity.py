"""Benchmark: export MobileNetV2-224 (ImageNet backbone + a cats-vs-dogs head) to every format
and verify each artefact on held-out real photos.

    .venv/bin/python bench/export_parity.py [--shared ../shared] [--work DIR] [--epochs 3]

Trains a head briefly with `edgetl.train` (feature extraction on the ImageNet no-top weights
from ../shared/weights) on `data/cats_vs_dogs/train`, exports all six formats (timing each),
verifies them with `edgetl.verify` on `data/cats_vs_dogs/test`, and prints one JSON document
with the issue's targets:

- int8 size / fp32 size          <= 0.3
- int8 top-1 agreement           >= 0.99
- int8 accuracy drop             <= 0.01 (1 point)
- ONNX max |Δprob| vs Keras      <= 1e-4
- export of all formats          < 180 s (2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGETS = {"int8_size_ratio": 0.3, "int8_agreement": 0.99, "int8_accuracy_drop": 0.01, "onnx_max_abs_diff": 1e-4,
           "export_seconds": 180.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("EDGETL_SHARED", repo.parent / "shared")))
    parser.add_argument("--work", type=Path, default=None, help="Folder for the run (default: a temporary one).")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()

    from edgetl.backbones import BackboneOptions
    from edgetl.export import ExportOptions, export
    from edgetl.train import TrainOptions, train
    from edgetl.verify import verify

    data = args.shared / "data" / "cats_vs_dogs"
    weights = args.shared / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5"
    for path in (data / "train", data / "test", weights):
        if not path.exists():
            print(f"needs {path} (../shared)", file=sys.stderr)
            return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="edgetl-bench-"))
    run = work / "run"

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(
            data / "train", run, overwrite=True, verbose=0,
            backbone=BackboneOptions(name="mobilenet_v2", alpha=1.0, image_size=args.image_size, weights=str(weights)),
            options=TrainOptions(epochs=args.epochs, val_split=0.15, test_split=0.15, cache_dir=work / "cache"),
        )
    train_seconds = time.perf_counter() - started

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = export(run, ExportOptions())
    if not report.ok:
        print(json.dumps(report.to_dict(), indent=2), file=sys.stderr)
        return 1
    started = time.perf_counter()
    parity = verify(run, data=data / "test")
    verify_seconds = time.perf_counter() - started

    sizes = {r.format: r.size_bytes for r in report.results}
    by_format = {r.format: r for r in parity.results}
    int8 = by_format["tflite-int8"]
    figures = {
        "int8_size_ratio": sizes["tflite-int8"] / sizes["tflite-fp32"],
        "int8_agreement": int8.top1_agreement,
        "int8_accuracy_drop": -int8.accuracy_delta,
        "onnx_max_abs_diff": by_format["onnx"].max_abs_diff,
        "export_seconds": report.seconds,
    }
    met = {
        "int8_size_ratio": figures["int8_size_ratio"] <= TARGETS["int8_size_ratio"],
        "int8_agreement": figures["int8_agreement"] >= TARGETS["int8_agreement"],
        "int8_accuracy_drop": figures["int8_accuracy_drop"] <= TARGETS["int8_accuracy_drop"] + 1e-9,
        "onnx_max_abs_diff": figures["onnx_max_abs_diff"] <= TARGETS["onnx_max_abs_diff"],
        "export_seconds": figures["export_seconds"] < TARGETS["export_seconds"],
    }
    out = {
        "benchmark": "export_parity",
        "model": f"MobileNetV2-1.0-{args.image_size}, ImageNet backbone + cats-vs-dogs head ({args.epochs} epochs)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "train_seconds": round(train_seconds, 1),
        "test_images": parity.images,
        "float_accuracy": parity.reference["accuracy"],
        "figures": figures,
        "targets": TARGETS,
        "met": met,
        "export": {r.format: {"seconds": round(r.seconds, 2), "size_bytes": r.size_bytes} for r in report.results},
        "golden": str(report.golden) if report.golden else None,
        "verify_seconds": round(verify_seconds, 1),
        "parity": {r.format: {"accuracy": r.accuracy, "agreement": r.top1_agreement, "max_abs_diff": r.max_abs_diff,
                              "mean_abs_diff": r.mean_abs_diff, "latency_ms_p50": round(r.latency_ms_p50, 2),
                              "passed": r.passed} for r in parity.results},
        "tflite_fp32_vs_onnx": parity.cross,
        "calibration": report.calibration,
        "warnings": sorted({str(w.message)[:200] for w in caught}),
        "run_dir": str(run),
    }
    print(json.dumps(out, indent=2))
    return 0 if all(met.values()) and parity.passed else 1


if __name__ == "__main__":
    sys.exit(main())
