"""The `adaround` recipe's copy: convolution kernels rounded up or down by AdaRound instead of GPTQ.

AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization") keeps
every weight on the floor or the ceiling of its grid step and learns which, per layer, by gradient
descent on the layer's output error plus a regularizer that pushes each soft choice to 0 or 1
(annealed from a flat to a sharp penalty). GPTQ solves the same per-layer problem greedily, one
column at a time, and may move a weight further than one step. Both read the layer's inputs only
through H = XᵀX, so this module reuses `edgetl.export.rounding`'s recorded H (one pass over the
calibration photos), its input-grid alignment, and its grid: per output channel, symmetric,
max|w| / 127, the peak kept, so the converters store exactly these integers.

The output error of output channel r, in units of its grid step, is u H u^T with u = q - w / scale
and H normalized to a unit mean diagonal, so that one `REGULARIZATION` weight suits every layer.

Only the int8 exporters import this module (it imports TensorFlow and Keras).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import keras
import numpy as np
from threadpoolctl import threadpool_limits

from edgetl.export import rounding

logger = logging.getLogger("edgetl.export")

ITERATIONS = 300
"""Adam steps per layer (AIMET's default is 10,000, out of this recipe's time; the last 80% anneal the regularizer)."""
WARMUP = 0.2
"""Share of the steps with no regularizer: the soft rounding first just lowers the output error."""
REGULARIZATION = 0.01
"""Weight of the push to 0 or 1 against the output error in grid steps² (AdaRound's and AIMET's λ)."""
BETA = (20.0, 2.0)
"""The regularizer's exponent, annealed from flat (every soft value may move) to sharp."""
LEARNING_RATE = 0.01
ZETA, GAMMA = 1.1, -0.1
"""The rectified sigmoid's stretch: h = clip(sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1) reaches 0 and 1."""


def adaround_copy(model: Any, calib: np.ndarray) -> Any:
    """A copy of `model` whose convolution kernels are AdaRounded onto the int8 grid against `calib`
    (float32 pixels, N x H x W x 3), and whose input normalization lands on the int8 grid.
    Not thread-safe: it builds Keras models and sets the process's BLAS threads."""
    started = time.perf_counter()
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    first = rounding._first_convolution(copy)
    hessians = rounding._input_hessians(copy, np.asarray(calib, dtype=np.float32))
    with threadpool_limits(1, user_api="blas"):
        for layer, hessian in hessians.items():
            layer.kernel.assign(_rounded_kernel(layer.kernel.numpy(), hessian).astype(np.float32))
    logger.info("int8 weights: %d convolution kernels AdaRounded in %.0f s", len(hessians),
                time.perf_counter() - started)
    return rounding._align_input_grid(copy, *first) if first is not None else copy


def _rounded_kernel(kernel: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    """`kernel` (kh, kw, in, out) or depthwise (kh, kw, channels, multiplier) AdaRounded per output channel."""
    if hessian.ndim == 3:  # depthwise: one (9, 9) H per channel
        kh, kw, channels, multiplier = kernel.shape
        rows = kernel.reshape(kh * kw, channels * multiplier).T
        return round_rows(rows, np.repeat(hessian, multiplier, axis=0)).T.reshape(kernel.shape)
    rows = kernel.reshape(-1, kernel.shape[-1]).T
    return round_rows(rows, hessian).T.reshape(kernel.shape)


def round_rows(weights: np.ndarray, hessian: np.ndarray, iterations: int = ITERATIONS) -> np.ndarray:
    """Each row of `weights` (one output channel) rounded down or up on its own symmetric int8 grid.
    Thread-safe (numpy on its own arrays).

    Args:
        weights: (rows, d), one row per output channel.
        hessian: (d, d) shared by every row, or (rows, d, d).
        iterations: Adam steps. Defaults to `ITERATIONS`.

    Returns:
        (rows, d) float64 values `q * scale` with integers q in [-127, 127], scale = max|row| / 127,
        each row's largest weight exactly +-127 steps.
    """
    w = np.asarray(weights, dtype=np.float64)
    scale = np.abs(w).max(axis=1) / rounding.LEVELS
    scale[scale == 0] = 1.0
    target = w / scale[:, None]
    floor = np.floor(target)
    h_bar = _normalized(hessian)
    v = _initial_logits(target - floor)
    moments = (np.zeros_like(v), np.zeros_like(v))
    for step in range(iterations):
        v = _adam(v, _gradient(v, floor - target, h_bar, step, iterations), moments, step)
    q = floor + (_soft(v) >= 0.5)
    peak = np.abs(w).argmax(axis=1)
    q[np.arange(len(w)), peak] = np.round(target[np.arange(len(w)), peak])
    return np.clip(q, -rounding.LEVELS, rounding.LEVELS) * scale[:, None]


def output_error(weights: np.ndarray, rounded: np.ndarray, hessian: np.ndarray) -> float:
    """Σ_r (w_r - q_r) H (w_r - q_r)ᵀ: the layer's squared output error on the inputs H came from. Thread-safe."""
    delta = np.asarray(weights, dtype=np.float64) - rounded
    if hessian.ndim == 2:
        return float(np.einsum("rd,de,re->", delta, hessian, delta))
    return float(np.einsum("rd,rde,re->", delta, hessian, delta))


def _normalized(hessian: np.ndarray) -> np.ndarray:
    h = np.asarray(hessian, dtype=np.float64)
    diagonal = np.einsum("...ii->...i", h)
    return h / max(float(diagonal.mean()), 1e-12)


def _initial_logits(rest: np.ndarray) -> np.ndarray:
    """v with soft(v) = rest: the soft rounding starts at the float weights."""
    p = np.clip((rest - GAMMA) / (ZETA - GAMMA), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _soft(v: np.ndarray) -> np.ndarray:
    return np.clip(1 / (1 + np.exp(-v)) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _gradient(v: np.ndarray, offset: np.ndarray, h_bar: np.ndarray, step: int, iterations: int) -> np.ndarray:
    """d/dv of the mean output error in steps² (u = offset + soft(v)) plus the annealed regularizer."""
    sigmoid = 1 / (1 + np.exp(-v))
    h = sigmoid * (ZETA - GAMMA) + GAMMA
    u = offset + np.clip(h, 0.0, 1.0)
    grad_h = 2 * (u @ h_bar if h_bar.ndim == 2 else np.einsum("rd,rde->re", u, h_bar)) / len(v)
    warm = int(WARMUP * iterations)
    if step >= warm:
        progress = (step - warm) / max(iterations - warm, 1)
        beta = BETA[1] + 0.5 * (BETA[0] - BETA[1]) * (1 + np.cos(np.pi * progress))
        centred = 2 * np.clip(h, 0.0, 1.0) - 1
        grad_h += REGULARIZATION / len(v) * -beta * np.abs(centred) ** (beta - 1) * np.sign(centred) * 2
    inside = (h > 0) & (h < 1)
    return grad_h * inside * sigmoid * (1 - sigmoid) * (ZETA - GAMMA)


def _adam(v: np.ndarray, grad: np.ndarray, moments: tuple[np.ndarray, np.ndarray], step: int) -> np.ndarray:
    first, second = moments
    first *= 0.9
    first += 0.1 * grad
    second *= 0.999
    second += 0.001 * grad**2
    corrected = first / (1 - 0.9 ** (step + 1)), second / (1 - 0.999 ** (step + 1))
    return v - LEARNING_RATE * corrected[0] / (np.sqrt(corrected[1]) + 1e-8)
