"""The `gptq` recipe's copy of the model: kernels rounded onto the int8 grid so that each layer's
output changes least (GPTQ), and the input normalization moved onto the int8 grid.

A converter rounds every weight to the nearest step of its channel's int8 grid, each error on
its own. Measured on MobileNetV2-1.0-224 (cats/dogs head, 400 photos near the decision boundary,
int8 rounding simulated one part at a time): rounding the weights alone moved the log-odds by
0.25 (std), all activations together by 0.12, and one layer, the first depthwise convolution,
by 0.17 on its own. Its 3x3 kernels nearly cancel on flat image regions, and the batch norm
after it amplifies what is left, so nine rounding errors that do not cancel shift whole channels.

Here each Conv2D and DepthwiseConv2D kernel is rounded one input position at a time, and each
rounding error is spread over the positions not yet rounded so that the layer's output on the
calibration photos changes least: with X the layer's input patches and H = XᵀX, the update is
that of GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers", from Optimal Brain Quantization). Same model, same activations: only
which way each weight rounds, and by how much its not-yet-rounded neighbours move, changes.

The grid is the converters' own: per output channel, symmetric, scale max|w| / 127. Each
channel's largest weight keeps its value, so the converter derives the same scale from the
new kernel (before or after folding batch norm into it) and stores exactly these integers.
TFLite's converter does so by itself; onnx-int8 pins the same grid (`edgetl.export.onnx`).
Dense layers keep nearest rounding (a classifier head's share was at the rounding floor).

The same measurement put the rounding of the normalized input next (`_align_input_grid`).
Measured together with `bench/int8_vs_naive.py`: see the README and `edgetl.export.recipes`.

Speed (issue 25): every layer's H comes from one recorded pass over the calibration photos
(`_input_hessians`). cProfile of 200 photos at 224 px on a 2-core AMD EPYC put 60% of the time in
the depthwise layers' patch extraction and einsum and most of the rest in Keras' Python per layer
call; sampled patches (`PATCHES_PER_PHOTO`), one batched matmul per depthwise layer and passes of
32 photos brought it to 17 CPU-s (`bench/rounding_speed.py`).

Only the int8 exporters import this module (it imports TensorFlow and Keras).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from threadpoolctl import threadpool_limits

logger = logging.getLogger("edgetl.export")

DAMPING = 0.01
"""Added to H's diagonal, as a fraction of its mean: keeps H⁻¹ stable for inputs that barely vary."""
BATCH_PIXELS = 32 * 224 * 224
"""Calibration photos per recording pass: 32 at 224 px, fewer for larger inputs. Each layer call
costs Keras Python time: 200 photos took 29 CPU-s in passes of 8, 17 in passes of 32. The sampled
patches keep the memory to the activations (about 150 MB for the largest)."""
LEVELS = 127
"""Symmetric int8 weights use -127..127 (TFLite's and onnxruntime's narrow range)."""
PATCHES_PER_PHOTO = 784
"""Most input patches per photo that each layer's H takes, drawn at random (a 28 x 28 map and smaller
give all theirs). The first layers have up to 12,544 per photo, and computing all of them was most
of the rounding's time. H had converged (bench/rounding_speed.py shows the curve): on
MobileNetV2-1.0-224 the int8 models disagreed with float on as many of 1,188 photos as with every
patch (4 and 2), where 196 moved onnx-int8 from 2 to 5 (bench/results_rounding_parity_*.json)."""
BLOCK = 128
"""Columns rounded one at a time before the later columns take their errors in one matmul (GPTQ's
lazy batch update: the same arithmetic, regrouped)."""


