"""Shared fixtures: real files, real models, no mocks of what edgetl ships.

`../shared` (beside the checkout; always present in CI) holds real photos, ImageNet weights and
third-party models. Tests that need it skip with a clear reason where it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGETL_SHARED", REPO.parent / "shared"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test with the reason."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs ../shared/{'/'.join(parts)} (real data kept beside the checkout; CI has it)")
    return path


def write_solid_photos(root: Path, colours: dict[str, tuple[int, int, int]], per_class: int, size: int = 64) -> Path:
    """Write small noisy solid-colour photos, `root/<class>/<i>.png`."""
    rng = np.random.default_rng(0)
    for name, rgb in colours.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-20, 21, size=(size, size, 3))
            pixels = np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def colour_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three easy classes (red, green, blue), 12 photos each: the fast end-to-end path."""
    return write_solid_photos(
        tmp_path_factory.mktemp("colours"),
        {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)},
        per_class=12,
    )
