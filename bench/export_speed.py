"""`edgetl export` (all six formats, with metadata, checks and golden vectors) against a naive
script making the same six formats one after another in one process (issue 16 target: <= 0.75x).

Both sides are fresh processes (`edgetl export RUN --out DIR` and `--naive`), start-up
included, alternated over the repetitions; the median of each is kept. The naive script uses
the same routes edgetl measured as safe (STACK.md): one SavedModel for the four TFLite modes,
tf2onnx from Keras, onnxruntime static QDQ int8 on the same number of calibration images.

    python bench/export_speed.py RUN_DIR [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET = 0.75
CALIBRATION_IMAGES = 200


def naive_export(run: Path, out: Path) -> None:
    """The six formats, one after another, no metadata, checks or golden vectors."""
    import keras
    import tensorflow as tf
    import tf2onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgetl.rundir import read_split
    from edgetl.runtime.image import load_pixels
    from edgetl.spec import PreprocessingSpec

    out.mkdir(parents=True, exist_ok=True)
    model = keras.saving.load_model(run / "model.keras")
    spec = PreprocessingSpec.from_dict(json.loads((run / "preprocessing.json").read_text()))
    train = read_split(run, "train")[:CALIBRATION_IMAGES]
    calib = np.stack([load_pixels(path, spec) for path, _ in train]).astype(np.float32)
    saved = out / "saved_model"
    model.export(str(saved), verbose=False)
    for mode in ("fp32", "dynamic", "fp16", "int8"):
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if mode != "fp32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        if mode == "int8":
            converter.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(len(calib)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
        (out / f"model_{mode}.tflite").write_bytes(converter.convert())
    height, width = spec.image_size
    signature = [tf.TensorSpec((None, height, width, 3), tf.float32, name="pixels")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    (out / "model_onnx.onnx").write_bytes(proto.SerializeToString())

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(range(len(calib)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self.items, None)
            return None if i is None else {"pixels": calib[i : i + 1]}

    quant_pre_process(str(out / "model_onnx.onnx"), str(out / "prep.onnx"), skip_symbolic_shape=True)
    quantize_static(str(out / "prep.onnx"), str(out / "model_onnx-int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    if sys.argv[1:2] == ["--naive"]:
        naive_export(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    from runtime_overhead import cpu_name

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="A RUN_DIR from `edgetl train` (model.keras, splits.json).")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    times: dict[str, list[float]] = {"ours": [], "naive": []}
    cpu: dict[str, list[float]] = {"ours": [], "naive": []}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "ours": [sys.executable, "-c", "from edgetl.cli import main; main()", "export", str(args.run), "--out", f"{tmp}/ours"],
            "naive": [sys.executable, __file__, "--naive", str(args.run), f"{tmp}/naive"],
        }
        for i in range(args.repeats):
            for name in (("ours", "naive") if i % 2 == 0 else ("naive", "ours")):
                start, used = time.perf_counter(), _children_cpu_s()
                subprocess.run(commands[name], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(_children_cpu_s() - used)  # with the worker process, once reaped
        report = json.loads(Path(tmp, "ours", "export.json").read_text())
    load_after = os.getloadavg()[0]  # the machine may be shared: the ratio, one run side by side, holds better
    ours, naive = statistics.median(times["ours"]), statistics.median(times["naive"])
    print(json.dumps({
        "cpu": cpu_name(),
        "run": str(args.run),
        "repeats": args.repeats,
        "ours_s": ours,
        "naive_s": naive,
        "ratio": ours / naive,
        "cpu_s": {name: round(statistics.median(values), 1) for name, values in cpu.items()},
        "ours_ok": report["ok"],
        "ours_per_format_s": {r["format"]: r["seconds"] for r in report["results"]},
        "load_average_before_after": [round(load_before, 1), round(load_after, 1)],
        "target": TARGET,
        "meets_target": ours / naive <= TARGET and report["ok"],
    }, indent=2))


if __name__ == "__main__":
    main()
