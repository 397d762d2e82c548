"""The `gptq-bc` recipe's copy: the `gptq` copy with each batch norm's shift (beta) corrected for the
mean change int8 causes in its output, with int8 weights AND int8 activations simulated in the loop.

Rounding errors do not average out per channel: a channel whose rounded kernel sums a little high
reads a little high on every photo, and a ReLU6 or the next layer turns that constant into a
different output. Bias correction (Nagel et al. 2019, "Data-Free Quantization Through Weight
Equalization and Bias Correction", the empirical variant) measures, per output channel, the mean
of the layer's pre-activation output in the float model and in the simulated int8 model on the
calibration photos, and adds the difference to the layer's bias. Here it is folded into the batch
norm's beta (or the convolution's bias when it has no batch norm), which the converters fold into
the int32 bias: the int8 kernels and their grid stay exactly what `edgetl.export.rounding` made.

The simulation (`_simulated_call`): every tensor the converters store as int8 (a layer's output
unless it is a convolution or batch norm fused into the batch norm or ReLU that reads it) goes
through `fake_quant` with the min/max that the converter's calibration sees on the rounded copy.
Layers are corrected in one pass in execution order, each seeing the corrections of the layers
before it (as sequential correction layer by layer does, at the cost of one pass, not one per
layer), on one batch of at most `PHOTOS` calibration photos, so the correction costs three forward
passes of that batch.

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

from edgetl.export import rounding

logger = logging.getLogger("edgetl.export")

PHOTOS = 64
"""Calibration photos (at 224 px; fewer at larger sizes) the correction measures means on, in one batch."""
FUSABLE = (keras.layers.BatchNormalization, keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
FUSED_INTO = (keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Activation)
"""Consumers a convolution or batch norm is fused into by the converters: its output is never int8."""


def bias_corrected_copy(model: Any, calib: np.ndarray) -> Any:
    """The `gptq` copy of `model` (`rounding.gptq_copy`) whose batch-norm betas (or convolution
    biases) take back the per-channel mean shift that simulated int8 causes on `calib` (float32
    pixels, N x H x W x 3). Not thread-safe: it builds Keras models and assigns weights."""
    started = time.perf_counter()
    rounded = rounding.gptq_copy(model, calib)
    photos = np.asarray(calib[: max(1, PHOTOS * 224 * 224 // (calib.shape[1] * calib.shape[2]))], dtype=np.float32)
    shifts = mean_shifts(model, rounded, photos, correct=True)
    logger.info("int8 bias correction: %d layers' shifts on %d photos in %.1f s", len(shifts), len(photos),
                time.perf_counter() - started)
    return rounded


def mean_shifts(model: Any, rounded: Any, photos: np.ndarray, *, correct: bool) -> dict[str, np.ndarray]:
    """Per-channel mean output of each corrected layer (`_graph_roles`) of the float `model` minus that
    of `rounded` run in simulated int8, on `photos`, by layer name; measured in execution order. With
    `correct`, each shift is added to that layer's beta (or bias) of `rounded` as soon as it is measured,
    so the layers after it see the corrected output. Not thread-safe (assigns `rounded`'s weights)."""
    float_copy = keras.models.clone_model(model)  # traced below: the caller's model keeps its graph
    float_copy.set_weights(model.get_weights())
    targets, fused = _graph_roles(float_copy)  # before tracing adds consumers to the layers
    reference = _float_means(float_copy, photos, targets)
    ranges = _output_ranges(rounded, photos, fused)
    return _simulated_shifts(rounded, photos, reference, ranges, correct)


def _graph_roles(model: Any) -> tuple[set[str], set[str]]:
    """Names of (the layers whose output mean is corrected, the layers fused into their consumer).

    Corrected: batch norms with a beta after a rounded convolution, and rounded convolutions with a
    bias that no batch norm follows. Fused: convolutions and batch norms read only by a batch norm or
    an activation, whose output the converters never store as int8. Names must be unique; a model
    whose names repeat gets no correction."""
    layers = list(model._flatten_layers())
    if len({layer.name for layer in layers}) != len(layers):
        return set(), set()
    targets, fused = set(), set()
    for layer in layers:
        consumers = [node.operation for node in layer._outbound_nodes]
        if isinstance(layer, keras.layers.BatchNormalization) and layer.center:
            producers = [parent.operation for node in layer._inbound_nodes for parent in node.parent_nodes]
            if any(rounding._is_rounded(op) for op in producers):
                targets.add(layer.name)
        elif rounding._is_rounded(layer) and layer.use_bias:
            if not any(isinstance(op, keras.layers.BatchNormalization) for op in consumers):
                targets.add(layer.name)
        if isinstance(layer, FUSABLE) and consumers and all(isinstance(op, FUSED_INTO) for op in consumers):
            fused.add(layer.name)
    return targets, fused


def _traced(model: Any, after: Callable[[Any, Any], Any]) -> Any:
    """`model` whose every layer's output on real data (not the symbolic call that builds the model)
    becomes `after(layer, output)`; its layers are shared with `model`."""

    def hook(layer: Any, *args: Any, **kwargs: Any) -> Any:
        return layer(*args, **kwargs) if isinstance(layer, keras.Model) else _Hooked(layer, after)(*args, **kwargs)

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=hook, recursive=True)


