"""Full fine-tune throughput of edgetl against PyTorch, like for like, side by side in one run.

Both sides train MobileNetV2 (every layer, Adam, the same batch, size and precision) on the
same uint8 decoded-image array (edgetl's decoded cache with `--data DIR`, else random pixels),
each through its real input path:

- edgetl: `fit` on the batches `train` feeds (`edgetl.train.inputs`): the uint8 set kept on the
  device and gathered there per step when it fits, else gathered by host threads that prefetch
  to the device; the cast, scaling and (for `keras_augmented`) augmentation run in the step;
- torch, two loaders: `dataloader` (DataLoader workers, pinned memory, non-blocking copies; the
  usual recipe), and `device_gather` (the uint8 set on the GPU, a randperm gather per step);
  torchvision's MobileNetV2 when torchvision imports, else the same network in plain torch.

Each is timed over `--steps` steps (at least 100 on a GPU) after `--warmup` steps, with one
synchronisation at each end. Prints one JSON object: images/s per side and input path, the
ratios ours/torch, and what each side ran.

GPU (JAX, no TensorFlow):  KERAS_BACKEND=jax python bench/train_throughput.py --batch-size 256
CPU smoke run:  KERAS_BACKEND=jax python bench/train_throughput.py --image-size 32 --batch-size 8 --steps 3 --warmup 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

NUM_CLASSES = 10


def uint8_images(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """The training set both sides read: `--data` through edgetl's decoded cache, else random."""
    count = args.batch_size * (args.steps + args.warmup)
    if args.data:
        import tempfile

        from edgetl.data import decode_images, load_splits
        from edgetl.spec import PreprocessingSpec

        splits = load_splits(args.data, val_split=0.0, test_split=0.0)
        with tempfile.TemporaryDirectory() as cache:
            x, y = decode_images(splits.train, PreprocessingSpec(image_size=(args.image_size,) * 2), cache_dir=Path(cache))
        repeat = -(-count // len(y))  # as many epochs as the timed steps need
        return np.concatenate([x] * repeat)[:count], np.concatenate([y] * repeat)[:count], f"decoded cache of {args.data}"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (count, args.image_size, args.image_size, 3), dtype=np.uint8)
    return x, rng.integers(0, NUM_CLASSES, count).astype(np.int32), "random uint8 pixels"


# --- edgetl (Keras) ----------------------------------------------------------------------------


