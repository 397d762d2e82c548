"""Photos per second over a folder: edgetl's runner against a hand-written decode-then-invoke loop (issue 16: >= 1.4x).

Side by side in one run, repetitions interleaved (ours, naive, naive, ours, ...) and the median
kept, so load from other users hits both alike:
  - in-process: `Classifier.classify(photos)` against a loop that decodes each photo with
    Pillow, then feeds a bare interpreter (set_tensor / invoke / get_tensor);
  - from the command line: `python -m edgetl.runtime MODEL photos...` against the same loop run
    as a script (`--hand-loop`, which imports no edgetl), start-up included on both sides.
Prints one JSON object; each `speedup` is naive seconds over ours.

    python bench/folder_throughput.py --model /tmp/mnv2/model_tflite-int8.tflite   # built there first if missing
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

TARGET = 1.4


class HandLoop:
    """What a user writes: decode, resize, set_tensor (uint8 pixels, or shifted to int8) / invoke / get_tensor, one by one."""

    def __init__(self, model: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(model))
        self.interpreter.allocate_tensors()
        self.input, self.output = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]

    def __call__(self, photos: list[Path]) -> list[int]:
        height, width = self.input["shape"][1:3]
        top1 = []
        for path in photos:
            with Image.open(path) as img:
                img = ImageOps.exif_transpose(img).convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.uint8)[None]
            if self.input["dtype"] == np.int8:  # an int8-input export (--io-dtype int8): zero point -128
                pixels = (pixels ^ np.uint8(0x80)).view(np.int8)
            self.interpreter.set_tensor(self.input["index"], pixels)
            self.interpreter.invoke()
            top1.append(int(self.interpreter.get_tensor(self.output["index"])[0].argmax()))
        return top1


def median_pair(ours: Callable[[], object], naive: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of each, alternating which goes first."""
    times: dict[str, list[float]] = {"ours": [], "naive": []}
    for i in range(repeats):
        order = [("ours", ours), ("naive", naive)] if i % 2 == 0 else [("naive", naive), ("ours", ours)]
        for name, fn in order:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["ours"]), statistics.median(times["naive"])


def main() -> None:
    if sys.argv[1:2] == ["--hand-loop"]:  # the naive side from the command line: no edgetl imported
        for photo, top1 in zip(sys.argv[3:], HandLoop(Path(sys.argv[2]))([Path(p) for p in sys.argv[3:]])):
            print(photo, top1)
        return
    from runtime_overhead import PHOTOS, SHARED, build_int8_model, cpu_name

    from edgetl.runtime import Classifier

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="An int8 .tflite (built there first if missing).")
    parser.add_argument("--photos", type=int, default=153, help="How many cats_vs_dogs JPEGs to classify.")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    photos = sorted(SHARED.joinpath("data", "cats_vs_dogs").rglob("*.jpg"))[: args.photos]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None or not model.exists():
            built = build_int8_model(Path(tmp), sorted(PHOTOS.glob("*/*.jpg"))[::10][:32])
            model = model or built
            if model != built:
                model.parent.mkdir(parents=True, exist_ok=True)
                built.replace(model)
                built.with_suffix(".json").replace(model.with_suffix(".json"))
        clf = Classifier.from_file(model)
        naive = HandLoop(model)
        same = [p[0].index for p in clf.classify(photos, top_k=1)] == naive(photos)
        ours_s, naive_s = median_pair(lambda: clf.classify(photos), lambda: naive(photos), args.repeats)
        files = [str(p) for p in photos]
        cli = [sys.executable, "-m", "edgetl.runtime", str(model), *files]
        hand = [sys.executable, __file__, "--hand-loop", str(model), *files]
        cli_s, hand_s = median_pair(lambda: _quiet(cli), lambda: _quiet(hand), args.repeats)
    in_process, from_cli = naive_s / ours_s, hand_s / cli_s
    print(json.dumps({
        "cpu": cpu_name(),
        "model": str(model),
        "photos": len(photos),
        "repeats": args.repeats,
        "same_top1": same,
        "in_process": {"ours_photos_per_s": len(photos) / ours_s, "naive_photos_per_s": len(photos) / naive_s,
                       "speedup": in_process},
        "cli": {"ours_photos_per_s": len(photos) / cli_s, "naive_photos_per_s": len(photos) / hand_s,
                "speedup": from_cli},
        "target": TARGET,
        "meets_target": min(in_process, from_cli) >= TARGET,
    }, indent=2))


def _quiet(command: list[str]) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