def gptq_copy(model: Any, calib: np.ndarray) -> Any:
    """What the `gptq` recipe converts: a copy of `model` whose convolution kernels lie on the int8
    grid, rounded to keep each layer's output on `calib` (float32 pixels, N x H x W x 3) closest to
    the float model's, and whose input normalization lands on the int8 grid (`_align_input_grid`).
    Not thread-safe: it builds Keras models (global naming state) and sets the process's BLAS threads."""
    started = time.perf_counter()
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    first = _first_convolution(copy)  # before recording adds consumers to the layers
    hessians = _input_hessians(copy, np.asarray(calib, dtype=np.float32))
    # One BLAS thread: with the export's worker process converting on the other core, OpenBLAS's
    # second thread waited its turn and rounding a 960-input layer took 11x as long (8.4 s, not 0.8 s).
    with threadpool_limits(1, user_api="blas"):
        for layer, hessian in hessians.items():
            layer.kernel.assign(_rounded_kernel(layer, hessian).astype(np.float32))
    logger.info("int8 weights: %d convolution kernels rounded against %d calibration photos in %.0f s",
                len(hessians), len(calib), time.perf_counter() - started)
    return _align_input_grid(copy, *first) if first is not None else copy


def _first_convolution(model: Any) -> tuple[Any, Any, Any] | None:
    """(normalization x / 127.5 - 1, the linear convolution that alone reads it, the batch norm that
    alone reads that convolution or None when it has a bias instead), or None for other models."""
    norm = next((layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Rescaling)
                 and np.ndim(layer.scale) == 0 and np.ndim(layer.offset) == 0  # not per channel
                 and np.isclose(float(layer.scale), 1 / 127.5) and float(layer.offset) == -1.0), None)
    first = _sole_consumer(norm) if norm is not None else None
    if isinstance(first, keras.Model):  # the backbone: its first layer after the input
        first = _sole_consumer(first.layers[0])
    if not isinstance(first, keras.layers.Conv2D) or first.activation is not keras.activations.linear:
        return None  # a shift inside an activation cannot be taken back out after it
    after = _sole_consumer(first)
    if isinstance(after, keras.layers.BatchNormalization):
        return norm, first, after
    return (norm, first, None) if first.use_bias else None


def _align_input_grid(model: Any, norm: Any, conv: Any, batch_norm: Any | None) -> Any:
    """`model` computing (p - 127) / 127.5 where it computed p / 127.5 - 1, the same function but
    at the convolution's padded border.

    The normalized pixels (p - 127.5) / 127.5 fall half-way between the steps of any int8 grid
    that holds 0 exactly, which the converters require: every pixel is then rounded by half a
    level (measured alone: 8 of 1,188 photos flipped on MobileNetV2-1.0-224). (p - 127) / 127.5
    is on the grid; the constant it adds, 1/255 on every input, comes back out of the first
    convolution's batch-norm mean (or bias). The copy shares its layers with `model`.
    """
    shift = 0.5 * float(norm.scale) * np.sum(conv.kernel.numpy(), axis=(0, 1, 2))
    if batch_norm is None:
        conv.bias.assign(conv.bias.numpy() - shift)
    else:
        batch_norm.moving_mean.assign(batch_norm.moving_mean.numpy() + shift)
    return _grid_aligned(model, norm)


def _grid_aligned(model: Any, norm: Any) -> Any:
    """`model` with `norm` replaced by `_GridAlignedRescaling` (the copy shares its other layers)."""
    return keras.models.clone_model(
        model, clone_function=lambda layer: _GridAlignedRescaling(float(norm.scale)) if layer is norm else layer)


def copy_with_weights(model: Any, weights: list[np.ndarray]) -> Any:
    """The `gptq_copy` of `model` again, from that copy's `get_weights()` and without the photos:
    the export's worker process makes the copy's SavedModel this way while the main process,
    which rounded it, converts ONNX. Not thread-safe (it builds Keras models)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(weights)
    first = _first_convolution(copy)
    return _grid_aligned(copy, first[0]) if first is not None else copy


def _sole_consumer(layer: Any) -> Any:
    consumers = {id(node.operation): node.operation for node in layer._outbound_nodes}
    return next(iter(consumers.values())) if len(consumers) == 1 else None


class _GridAlignedRescaling(keras.layers.Layer):
    """(p - 127) * scale: `Rescaling(scale, offset=-1)` with scale = 1/127.5, moved by half a pixel level."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def call(self, x: Any) -> Any:
        return (x - 127.0) * self.scale


