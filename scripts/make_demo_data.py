"""Write `edgetl/demo_data/digits.npz`, the offline data set of `edgetl demo`, from scikit-learn.

The UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin, C. Kaynak; CC BY 4.0)
ships inside scikit-learn as `sklearn.datasets.load_digits()`: 1,797 8x8 images with values
0..16. They are stored as uint8 pixels scaled to 0..255 (`round(v * 255 / 16)`) with their
labels, compressed. scikit-learn is needed by this script only, never by edgetl:

    .venv/bin/pip install scikit-learn && .venv/bin/python scripts/make_demo_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "edgetl" / "demo_data" / "digits.npz"


def main() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    np.savez_compressed(OUT, images=images, labels=labels)
    print(f"{OUT}: {len(labels)} images {images.shape[1:]}, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
