"""Shared fixtures: real files, real models, no mocks of what edgetl ships.

`../shared` (beside the checkout; always present in CI) holds real photos, ImageNet weights and
third-party models. Tests that need it skip with a clear reason where it is absent.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGETL_SHARED", REPO.parent / "shared"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _offline_keras_home() -> Path:
    """A private KERAS_HOME whose models/ holds Keras' own ImageNet files from ../shared.

    Keras reads KERAS_HOME once, at import, so this runs before any test imports it; then
    `weights="imagenet"` takes the real download code path and finds the files cached.
    """
    home = Path(tempfile.mkdtemp(prefix="edgetl-keras-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    (home / "models").mkdir()
    for weights in (SHARED / "weights" / "keras").glob("*.h5"):
        shutil.copy(weights, home / "models" / weights.name)
    return home


KERAS_HOME = _offline_keras_home()
os.environ["KERAS_HOME"] = str(KERAS_HOME)


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


@pytest.fixture(scope="session")
def tiny_run(colour_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real RUN_DIR from `edgetl.train`: MobileNetV2-0.35 ImageNet features at 64 px, 3 colours.

    Real pretrained weights (Keras' own file, through `weights="imagenet"`) make it a confident
    classifier, so that export parity measured on it means something.
    """
    from edgetl.backbones import BackboneOptions
    from edgetl.train import TrainOptions, train

    shared_path("weights", "keras", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5")
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(
        colour_photos,
        out,
        backbone=BackboneOptions(name="mobilenet_v2", alpha=0.35, image_size=64, weights="imagenet"),
        options=TrainOptions(epochs=8, batch_size=8, learning_rate=1e-2, cache_dir=tmp_path_factory.mktemp("cache")),
        verbose=0,
    )
    return out
