"""Quantization recipes for the int8 formats, and `auto`, which picks one on the validation split.

| `--quantization` | onnx-int8 (onnxruntime `quantize_static`)        | tflite-int8 / edgetpu           |
|------------------|--------------------------------------------------|---------------------------------|
| `minmax`         | MinMax calibration (the default)                 | TFLite's converter (min/max)    |
| `percentile`     | Percentile calibration, 99.999th                 | as minmax: TFLite has no other  |
| `entropy`        | Entropy (KL) calibration                         | as minmax                       |
| `auto`           | each of the above within `AUTO_BUDGET_S`; keeps the best (see below)                             |

`auto` keeps the recipe whose int8 model agrees with the float model on the most validation
photos (never the test split).

Every onnx-int8 recipe is QDQ, uint8 activations, per-channel uint8 weights (see
`edgetl.export.onnx`). TFLite's converter offers full-integer PTQ with min/max calibration
only, so tflite-int8 stays that recipe whatever is asked; the recipe actually used is recorded
in each artefact's metadata (`quantization_recipe`) and in export.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

RECIPES = ("minmax", "percentile", "entropy")
CHOICES = ("default", *RECIPES, "auto")
DEFAULT = "minmax"
AUTO_BUDGET_S = 600.0
"""`auto` starts no further candidate after this many seconds; the best so far is kept."""


def onnx_calibration(recipe: str) -> dict[str, Any]:
    """`quantize_static` keyword arguments that select the recipe's calibration method."""
    from onnxruntime.quantization import CalibrationMethod

    if recipe == "percentile":
        return {"calibrate_method": CalibrationMethod.Percentile, "extra_options": {"CalibPercentile": 99.999}}
    if recipe == "entropy":
        return {"calibrate_method": CalibrationMethod.Entropy}
    return {"calibrate_method": CalibrationMethod.MinMax}


def candidates(requested: str) -> tuple[str, ...]:
    """The recipes to try for `--quantization requested`, in order."""
    if requested == "auto":
        return RECIPES
    return (DEFAULT if requested == "default" else requested,)


def pick(requested: str, build: Callable[[str], Any], disagreements: Callable[[Any], int | None],
         budget_s: float = AUTO_BUDGET_S) -> tuple[str, Any, dict[str, int]]:
    """Build each candidate recipe and keep the one with the fewest validation disagreements.

    Args:
        requested: The `--quantization` value.
        build: Makes the quantized model for one recipe name.
        disagreements: Counts its validation photos whose top-1 differs from the float model's,
            or returns None when there is no validation split (the first candidate is kept).
        budget_s: No candidate starts after this many seconds. Defaults to `AUTO_BUDGET_S`.

    Returns:
        (recipe name, its model, {tried recipe: disagreements}).
    """
    names = candidates(requested)
    start, best, scores = time.monotonic(), None, {}
    for name in names:
        if best is not None and time.monotonic() - start > budget_s:
            break
        model = build(name)
        if len(names) == 1:
            return name, model, {}
        count = disagreements(model)
        if count is None:  # nothing to compare on: the first recipe stands
            return name, model, {}
        scores[name] = count
        if best is None or count < scores[best[0]]:
            best = (name, model)
    return best[0], best[1], scores
