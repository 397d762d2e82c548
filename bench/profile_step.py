"""Where a full fine-tune step's time goes on JAX: a `jax.profiler` trace, summarised.

Trains MobileNetV2 (every layer) through `train`'s input path for `--warmup` untimed steps,
then traces `--steps` steps and prints one JSON object: the device's busiest kernels and ops
by total time, and the share of the traced device time spent in convolutions, and in the
depthwise-convolution backward pass (jax-ml/jax#13800) where the kernel names say so.

GPU:  KERAS_BACKEND=jax python bench/profile_step.py --batch-size 256 --trace-dir $OUT/trace
CPU smoke run:  KERAS_BACKEND=jax python bench/profile_step.py --image-size 32 --batch-size 8 --steps 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

CONVOLUTION = re.compile(r"conv|cudnn|implicit_gemm|wgrad|dgrad|fprop", re.IGNORECASE)
DEPTHWISE_BACKWARD = re.compile(r"depthwise.*(backprop|grad|bwd)|(wgrad|dgrad|bwd).*(depthwise|grouped)", re.IGNORECASE)


def trace_steps(args: argparse.Namespace, trace_dir: Path) -> None:
    import jax
    import keras

    from edgetl.backbones import BackboneOptions, build_backbone, build_classifier, build_head
    from edgetl.train.inputs import ShuffledBatches, fits_on_device

    keras.mixed_precision.set_global_policy({"float32": "float32", "bf16": "mixed_bfloat16"}[args.precision])
    model = build_classifier(build_backbone(BackboneOptions(image_size=args.image_size, weights="none")), "tf",
                             build_head(10, 0.2), frozen_batch_norm=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)

    def batches(steps: int) -> ShuffledBatches:
        x = rng.integers(0, 256, (steps * args.batch_size, args.image_size, args.image_size, 3), dtype=np.uint8)
        y = rng.integers(0, 10, len(x)).astype(np.int32)
        return ShuffledBatches(x, y, batch_size=args.batch_size, seed=0, on_device=fits_on_device(x.nbytes))

    model.fit(batches(args.warmup), epochs=1, verbose=0)
    timed = batches(args.steps)
    with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
        model.fit(timed, epochs=1, verbose=0)


def summarise(trace_dir: Path, top: int) -> dict:
    """Total time per event name on the device's streams (the host's when there is no device)."""
    path = next(trace_dir.rglob("perfetto_trace.json.gz"))
    with gzip.open(path, "rt") as handle:
        trace = json.load(handle)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    names = {e.get("pid"): e.get("args", {}).get("name", "") for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    device_pids = {pid for pid, name in names.items() if re.search(r"/device:(GPU|TPU)", name)}
    pids = device_pids or {pid for pid, name in names.items() if "/host:CPU" in name} or set(names)
    totals: Counter[str] = Counter()
    for event in events:
        if event.get("ph") == "X" and event.get("pid") in pids:
            totals[event["name"]] += float(event.get("dur", 0))
    whole = sum(totals.values()) or 1.0
    share = lambda pattern: round(sum(t for n, t in totals.items() if pattern.search(n)) / whole, 3)  # noqa: E731
    return {
        "trace": str(path),
        "timeline": "device" if device_pids else "host",
        "traced_ms": round(whole / 1e3, 1),
        "convolution_share": share(CONVOLUTION),
        "depthwise_backward_share": share(DEPTHWISE_BACKWARD),
        "top": [{"name": n[:160], "ms": round(t / 1e3, 2), "share": round(t / whole, 3)} for n, t in totals.most_common(top)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", choices=("float32", "bf16"), default="float32")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--trace-dir", type=Path, help="keep the trace here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        trace_dir = args.trace_dir or Path(scratch)
        trace_steps(args, trace_dir)
        report = {"image_size": args.image_size, "batch_size": args.batch_size, "precision": args.precision,
                  "traced_steps": args.steps, **summarise(trace_dir, args.top)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
