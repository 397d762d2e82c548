"""`gptq-bc` (GPTQ plus bias correction with int8 simulated in the loop): its behaviour pinned on a
small real model (issue 29, part 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiny(tiny_run: Path) -> tuple[object, np.ndarray]:
    """The tiny run's float model and 16 of its training photos (float32 pixels)."""
    from edgetl.export import calibration, load_run
    from edgetl.rundir import read_split

    model, meta = load_run(tiny_run)
    calib = calibration.from_split(read_split(tiny_run, "train"), meta.labels, meta.preprocessing, size=16, seed=0,
                                   source="train").as_float()
    return model, calib


def test_bias_correction_takes_the_int8_mean_shift_out_and_keeps_the_kernels(tiny: tuple[object, np.ndarray]) -> None:
    import keras

    from edgetl.export.bias_correction import bias_corrected_copy, mean_shifts
    from edgetl.export.rounding import gptq_copy

    model, calib = tiny
    before = [w.copy() for w in model.get_weights()]
    plain, corrected = gptq_copy(model, calib), bias_corrected_copy(model, calib)

    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the float model is untouched
    kernels = [(a.kernel.numpy(), b.kernel.numpy()) for a, b in zip(plain._flatten_layers(), corrected._flatten_layers())
               if isinstance(a, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    assert len(kernels) > 30 and all(np.array_equal(a, b) for a, b in kernels)  # the same int8 kernels
    shifted = mean_shifts(model, plain, calib, correct=False)
    left = mean_shifts(model, corrected, calib, correct=False)
    assert len(shifted) > 30 and shifted.keys() == left.keys()
    size = {name: float(np.mean(np.abs(shift))) for name, shift in shifted.items()}
    assert sum(size.values()) > 0  # int8 does move the means
    remaining = sum(float(np.mean(np.abs(left[name]))) for name in size) / sum(size.values())
    assert remaining < 0.3, remaining  # the corrected copy's simulated int8 means sit near float's
    pixels = calib[:4]
    np.testing.assert_allclose(corrected.predict_on_batch(pixels), model.predict_on_batch(pixels), atol=0.05)
