"""The `gptq` rounding's time, and how H converges with the patches each photo gives it (issue 25).

    python bench/rounding_speed.py RUN_DIR [--photos 200] [--curve-photos 64] [--curve 49,196,784,3136,0]

Times `rounding.gptq_copy` on the run's default calibration draw (wall and CPU seconds; target
<= 10 s for 200 photos at 224 px on 2 cores), then recomputes every layer's H on the first
`--curve-photos` photos with at most P patches per photo for each P of `--curve` (0: every
patch) and compares each with the largest: the relative distance of H (normalized by its trace:
the rounding does not depend on H's scale) and the share of int8 weights that round differently.
Records the load average, as the machine may be shared. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

TARGET_S = 10.0


def curve(model, calib: np.ndarray, sizes: list[int]) -> list[dict]:
    """One point per patches-per-photo size, each compared with the last (the largest) size."""
    from threadpoolctl import threadpool_limits

    from edgetl.export import rounding

    default, points = rounding.PATCHES_PER_PHOTO, []
    try:
        for size in sizes:
            rounding.PATCHES_PER_PHOTO = size or 10**9
            started = time.perf_counter()
            hessians = rounding._input_hessians(model, calib)
            seconds = time.perf_counter() - started
            with threadpool_limits(1, user_api="blas"):
                kernels = {layer: rounding._rounded_kernel(layer, h) for layer, h in hessians.items()}
            points.append({"patches_per_photo": size or "all", "hessian_s": round(seconds, 1),
                           "hessians": hessians, "kernels": kernels})
    finally:
        rounding.PATCHES_PER_PHOTO = default
    reference = points[-1]
    for point in points:
        distances, changed, total = [], 0, 0
        for layer, h in point["hessians"].items():
            ref = reference["hessians"][layer]
            distances.append(float(np.linalg.norm(_by_trace(h) - _by_trace(ref)) / np.linalg.norm(_by_trace(ref))))
            a, b = point["kernels"][layer], reference["kernels"][layer]
            changed += int((np.abs(a - b) > 1e-6 * np.abs(b).max()).sum())  # a step of some channel's grid
            total += a.size
        point.update({"h_distance_max": round(max(distances), 5),
                      "h_distance_median": round(float(np.median(distances)), 5),
                      "weights_rounded_differently": changed, "weights": total})
    return [{k: v for k, v in point.items() if k not in ("hessians", "kernels")} for point in points]


def _by_trace(h: np.ndarray) -> np.ndarray:
    trace = np.trace(h, axis1=-2, axis2=-1)[..., None, None]
    return h / np.where(trace > 0, trace, 1.0)  # a dead channel's H is all zeros


def main() -> None:
    from runtime_overhead import cpu_name

    from edgetl.export import calibration, load_run
    from edgetl.export.rounding import gptq_copy
    from edgetl.rundir import read_split

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--curve-photos", type=int, default=64)
    parser.add_argument("--curve", default="49,196,784,3136,0", help="Patches per photo; 0 is every patch.")
    args = parser.parse_args()

    model, meta = load_run(args.run)
    calib = calibration.from_split(read_split(args.run, "train"), meta.labels, meta.preprocessing, size=args.photos,
                                   seed=0, source="training split").as_float()
    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    gptq_copy(model, calib)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = {
        "cpu": cpu_name(), "cores": os.cpu_count(), "run": str(args.run), "photos": len(calib),
        "image_size": list(calib.shape[1:3]),
        "rounding_s": round(wall, 1), "rounding_cpu_s": round(cpu, 1),
        "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "target_s": TARGET_S, "meets_target": wall <= TARGET_S,
    }
    sizes = [int(s) for s in args.curve.split(",")]
    result["curve"] = {"photos": args.curve_photos, "compared_with": sizes[-1] or "all",
                       "points": curve(model, calib[: args.curve_photos], sizes)}
    result["load_average_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