def has_roundable_layers(model: Any) -> bool:
    """Whether `model` has a Keras convolution `gptq_copy` rounds (a `TFSMLayer`'s are not Keras layers)."""
    return any(_is_rounded(layer) for layer in model._flatten_layers())


def _is_rounded(layer: Any) -> bool:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return False
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return True
    return type(layer) is keras.layers.Conv2D and layer.groups == 1


def _input_hessians(model: Any, calib: np.ndarray) -> dict[Any, np.ndarray]:
    """H = XᵀX of every rounded layer's input patches: (d, d), or (channels, 9, 9) for depthwise.

    All of them from one recorded pass over `calib`, summed in float32 on TensorFlow's side and
    handed to numpy (float64) once at the end."""
    sums: dict[Any, Any] = {}
    rng = np.random.default_rng(0)  # the same patches on every export of the same model and photos

    def add(layer: Any, x: Any) -> None:
        h = _patch_hessian(layer, x, rng)
        sums[layer] = sums[layer] + h if layer in sums else h

    def record(layer: Any, *args: Any, **kwargs: Any) -> Any:
        return _Recorder(layer, add)(*args, **kwargs) if _is_rounded(layer) else layer(*args, **kwargs)

    recording = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=record,
                                         recursive=True)
    batch = max(1, BATCH_PIXELS // (calib.shape[1] * calib.shape[2]))
    for start in range(0, len(calib), batch):
        recording(calib[start : start + batch], training=False)
    return {layer: h.numpy().astype(np.float64) for layer, h in sums.items()}


class _Recorder(keras.layers.Layer):
    """Calls `layer`, first handing its input to `add(layer, input)` (eager calls only, not the
    symbolic one that builds the model)."""

    def __init__(self, layer: Any, add: Callable[[Any, Any], None]) -> None:
        super().__init__()
        self.layer, self.add = layer, add

    def call(self, x: Any) -> Any:
        if tf.executing_eagerly():
            self.add(self.layer, x)
        return self.layer(x)

    def compute_output_spec(self, x: Any) -> Any:
        return self.layer.compute_output_spec(x)


def _patch_hessian(layer: Any, x: Any, rng: np.random.Generator) -> Any:
    """XᵀX of one batch's input patches to `layer` (at most `PATCHES_PER_PHOTO` per photo), float32.

    Depthwise: one 9 x 9 XᵀX per channel, as a batched matmul over channels-first patches.
    TensorFlow's einsum over channels-last patches ("nkc,nlc->ckl") took 4x as long."""
    patches = _sampled_patches(layer, tf.cast(x, tf.float32), rng)  # a mixed-precision model computes in 16 bits
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        channels_first = tf.transpose(patches, (2, 1, 0))
        return tf.matmul(channels_first, channels_first, transpose_b=True)
    rows = tf.reshape(patches, (len(patches), -1))  # (kh, kw, in) flattened, the kernel's row order
    return tf.matmul(rows, rows, transpose_a=True)


def _sampled_patches(layer: Any, x: Any, rng: np.random.Generator) -> Any:
    """(photos x patches, kh * kw, channels): the inputs `layer` reads at up to `PATCHES_PER_PHOTO`
    of its output positions per photo, drawn by `rng` (every position of a smaller map), exactly
    the values `tf.image.extract_patches` gives there."""
    n, height, width, channels = x.shape
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if layer.padding == "same":
        out_h, out_w = -(-height // sh), -(-width // sw)
        pad_h, pad_w = max((out_h - 1) * sh + span_h - height, 0), max((out_w - 1) * sw + span_w - width, 0)
        x = tf.pad(x, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])
    else:
        out_h, out_w = (height - span_h) // sh + 1, (width - span_w) // sw + 1
    positions = out_h * out_w
    if positions <= PATCHES_PER_PHOTO:
        chosen = np.broadcast_to(np.arange(positions), (n, positions))
    else:
        chosen = np.stack([rng.choice(positions, PATCHES_PER_PHOTO, replace=False) for _ in range(n)])
    padded_h, padded_w = x.shape[1], x.shape[2]
    corners = (np.arange(n)[:, None] * padded_h + chosen // out_w * sh) * padded_w + chosen % out_w * sw
    offsets = (np.arange(kh)[:, None] * dh * padded_w + np.arange(kw) * dw).ravel()
    return tf.gather(tf.reshape(x, (-1, channels)), corners.reshape(-1, 1) + offsets)


def _rounded_kernel(layer: Any, hessian: np.ndarray) -> np.ndarray:
    kernel = layer.kernel.numpy()
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # (kh, kw, channels, multiplier)
        kh, kw, channels, multiplier = kernel.shape
        rows = kernel.reshape(kh * kw, channels * multiplier).T
        return round_rows(rows, np.repeat(hessian, multiplier, axis=0)).T.reshape(kernel.shape)
    rows = kernel.reshape(-1, kernel.shape[-1]).T  # one row per output channel
    return round_rows(rows, hessian).T.reshape(kernel.shape)


def round_rows(weights: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    """Each row of `weights` (one output channel) on its own symmetric int8 grid, GPTQ-rounded.

    Args:
        weights: (rows, d), one row per output channel.
        hessian: (d, d) shared by every row, or (rows, d, d).

    Returns:
        (rows, d) float64 values `q * scale` with integers q in [-127, 127], scale = max|row| / 127.
    """
    w = np.array(weights, dtype=np.float64)
    rows, d = w.shape
    scale = np.abs(w).max(axis=1) / LEVELS
    scale[scale == 0] = 1.0
    peak = np.abs(w).argmax(axis=1)
    peak_value = np.round(w[np.arange(rows), peak] / scale)  # exactly +-127: the converter's scale stays
    upper = _upper_inverse_cholesky(hessian if hessian.ndim == 3 else hessian[None])
    q = np.empty_like(w)
    for start in range(0, d, BLOCK):
        end = min(start + BLOCK, d)
        errors = _round_block(w, q, scale, upper, start, end)
        later = upper[:, start:end, end:]
        w[:, end:] -= errors @ later[0] if len(later) == 1 else np.einsum("rb,rbd->rd", errors, later)
    q[np.arange(rows), peak] = peak_value
    return q * scale[:, None]


def _round_block(w: np.ndarray, q: np.ndarray, scale: np.ndarray, upper: np.ndarray, start: int,
                 end: int) -> np.ndarray:
    """Round columns start..end of `w` into `q` one by one, each error spread over the block's
    columns not yet rounded; returns the errors (rows, end - start) for the columns after it."""
    errors = np.empty((len(w), end - start))
    for i in range(start, end):
        q[:, i] = np.clip(np.round(w[:, i] / scale), -LEVELS, LEVELS)
        errors[:, i - start] = (w[:, i] - q[:, i] * scale) / upper[:, i, i]
        w[:, i + 1 : end] -= errors[:, i - start, None] * upper[:, i, i + 1 : end]
    return errors


def _upper_inverse_cholesky(hessian: np.ndarray) -> np.ndarray:
    """U with UᵀU = (H + damping)⁻¹, batched; inputs that never vary (dead channels) get H_ii = 1."""
    h = np.array(hessian, dtype=np.float64)
    d = h.shape[-1]
    diagonal = np.einsum("bii->bi", h)
    h += (DAMPING * diagonal.mean(axis=1) + 1e-12)[:, None, None] * np.eye(d)
    dead = np.argwhere(diagonal <= 1e-12 * (1.0 + np.abs(diagonal).max()))
    h[dead[:, 0], dead[:, 1], dead[:, 1]] = 1.0
    return np.linalg.cholesky(np.linalg.inv(h)).transpose(0, 2, 1)
