"""Make a small edgetl int8 TFLite model for CI checks, with the real `edgetl train` and `edgetl export`.

    python scripts/make_ci_int8_model.py OUT_DIR      # prints the path of the .tflite on stdout

Writes a synthetic photo folder (three classes of coloured, textured 48x48 PNGs, seeded, so the
model is the same every run on a given toolchain) under OUT_DIR/photos, trains the from-scratch
CNN on it for one epoch (`--strategy scratch --image-size 32`; no pretrained weights, no network),
and exports only `tflite-int8` (full integer, uint8 input and output by default, labels and preprocessing embedded). The
point is an artefact made by this project's own export path, not an accurate classifier: it runs
on any photo, and `scripts/check_aarch64.sh` compares its predictions on aarch64 with x86's.
Needs the full toolchain (`scripts/setup.sh`); takes about a minute on a CPU.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = {"red_stripes": (200, 40, 40), "green_dots": (40, 180, 60), "blue_plain": (40, 60, 200)}
PER_CLASS = 24
SIZE = 48


def write_photos(root: Path, seed: int = 0) -> Path:
    """Write PER_CLASS synthetic photos per class under root/<class>/ and return root."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for c, (name, colour) in enumerate(CLASSES.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            base = np.array(colour, dtype=np.float64) + rng.normal(0, 25, size=3)
            img = np.broadcast_to(base, (SIZE, SIZE, 3)).copy()
            if c == 0:
                period = rng.integers(4, 9)
                img[(yy + i) % period < period // 2] *= 0.4
            elif c == 1:
                img[((yy % 8) - 4) ** 2 + ((xx % 8) - 4) ** 2 < 6] = 250.0
            img += rng.normal(0, 12, size=img.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{name}_{i:02d}.png")
    return root


def edgetl_cli() -> list[str]:
    """The `edgetl` command of the interpreter running this script."""
    script = Path(sys.executable).with_name("edgetl")
    if script.exists():
        return [str(script)]
    found = shutil.which("edgetl")
    if found is None:
        sys.exit("error: the `edgetl` command is not installed; run scripts/setup.sh first")
    return [found]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="Folder to create (replaced if it exists).")
    args = parser.parse_args()
    out: Path = args.out_dir.resolve()
    if out.exists():
        shutil.rmtree(out)
    photos = write_photos(out / "photos")
    run_dir = out / "run"
    cli = edgetl_cli()
    train = [*cli, "train", str(photos), "--out", str(run_dir), "--strategy", "scratch", "--image-size", "32",
             "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--seed", "0", "--quiet"]
    export = [*cli, "export", str(run_dir), "--formats", "tflite-int8", "--calibration-size", "30", "--no-golden"]
    for cmd in (train, export):
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-4000:])
            sys.exit(f"error: `{' '.join(cmd[1:3])}` failed with exit code {result.returncode}")
    model = run_dir / "export" / "model_tflite-int8.tflite"
    if not model.is_file():
        sys.exit(f"error: `edgetl export` did not write {model}")
    print(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
