"""How uint8 pixels become a model's exact input tensor: normalization decided once per model.

`Classifier.quantize_input` applies the plan; the golden vectors and the Android demo check its
bits. Only numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetl.runtime.backends import TensorInfo
from edgetl.spec import PreprocessingSpec


@dataclass(frozen=True)
class InputPlan:
    """How uint8 pixels become the input tensor, decided once per model (immutable: thread-safe).

    `shift` is set when the affine map pixel -> quantized value is the identity within one
    quantization step; the pixels then go through that exact integer shift, as Coral's own
    classify.py feeds raw pixels to its uint8 models (mean=std=127.5, scale=1/128, zp=128).
    Otherwise `table` holds the exact tensor value of every (channel, pixel value): the
    normalization is a function of those two alone, so looking it up gives the same bits as
    computing it per pixel, in a tenth of the time. `table` is None when the map is the
    identity on float32 (mean 0, std 1: edgetl models normalize inside the graph).
    """

    dtype: np.dtype
    shift: int | None
    table: np.ndarray | None
    nchw: bool


def input_plan(spec: PreprocessingSpec, tensor: TensorInfo) -> InputPlan:
    """The plan for feeding `spec`'s pixels to the input `tensor`."""
    dtype = np.dtype(tensor.dtype)
    mean, std = np.asarray(spec.mean, np.float64), np.asarray(spec.std, np.float64)
    scale, zero_point = (tensor.scale, tensor.zero_point) if tensor.scale > 0 else (1.0, 0)
    shift = _identity_shift(mean, std, scale, zero_point) if dtype.kind in "iu" else None
    identity = dtype == np.float32 and not mean.any() and (std == 1.0).all()
    table = None if shift is not None or identity else _normalization_table(mean, std, scale, zero_point, dtype)
    return InputPlan(dtype, shift, table, spec.layout == "NCHW")


def _normalization_table(
    mean: np.ndarray, std: np.ndarray, scale: float, zero_point: int, dtype: np.dtype
) -> np.ndarray:
    """The input value of each (channel, pixel value), by the formulas `quantize_input` documents.

    Shape (3, 256), or (256,) when the three channels share one map (the common case).
    """
    values = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None], (256, 3))
    if dtype.kind == "f":
        table = ((values.astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        table = np.clip(
            np.rint((values.astype(np.float64) - mean) / std / scale + zero_point), info.min, info.max
        ).astype(dtype)
    return table[:, 0].copy() if (table == table[:, :1]).all() else np.ascontiguousarray(table.T)


def look_up(table: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """table[c, pixels[..., c]] for every channel c (table[pixels] for a shared map)."""
    if table.ndim == 1:
        return np.take(table, pixels)
    tensor = np.empty(pixels.shape, table.dtype)
    for channel in range(3):
        tensor[..., channel] = table[channel][pixels[..., channel]]
    return tensor


def shift_pixels(pixels: np.ndarray, shift: int, dtype: np.dtype) -> np.ndarray:
    """pixels + shift, clipped to `dtype`, exactly; the two common cases without arithmetic."""
    if dtype == np.uint8 and shift == 0:
        return pixels
    if dtype == np.int8 and shift == -128:
        # p - 128 in two's complement is p with its top bit flipped: 100x faster than clip().
        return (pixels ^ np.uint8(0x80)).view(np.int8)
    info = np.iinfo(dtype)
    return np.clip(pixels.astype(np.int16) + shift, info.min, info.max).astype(dtype)


def _identity_shift(mean: np.ndarray, std: np.ndarray, scale: float, zero_point: int) -> int | None:
    """The integer k with q(p) = p + k within one quantization step over p in [0, 255], if any."""
    slope = 1.0 / (std * scale)
    offset = zero_point - mean * slope
    shifts = np.rint(offset)
    if len(set(shifts.tolist())) != 1:
        return None
    worst = np.maximum(np.abs(offset - shifts), np.abs((slope - 1.0) * 255.0 + offset - shifts))
    return int(shifts[0]) if float(worst.max()) <= 1.0 + 1e-9 else None
