"""Many classes: `edgetl train` on N tiny classes x 2 photos, its peak memory and every output.

The issue-28 measurement: 300 classes x 2 photos trained in 3 s, then the confusion plot took
10.6 GB and 50 s (a figure growing with the square of the class count). The target is 1,000
classes at <= 2 GB peak RSS with every output written.

The photos are generated (one noisy colour per class, 48 px PNGs); training runs in a child
process through the real CLI (`edgetl train --strategy feature-extract`), so the peak RSS is the
child's own (`RUSAGE_CHILDREN`), not this script's. The backbone is MobileNetV2 with the
ImageNet weights from ../shared when present, else random weights (memory is what is measured).
Prints one JSON object and writes it to `--json`; the load average says how busy the machine
was (seconds on a shared machine are relative, the peak RSS much less so).

    python bench/many_classes.py --classes 1000 --json bench/results_many_classes.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5"
OUTPUTS = ("model.keras", "labels.txt", "preprocessing.json", "metadata.json", "metrics.json", "splits.json",
           "history.csv", "curves.png", "confusion.png")


def write_photos(root: Path, classes: int, per_class: int) -> None:
    """`root/class_NNNN/i.png`: one random colour per class with pixel noise."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class_{c:04d}"
        folder.mkdir(parents=True)
        colour = rng.integers(0, 256, 3)
        for i in range(per_class):
            pixels = np.clip(colour + rng.integers(-12, 13, (48, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    weights = str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else "none"
    with tempfile.TemporaryDirectory(prefix="edgetl-many-classes-") as tmp:
        data, run = Path(tmp) / "photos", Path(tmp) / "run"
        write_photos(data, args.classes, args.per_class)
        command = [str(Path(sys.executable).with_name("edgetl")), "train", str(data), "--out", str(run), "--quiet",
                   "--strategy", "feature-extract", "--image-size", str(args.image_size),
                   "--epochs", str(args.epochs), "--weights", weights]
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "EDGETL_CACHE_DIR": str(Path(tmp) / "cache")})
        seconds = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        written = {name: (run / name).stat().st_size for name in OUTPUTS if (run / name).exists()}
        pngs = {name: list(Image.open(run / name).size) for name in ("curves.png", "confusion.png") if name in written}
    result = {
        "classes": args.classes, "photos_per_class": args.per_class, "image_size": args.image_size,
        "epochs": args.epochs, "weights": "imagenet (../shared)" if weights != "none" else "none",
        "exit_code": finished.returncode, "seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb),
        "target_peak_rss_mb": 2048, "outputs_bytes": written, "missing_outputs": sorted(set(OUTPUTS) - set(written)),
        "png_pixels": pngs, "cpu": cpu_name(), "cores": os.cpu_count(),
        "load_average_1min": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
        "stderr_tail": finished.stderr[-600:] if finished.returncode else "",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
