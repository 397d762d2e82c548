"""The calibration set: stratified draw and the warnings that say what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgetl.export import calibration
from edgetl.spec import PreprocessingSpec


def test_stratified_sample_keeps_class_shares_and_is_seeded() -> None:
    items = [("cat", f"cat/{i}.jpg") for i in range(300)] + [("dog", f"dog/{i}.jpg") for i in range(100)]
    chosen = calibration.stratified_sample(items, 200, seed=0)
    counts = {c: sum(1 for k, _ in chosen if k == c) for c in ("cat", "dog")}
    assert counts == {"cat": 150, "dog": 50}
    assert chosen == calibration.stratified_sample(items, 200, seed=0)
    rare = items + [("fox", "fox/0.jpg")]
    assert any(c == "fox" for c, _ in calibration.stratified_sample(rare, 50, seed=1))


def _pixels(n: int, value: float = 120.0) -> np.ndarray:
    return np.random.default_rng(0).normal(value, 50, (n, 8, 8, 3)).clip(0, 255).astype(np.float32)


def test_checks_warn_with_what_to_do() -> None:
    labels = ("cat", "dog", "fox")
    with pytest.warns(UserWarning) as record:
        found = calibration.check_calibration(_pixels(30), {"cat": 25, "dog": 5, "fox": 0}, labels=labels,
                                              requested=200, reference=None)
    assert len(record) == len(found) == 3
    assert "Only 30 calibration images" in found[0]
    assert "fox" in found[1] and "Add images" in found[1]
    assert "imbalanced" in found[2]
    with pytest.warns(UserWarning, match=r"\[0, 255\]"):
        calibration.check_calibration(_pixels(200) / 255.0, None, labels=None, requested=200, reference=None)
    with pytest.warns(UserWarning, match="unlike the training data"):
        calibration.check_calibration(_pixels(200, value=20.0), None, labels=None, requested=200,
                                      reference=calibration.IMAGENET_STATS)


def test_a_good_set_gives_no_warning(recwarn: pytest.WarningsRecorder) -> None:
    found = calibration.check_calibration(_pixels(150), {"a": 75, "b": 75}, labels=("a", "b"), requested=150,
                                          reference={"mean": (120.0,) * 3, "std": (50.0,) * 3})
    assert found == [] and len(recwarn) == 0


def test_from_dir_reads_class_folders(colour_photos: Path) -> None:
    spec = PreprocessingSpec(image_size=(32, 32))
    with pytest.warns(UserWarning, match="Only 9 calibration images"):
        calib = calibration.from_dir(colour_photos, spec, size=9, seed=0, labels=("red", "green", "blue"))
    assert calib.pixels.shape == (9, 32, 32, 3) and calib.pixels.dtype == np.uint8
    assert calib.class_counts == {"red": 3, "green": 3, "blue": 3}
    with pytest.raises(Exception, match="Calibration folder not found"):
        calibration.from_dir(colour_photos / "nope", spec, size=9, seed=0)
