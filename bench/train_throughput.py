"""Training throughput of edgetl against a hand-written PyTorch loop, side by side in one run.

Measures images/s for MobileNetV2 (default 224 px, batch 128):
  (a) head training with a frozen backbone (`fit` on pixels, the backbone runs every step),
  (b) full fine-tune (every layer trained), plain and behind edgetl's training augmentation
      (what `edgetl train --strategy full` runs; it must stay jit-compiled, near the plain rate),
  (c) head training through the feature cache over `--cache-epochs` epochs (one backbone pass,
      then the head alone), counted as images seen per second including the extraction,
  (d) torchvision's own MobileNetV2 in a hand-written PyTorch loop, full fine-tune, when torch
      and torchvision import,
on synthetic tensors, and (with `--data DIR`) from a real photo folder through edgetl's
decoded-image cache (first epoch decodes, later ones read the cache).

Prints one JSON object with the figures and the ratios ours/torchvision and cache/plain.
On the GPU machine (JAX, no TensorFlow):  KERAS_BACKEND=jax python bench/train_throughput.py
On a CPU, make it small:  python bench/train_throughput.py --image-size 96 --batch-size 32 --steps 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _timed_rate(step: Callable[[], None], images_per_step: int, steps: int, warmup: int) -> float:
    """Images per second over `steps` calls of `step`, after `warmup` calls (compilation)."""
    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return images_per_step * steps / (time.perf_counter() - started)


def _keras_classifier(size: int, num_classes: int, *, frozen: bool, precision: str, augment: bool = False):
    import keras

    from edgetl.backbones import BackboneOptions, build_backbone, build_classifier, build_head
    from edgetl.train import TrainOptions, with_augmentation

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "mixed" and keras.backend.backend() == "jax" else "mixed_float16" if precision == "mixed" else "float32")
    backbone = build_backbone(BackboneOptions(image_size=size, weights="none"))
    backbone.trainable = not frozen
    model = build_classifier(backbone, "tf", build_head(num_classes, 0.2), frozen_batch_norm=frozen)
    if augment:
        model = with_augmentation(model, TrainOptions(augment=True))
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy", jit_compile="auto")
    return model, backbone


def keras_fit_rate(x: np.ndarray, y: np.ndarray, *, frozen: bool, steps: int, precision: str, augment: bool = False) -> float:
    """`fit` on in-memory pixels; one epoch of `steps` batches after a warm-up epoch."""
    model, _ = _keras_classifier(x.shape[1], int(y.max()) + 1, frozen=frozen, precision=precision, augment=augment)
    batch = len(x) // steps
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # compile
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return len(x) / (time.perf_counter() - started)


def feature_cache_rate(x: np.ndarray, y: np.ndarray, *, epochs: int, precision: str) -> float:
    """Images seen per second training the head on cached features for `epochs` epochs,
    the one backbone pass included."""
    import keras

    from edgetl.backbones import build_feature_extractor, build_head

    _, backbone = _keras_classifier(x.shape[1], int(y.max()) + 1, frozen=True, precision=precision)
    extractor = build_feature_extractor(backbone, "tf")
    head = build_head(int(y.max()) + 1, 0.2)
    inputs = keras.Input((backbone.output_shape[-1],))
    head_model = keras.Model(inputs, head(inputs))
    head_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=True)
    batch = min(128, len(x))
    extractor.predict(x[:batch], batch_size=batch, verbose=0)  # compile
    head_model.fit(np.zeros((batch, backbone.output_shape[-1]), "float32"), y[:batch], epochs=1, verbose=0)
    started = time.perf_counter()
    features = extractor.predict(x, batch_size=batch, verbose=0)
    head_model.fit(features, y, batch_size=batch, epochs=epochs, verbose=0)
    return len(x) * epochs / (time.perf_counter() - started)


def torchvision_rate(size: int, batch: int, steps: int, precision: str) -> float | None:
    """torchvision's MobileNetV2, full fine-tune in a plain loop (no torch: None)."""
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = torchvision.models.mobilenet_v2(num_classes=2).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.randn(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,), device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "mixed")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return _timed_rate(step, batch, steps, warmup=3)


def folder_rates(data: Path, size: int, batch: int, precision: str) -> dict[str, float]:
    """Full fine-tune from a real photo folder: epoch 1 decodes JPEGs, epoch 2 reads the cache."""
    import tempfile

    from edgetl.data import decode_images, load_splits
    from edgetl.spec import PreprocessingSpec

    splits = load_splits(data, val_split=0.0, test_split=0.0)
    spec = PreprocessingSpec(image_size=(size, size))
    model, _ = _keras_classifier(size, len(splits.class_names), frozen=False, precision=precision)
    rates = {}
    with tempfile.TemporaryDirectory() as cache:
        for epoch in ("first_epoch", "cached_epoch"):
            started = time.perf_counter()
            x, y = decode_images(splits.train, spec, cache_dir=Path(cache))
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            rates[epoch] = len(y) / (time.perf_counter() - started)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="batches per timed epoch")
    parser.add_argument("--cache-epochs", type=int, default=10)
    parser.add_argument("--precision", choices=("float32", "mixed"), default="float32")
    parser.add_argument("--data", type=Path, help="a real photo folder (DATA_DIR/<class>/*.jpg)")
    args = parser.parse_args()

    import keras

    rng = np.random.default_rng(0)
    n = args.batch_size * args.steps
    x = rng.integers(0, 256, (n, args.image_size, args.image_size, 3), dtype=np.uint8).astype("float32")
    y = rng.integers(0, 2, n)
    frozen = keras_fit_rate(x, y, frozen=True, steps=args.steps, precision=args.precision)
    full = keras_fit_rate(x, y, frozen=False, steps=args.steps, precision=args.precision)
    augmented = keras_fit_rate(x, y, frozen=False, steps=args.steps, precision=args.precision, augment=True)
    cache = feature_cache_rate(x, y, epochs=args.cache_epochs, precision=args.precision)
    torch_rate = torchvision_rate(args.image_size, args.batch_size, args.steps, args.precision)
    report = {
        "device": keras.distribution.list_devices()[0],
        "backend": keras.backend.backend(),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "img_per_s": {
            "head_frozen_backbone": round(frozen, 1),
            "full_fine_tune": round(full, 1),
            "full_fine_tune_augmented": round(augmented, 1),
            f"head_feature_cache_{args.cache_epochs}_epochs": round(cache, 1),
            "torchvision_full_fine_tune": round(torch_rate, 1) if torch_rate else None,
        },
        "ratios": {
            "full_fine_tune_ours_over_torchvision": round(full / torch_rate, 3) if torch_rate else None,
            "feature_cache_over_plain_frozen": round(cache / frozen, 2),
            "augmented_over_plain_full": round(augmented / full, 3),
        },
    }
    if args.data:
        rates = folder_rates(args.data, args.image_size, args.batch_size, args.precision)
        report["real_folder_img_per_s"] = {k: round(v, 1) for k, v in rates.items()}
        report["ratios"]["real_folder_cached_over_synthetic"] = round(rates["cached_epoch"] / full, 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