def keras_rate(x: np.ndarray, y: np.ndarray, args: argparse.Namespace, *, augment: bool) -> tuple[float, str]:
    """Images/s of `fit` on `train`'s input path; the warm-up `fit` compiles the step."""
    import keras

    from edgetl.backbones import BackboneOptions, build_backbone, build_classifier, build_head
    from edgetl.train import TrainOptions, with_augmentation
    from edgetl.train.inputs import ShuffledBatches, fits_on_device

    policy = {"float32": "float32", "bf16": "mixed_bfloat16"}[args.precision]
    keras.mixed_precision.set_global_policy(policy)
    backbone = build_backbone(BackboneOptions(image_size=args.image_size, weights="none"))
    model = build_classifier(backbone, "tf", build_head(NUM_CLASSES, 0.2), frozen_batch_norm=False)
    if augment:
        model = with_augmentation(model, TrainOptions(augment=True))
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    on_device = fits_on_device(x.nbytes + y.nbytes)
    split = args.warmup * args.batch_size
    warm = ShuffledBatches(x[:split], y[:split], batch_size=args.batch_size, seed=0, on_device=on_device)
    timed = ShuffledBatches(x[split:], y[split:], batch_size=args.batch_size, seed=1, on_device=on_device)
    model.fit(warm, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(timed, epochs=1, verbose=0)  # returns once the last step's loss is on the host
    seconds = time.perf_counter() - started
    keras.mixed_precision.set_global_policy("float32")
    path = "uint8 on the device, gathered per step" if on_device else "host gather, background device_put prefetch"
    return len(y[split:]) / seconds, path


# --- torch -------------------------------------------------------------------------------------


def torch_model(torch, num_classes: int):
    """torchvision's MobileNetV2, or the same architecture in plain torch where it will not import."""
    try:
        import torchvision

        return torchvision.models.mobilenet_v2(num_classes=num_classes), f"torchvision {torchvision.__version__}"
    except (ImportError, RuntimeError):
        return _plain_mobilenet_v2(torch, num_classes), "plain-torch MobileNetV2 (torchvision does not import here)"


def _plain_mobilenet_v2(torch, num_classes: int):
    nn = torch.nn

    def conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if act else nn.Sequential(*layers)

    class Inverted(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            steps = [conv(cin, hidden, 1)] if expand != 1 else []
            self.body = nn.Sequential(*steps, conv(hidden, hidden, 3, stride, hidden), conv(hidden, cout, 1, act=False))
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    blocks, cin = [conv(3, 32, 3, 2)], 32
    for expand, cout, repeats, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(repeats):
            blocks.append(Inverted(cin, cout, stride if i == 0 else 1, expand))
            cin = cout
    blocks += [conv(cin, 1280, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, num_classes)]
    return nn.Sequential(*blocks)


class _UInt8Set:
    """The uint8 array as a map-style dataset (what a DataLoader worker reads per photo)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.int64]:
        return self.x[i], np.int64(self.y[i])


def torch_rates(x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> dict[str, object]:
    try:
        import torch
    except ImportError:
        return {"skipped": "torch does not import here"}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model, source = torch_model(torch, NUM_CLASSES)
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step(pixels, labels) -> None:
        # NHWC uint8 -> NCHW float in [-1, 1], channels-last memory, as Keras' MobileNetV2 scales.
        images = pixels.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    def timed(batches) -> float:
        for _ in range(args.warmup):
            step(*next(batches))
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(args.steps):
            step(*next(batches))
        if device == "cuda":
            torch.cuda.synchronize()
        return args.steps * args.batch_size / (time.perf_counter() - started)

    def loader_batches():
        loader = torch.utils.data.DataLoader(
            _UInt8Set(x, y), batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
            pin_memory=device == "cuda", persistent_workers=args.workers > 0, generator=torch.Generator().manual_seed(0),
        )
        while True:
            for pixels, labels in loader:
                yield pixels.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    def gathered_batches():
        pixels, labels = torch.from_numpy(x).to(device), torch.from_numpy(y.astype(np.int64)).to(device)
        while True:
            order = torch.randperm(len(labels), device=device)
            for start in range(0, len(labels) - args.batch_size + 1, args.batch_size):
                picked = order[start : start + args.batch_size]
                yield pixels[picked], labels[picked]

    model.train()
    rates = {"dataloader": round(timed(loader_batches()), 1), "device_gather": round(timed(gathered_batches()), 1)}
    if device == "cuda":
        torch.cuda.empty_cache()  # hand the memory back before JAX runs
    return {
        "model": source,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "dataloader": rates["dataloader"],
        "dataloader_input": f"DataLoader, {args.workers} workers, pin_memory={device == 'cuda'}, non_blocking copies",
        "device_gather": rates["device_gather"],
        "device_gather_input": "uint8 set on the device, randperm gather per step",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per side (at least 100 for published figures)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, cuDNN autotuning)")
    parser.add_argument("--precision", choices=("float32", "bf16"), default="float32")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="torch DataLoader workers")
    parser.add_argument("--data", type=Path, help="a real photo folder (DATA_DIR/<class>/*.jpg), read through edgetl's decoded cache")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--skip-augmented", action="store_true", help="leave out edgetl behind its augmentation (one compilation less)")
    args = parser.parse_args()

    # Both sides share the GPU in turn: JAX must not take 75% of its memory at start-up.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import keras

    x, y, source = uint8_images(args)
    theirs = {"skipped": "--skip-torch"} if args.skip_torch else torch_rates(x, y, args)
    ours, ours_input = keras_rate(x, y, args, augment=False)
    ours_augmented = None if args.skip_augmented else round(keras_rate(x, y, args, augment=True)[0], 1)
    report = {
        "device": str(keras.distribution.list_devices()[0]),
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "model": "MobileNetV2 1.0, full fine-tune, Adam",
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "timed_steps": args.steps,
        "warmup_steps": args.warmup,
        "data": f"{len(y)} uint8 images: {source}",
        "img_per_s": {"keras": round(ours, 1), "keras_augmented": ours_augmented, "torch": theirs},
        "input_paths": {"keras": ours_input, "keras_augmented": f"{ours_input}; flip/rotate/zoom/contrast in the step"},
    }
    if "dataloader" in theirs:
        report["ratios"] = {
            "keras_over_torch_dataloader": round(ours / theirs["dataloader"], 3),
            "keras_over_torch_device_gather": round(ours / theirs["device_gather"], 3),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
