"""Pretrain the MobileNetV2 backbone edgetl ships in `models/`, on Fashion-MNIST, with edgetl itself.

Fashion-MNIST (Zalando Research, MIT license) comes from Debian's `dataset-fashion-mnist`
package (`apt-get install dataset-fashion-mnist`). The images are written as class folders of
PNGs in a temporary folder (`train/` and the official `test/` split), `edgetl.train.train` trains
every layer of a randomly initialized MobileNetV2 on them (`strategy="full"`), and the nested
headless backbone's weights are saved as `models/mobilenet_v2_{alpha}_{size}_fashion_mnist_no_top.weights.h5`
beside a `MODEL_CARD.md` holding the command and the measured test accuracy.

    .venv/bin/python scripts/pretrain_backbone.py --image-size 48 --per-class 3000 --epochs 6
"""

from __future__ import annotations

import argparse
import gzip
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from edgetl.backbones import BackboneOptions
from edgetl.spec import write_text_atomic
from edgetl.train import TrainOptions, TrainResult, train

SOURCE = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")
ALPHA = 0.35
VAL_SPLIT = 0.1


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip): unsigned bytes after a header of 4-byte big-endian dimension sizes."""
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_split(prefix: str, root: Path, per_class: int | None, rng: np.random.Generator) -> int:
    """Write `root/<class>/<i>.png` (28x28 grayscale), at most `per_class` drawn per class."""
    images = read_idx(SOURCE / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(SOURCE / f"{prefix}-labels-idx1-ubyte.gz")
    written = 0
    for index, name in enumerate(CLASSES):
        members = np.flatnonzero(labels == index)
        if per_class is not None:
            members = np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False))
        (root / name).mkdir(parents=True)
        for i in members:
            Image.fromarray(images[i]).save(root / name / f"{i:05d}.png")
        written += len(members)
    return written


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested MobileNetV2 inside an edgetl classifier (the one sub-model that is not the head)."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name != "edgetl_head")


def model_card(
    args: argparse.Namespace, weights: Path, result: TrainResult, test_accuracy: float, counts: dict[str, int], minutes: float
) -> str:
    metrics = result.metrics
    command = " ".join(["python scripts/pretrain_backbone.py", *map(shlex.quote, sys.argv[1:])])
    return f"""# {weights.name}

A headless MobileNetV2 (alpha {ALPHA}, {args.image_size}x{args.image_size} RGB input, no top) pretrained by
edgetl's own code on Fashion-MNIST, so that `edgetl demo` and offline users have a pretrained
backbone without a network. Load it with `edgetl train DATA --backbone mobilenet_v2 --alpha {ALPHA}
--image-size {args.image_size} --weights models/{weights.name}`, or with
`keras.applications.MobileNetV2(input_shape=({args.image_size}, {args.image_size}, 3), alpha={ALPHA}, include_top=False, weights=None).load_weights(path)`.

| | |
|---|---|
| Architecture | `keras.applications.MobileNetV2(alpha={ALPHA}, include_top=False)`, {args.image_size}x{args.image_size}x3 input |
| Input | RGB pixels scaled to [-1, 1] (x / 127.5 - 1); an edgetl classifier does this inside, so it takes RGB [0, 255] pixels |
| Training data | Fashion-MNIST train split, {counts['train']} images ({args.per_class} per class), {VAL_SPLIT:.0%} held out for validation; grayscale 28x28 repeated to RGB and resized bilinearly to {args.image_size}x{args.image_size} |
| Training | `edgetl.train.train`, strategy `full` (every layer, batch-norm included, batch-norm momentum 0.9), random initialization, {args.epochs} epochs at most, batch {args.batch_size}, Adam lr {args.learning_rate}, no augmentation |
| Fashion-MNIST test accuracy | **{test_accuracy:.2%}** on the official test split ({counts['test']} images), the saved classifier in inference mode |
| Training time | {minutes:.1f} min on {os.cpu_count()} CPU cores |
| Size | {weights.stat().st_size / 1e6:.2f} MB |

## What it is for
Small grayscale-like images: the offline `edgetl demo` (handwritten digits) and quick tries. It
learned from 10 classes of clothing photos on a black background, so it is far weaker than the
ImageNet weights on everyday photos: when online, `--weights imagenet` (the default) is the
recommended path.

## Licenses
- Data: Fashion-MNIST, Copyright (c) 2017 Zalando SE, MIT license
  (https://github.com/zalandoresearch/fashion-mnist), as packaged by Debian (`dataset-fashion-mnist`).
- These weights: made by the edgetl project, Apache-2.0 like the rest of edgetl.

## How it was made
```
{command}
```
(`scripts/pretrain_backbone.py` in the edgetl repository, edgetl {metrics['edgetl_version']}.)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=48, choices=(32, 48, 64))
    parser.add_argument("--per-class", type=int, default=3000, help="Training images per class (at most 6000).")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "models")
    args = parser.parse_args()
    if not SOURCE.is_dir():
        sys.exit(f"Fashion-MNIST not found in {SOURCE}: apt-get install dataset-fashion-mnist")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgetl-fashion-") as tmp:
        data, cache = Path(tmp) / "fashion_mnist", Path(tmp) / "cache"
        rng = np.random.default_rng(0)
        counts = {"train": write_split("train", data / "train", args.per_class, rng), "test": write_split("t10k", data / "test", None, rng)}
        result = train(
            data,
            Path(tmp) / "run",
            backbone=BackboneOptions(name="mobilenet_v2", alpha=ALPHA, image_size=args.image_size, weights="none"),
            options=TrainOptions(
                strategy="full", epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                augment=False, val_split=VAL_SPLIT, patience=args.epochs, cache_dir=cache,
            ),
            verbose=2,
        )
        model = keras.saving.load_model(result.model_path, safe_mode=True)
        test_accuracy = result.metrics["test_accuracy"]
        args.out.mkdir(parents=True, exist_ok=True)
        weights = args.out / f"mobilenet_v2_{ALPHA}_{args.image_size}_fashion_mnist_no_top.weights.h5"
        backbone_of(model).save_weights(weights)
    minutes = (time.monotonic() - started) / 60
    write_text_atomic(args.out / "MODEL_CARD.md", model_card(args, weights, result, test_accuracy, counts, minutes))
    print(f"test accuracy {test_accuracy:.4f}; {weights} ({weights.stat().st_size / 1e6:.2f} MB) in {minutes:.1f} min")

if __name__ == "__main__":
    main()