class _Hooked(keras.layers.Layer):
    """Calls `layer`, then hands its output to `after(layer, output)` (eager calls only)."""

    def __init__(self, layer: Any, after: Callable[[Any, Any], Any]) -> None:
        super().__init__()
        self.layer, self.after = layer, after

    def call(self, *args: Any, **kwargs: Any) -> Any:
        y = self.layer(*args, **kwargs)
        return self.after(self.layer, y) if tf.executing_eagerly() else y

    def compute_output_spec(self, *args: Any, **kwargs: Any) -> Any:
        return self.layer.compute_output_spec(*args, **kwargs)


def _run_batched(model: Any, call: Callable[..., Any], photos: np.ndarray) -> None:
    traced = _traced(model, call)
    step = max(1, rounding.BATCH_PIXELS // (photos.shape[1] * photos.shape[2]))
    for start in range(0, len(photos), step):
        traced(photos[start : start + step], training=False)


def _float_means(model: Any, photos: np.ndarray, targets: set[str]) -> dict[str, np.ndarray]:
    """Per-channel mean output of each target layer of the float `model` on `photos`, by layer name."""
    sums: dict[str, list[Any]] = {}

    def record(layer: Any, y: Any) -> Any:
        if layer.name in targets:
            y32 = tf.cast(y, tf.float32)
            total, count = tf.reduce_sum(y32, axis=(0, 1, 2)), int(np.prod(y32.shape[:3]))
            seen = sums.setdefault(layer.name, [0.0, 0])
            seen[0], seen[1] = seen[0] + total, seen[1] + count
        return y

    _run_batched(model, record, photos)
    return {name: (total / count).numpy() for name, (total, count) in sums.items()}


def _is_int8_tensor(layer: Any, fused: set[str]) -> bool:
    return not isinstance(layer, (keras.Model, keras.layers.InputLayer)) and layer.name not in fused


def _output_ranges(model: Any, photos: np.ndarray, fused: set[str]) -> dict[int, tuple[float, float]]:
    """(min, max) of every int8 tensor's float values on `photos`: what the converters calibrate."""
    ranges: dict[int, tuple[float, float]] = {}

    def record(layer: Any, y: Any) -> Any:
        if _is_int8_tensor(layer, fused):
            low, high = float(tf.reduce_min(y)), float(tf.reduce_max(y))
            seen = ranges.get(id(layer), (low, high))
            ranges[id(layer)] = (min(low, seen[0]), max(high, seen[1]))
        return y

    _run_batched(model, record, photos)
    return ranges


def _simulated_shifts(model: Any, photos: np.ndarray, reference: dict[str, np.ndarray],
                      ranges: dict[int, tuple[float, float]], correct: bool) -> dict[str, np.ndarray]:
    """One pass of simulated int8 over all `photos` at once (see `mean_shifts`)."""
    shifts: dict[str, np.ndarray] = {}

    def simulate(layer: Any, y: Any) -> Any:
        if layer.name in reference:
            shift = reference[layer.name] - tf.reduce_mean(tf.cast(y, tf.float32), axis=(0, 1, 2)).numpy()
            shifts[layer.name] = shift
            if correct:
                (layer.beta if isinstance(layer, keras.layers.BatchNormalization) else layer.bias).assign_add(
                    shift.astype(np.float32))
                y = y + tf.cast(shift, y.dtype)
        if id(layer) in ranges:
            low, high = ranges[id(layer)]
            y = tf.quantization.fake_quant_with_min_max_args(tf.cast(y, tf.float32), min(low, 0.0), max(high, 0.0))
        return y

    _traced(model, simulate)(photos, training=False)
    return shifts
