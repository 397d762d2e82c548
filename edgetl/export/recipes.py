"""Quantization recipes for the int8 formats, and `auto`, which picks one on the validation split.

| `--quantization` | weights (every int8 format)     | onnx-int8 activations | tflite-int8 / edgetpu activations |
|------------------|---------------------------------|-----------------------|-----------------------------------|
| `gptq` (default) | error-compensating rounding     | MinMax                | TFLite's converter (min/max)      |
| `gptq-bc`        | gptq, then bias correction      | MinMax                | TFLite's converter (min/max)      |
| `minmax`         | nearest (what converters do)    | MinMax                | TFLite's converter (min/max)      |
| `percentile`     | nearest                         | Percentile, 99.999th  | as minmax: TFLite has no other    |
| `entropy`        | nearest                         | Entropy (KL)          | as minmax                         |
| `auto`           | each above but gptq-bc, within           `AUTO_BUDGET_S`; keeps the best (see below)   |

`gptq` converts a copy of the model whose convolution kernels are rounded onto the converters'
own int8 grid so that each layer's output on the calibration photos changes least, and whose
input normalization lands on the int8 grid (`edgetl.export.rounding`). Measured with
`bench/int8_vs_naive.py` on held-out photos (2-core AMD EPYC), photos whose top-1 differs from
float: MobileNetV2-1.0-224 naive 59, gptq tflite-int8 21 / onnx-int8 24; MobileNetV2-0.5 fine-tuned
10, 4 / 4; for about 17 CPU-s of rounding at 224 px. `minmax` is the plain converters.

`gptq-bc` (`edgetl.export.bias_correction`) was measured on three tasks and flipped as many photos
as `gptq` or more (docs/quantization.md); it stays an option, and `auto` does not try it. AdaRound
was measured too and removed: on the first depthwise layer of the tests' model its output error was
25% above nearest rounding's.

`auto` keeps the recipe whose int8 model agrees with the float model on the most validation
photos (never the test split); tflite-int8 and edgetpu compare `gptq` with `minmax` (their
activations calibrate the same way under every recipe).

Every onnx-int8 recipe is QDQ, uint8 activations, per-channel uint8 weights (see
`edgetl.export.onnx`). The recipe actually used is recorded in each artefact's metadata
(`quantization_recipe`) and in export.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

RECIPES = ("gptq", "gptq-bc", "minmax", "percentile", "entropy")
CHOICES = ("default", *RECIPES, "auto")
DEFAULT = "gptq"
ROUNDS_WEIGHTS = frozenset({"gptq", "gptq-bc"})
"""Recipes that convert a copy with re-rounded weights (`rounded_copy`); `auto` tries only the default one."""
TFLITE_RECIPES = ("gptq", "gptq-bc", "minmax")
"""What tflite-int8 distinguishes: its converter calibrates activations by min/max only."""
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


def candidates(requested: str, offered: tuple[str, ...] = RECIPES) -> tuple[str, ...]:
    """The recipes to try for `--quantization requested`, in order, among those a format `offered`
    (one it does not offer runs as `minmax`)."""
    if requested == "auto":  # one rounded copy per export (`ExportSource.int8_source`): the default's
        return tuple(name for name in offered if name not in ROUNDS_WEIGHTS or name == DEFAULT)
    name = DEFAULT if requested == "default" else requested
    return (name if name in offered else "minmax",)


def rounded_copy(recipe: str, model: Any, calib: Any) -> Any:
    """The copy of `model` that `recipe` (one of `ROUNDS_WEIGHTS`) converts, rounded against `calib`.
    Not thread-safe (it builds Keras models)."""
    if recipe == "gptq-bc":
        from edgetl.export import bias_correction

        return bias_correction.bias_corrected_copy(model, calib)
    from edgetl.export import rounding

    return rounding.gptq_copy(model, calib)


def rounds_weights(requested: str) -> bool:
    """Whether `--quantization requested` may convert a copy with rounded kernels (`ExportSource.int8_source`)."""
    return any(name in ROUNDS_WEIGHTS for name in candidates(requested))


def pick(requested: str, build: Callable[[str], Any], disagreements: Callable[[Any], int | None],
         budget_s: float = AUTO_BUDGET_S, offered: tuple[str, ...] = RECIPES) -> tuple[str, Any, dict[str, int]]:
    """Build each candidate recipe and keep the one with the fewest validation disagreements.

    Args:
        requested: The `--quantization` value.
        build: Makes the quantized model for one recipe name.
        disagreements: Counts its validation photos whose top-1 differs from the float model's,
            or returns None when there is no validation split (the first candidate is kept).
        budget_s: No candidate starts after this many seconds. Defaults to `AUTO_BUDGET_S`.
        offered: The recipes the format distinguishes. Defaults to `RECIPES`.

    Returns:
        (recipe name, its model, {tried recipe: disagreements}).
    """
    names = candidates(requested, offered)
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
