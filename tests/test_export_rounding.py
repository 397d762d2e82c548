"""`gptq`, the default int8 recipe: kernels rounded onto the converters' grid to keep each
layer's output closest to float, and both int8 formats storing exactly those integers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _export_shared import Exported, exported_run


def test_error_compensating_rounding_changes_layer_outputs_less_than_nearest() -> None:
    from edgetl.export.rounding import round_rows

    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(4000, 48)) @ rng.normal(size=(48, 48))  # correlated, like real activations
    weights = rng.normal(size=(16, 48))
    scale = np.abs(weights).max(axis=1, keepdims=True) / 127
    nearest = np.round(weights / scale) * scale
    rounded = round_rows(weights, inputs.T @ inputs)

    q = rounded / scale
    assert np.allclose(q, np.round(q), atol=1e-6) and np.abs(np.round(q)).max() == 127
    assert np.array_equal(np.abs(rounded).max(axis=1), np.abs(weights).max(axis=1))  # the converter's scale stays

    def output_error(w: np.ndarray) -> float:
        return float(np.mean((inputs @ (w - weights).T) ** 2))

    assert output_error(rounded) < 0.7 * output_error(nearest)  # measured 0.59


def test_blocked_rounding_equals_rounding_one_column_at_a_time() -> None:
    """GPTQ's lazy batch update (`BLOCK` columns, then one matmul) is the same arithmetic as the plain loop."""
    from edgetl.export.rounding import BLOCK, LEVELS, _upper_inverse_cholesky, round_rows

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(3000, 300)) @ rng.normal(size=(300, 300))
    weights = rng.normal(size=(24, 300))
    assert weights.shape[1] > 2 * BLOCK
    hessian = inputs.T @ inputs
    w = weights.copy()
    scale = np.abs(w).max(axis=1) / LEVELS
    upper = _upper_inverse_cholesky(hessian[None])[0]
    q = np.empty_like(w)
    for i in range(w.shape[1]):  # the loop before blocking
        q[:, i] = np.clip(np.round(w[:, i] / scale), -LEVELS, LEVELS)
        w[:, i + 1 :] -= ((w[:, i] - q[:, i] * scale) / upper[i, i])[:, None] * upper[i, i + 1 :]
    peak = np.abs(weights).argmax(axis=1)
    q[np.arange(len(q)), peak] = np.round(weights[np.arange(len(q)), peak] / scale)

    np.testing.assert_array_equal(np.round(round_rows(weights, hessian) / scale[:, None]), q)


@pytest.mark.parametrize("make", [
    lambda keras: keras.layers.DepthwiseConv2D(3, strides=2, padding="same"),
    lambda keras: keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, dilation_rate=2),
    lambda keras: keras.layers.Conv2D(5, 3, strides=2, padding="valid"),
    lambda keras: keras.layers.Conv2D(5, 1),
], ids=["depthwise-stride2", "depthwise-dilated", "conv3x3-valid", "conv1x1"])
def test_hessian_equals_the_sum_over_every_patch_for_maps_within_the_sample(make) -> None:
    """A map of at most `PATCHES_PER_PHOTO` positions gives every patch: H is the float64 XᵀX of
    `tf.image.extract_patches` (the accumulation before sampling) to float32 precision."""
    import keras
    import tensorflow as tf

    from edgetl.export.rounding import PATCHES_PER_PHOTO, _patch_hessian

    x = np.random.default_rng(2).normal(size=(3, 13, 11, 6)).astype(np.float32)
    layer = make(keras)
    layer.build(x.shape)
    assert 13 * 11 <= PATCHES_PER_PHOTO
    kh, kw = layer.kernel_size
    patches = tf.image.extract_patches(x, [1, kh, kw, 1], [1, *layer.strides, 1], [1, *layer.dilation_rate, 1],
                                       layer.padding.upper()).numpy().astype(np.float64)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        per_channel = patches.reshape(-1, kh * kw, x.shape[-1])
        expected = np.einsum("nkc,nlc->ckl", per_channel, per_channel)
    else:
        rows = patches.reshape(-1, kh * kw * x.shape[-1])
        expected = rows.T @ rows

    hessian = _patch_hessian(layer, tf.constant(x), np.random.default_rng(0)).numpy()
    np.testing.assert_allclose(hessian, expected, rtol=1e-5, atol=1e-4 * np.abs(expected).max())


def test_rounded_copy_keeps_the_model_and_puts_every_kernel_on_its_grid(tiny_run: Path) -> None:
    import keras

    from edgetl.export import calibration, load_run
    from edgetl.export.rounding import copy_with_weights, gptq_copy
    from edgetl.rundir import read_split

    model, meta = load_run(tiny_run)
    before = [w.copy() for w in model.get_weights()]
    calib = calibration.from_split(read_split(tiny_run, "train"), meta.labels, meta.preprocessing, size=16, seed=0,
                                   source="train").as_float()
    copy = gptq_copy(model, calib)

    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the float model is untouched
    convs = [(a, b) for a, b in zip(model._flatten_layers(), copy._flatten_layers())
             if isinstance(a, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    assert len(convs) > 30
    changed = 0
    for original, rounded in convs:
        w, r = original.kernel.numpy(), rounded.kernel.numpy()
        axes = (0, 1, 3) if isinstance(original, keras.layers.DepthwiseConv2D) else (0, 1, 2)
        scale = np.abs(w).max(axis=axes, keepdims=True) / 127
        np.testing.assert_allclose(np.abs(r).max(axis=axes, keepdims=True), 127 * scale, rtol=1e-6)
        q = r / np.where(scale > 0, scale, 1)
        np.testing.assert_allclose(q, np.round(q), atol=1e-3)
        changed += int(np.any(np.round(q) != np.round(w / np.where(scale > 0, scale, 1))))
    assert changed > len(convs) // 2  # not plain nearest rounding
    pixels = calib[:4]
    np.testing.assert_allclose(copy.predict_on_batch(pixels), model.predict_on_batch(pixels), atol=0.05)
    # the export's worker rebuilds the copy from its weights on the model it loaded itself
    rebuilt = copy_with_weights(load_run(tiny_run)[0], copy.get_weights())
    assert [type(layer) for layer in rebuilt._flatten_layers()] == [type(layer) for layer in copy._flatten_layers()]
    np.testing.assert_array_equal(rebuilt.predict_on_batch(pixels), copy.predict_on_batch(pixels))


def test_default_export_rounds_both_int8_formats(exported: Exported) -> None:
    assert exported.report.quantization == {"tflite-int8": {"recipe": "gptq", "trials": {}, "weights_rounded": True},
                                            "onnx-int8": {"recipe": "gptq", "trials": {}, "weights_rounded": True}}


def test_onnx_int8_stores_the_rounded_weights_on_the_tflite_grid(exported: Exported) -> None:
    import onnx
    from onnx import numpy_helper

    path = exported.run / "export" / "model_onnx-int8.onnx"
    assert exported.report.quantization["onnx-int8"]["recipe"] == "gptq"
    graph = onnx.load(str(path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    conv_inputs = {node.input[1] for node in graph.node if node.op_type == "Conv"}
    weights = [node for node in graph.node if node.op_type == "DequantizeLinear" and node.output[0] in conv_inputs
               and node.input[0] in arrays]
    assert len(weights) > 30
    for node in weights:
        q, zero = arrays[node.input[0]].astype(int), arrays[node.input[2]]
        assert np.all(zero == 128), node.name  # symmetric: TFLite's grid, not onnxruntime's asymmetric one
        peaks = np.abs(q - 128).reshape(len(q), -1).max(axis=1)
        assert np.all((peaks == 127) | (peaks == 0)), node.name  # 0: a channel of zero weights


@pytest.fixture(scope="module")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported_run(tiny_run, tmp_path_factory)


def test_tflite_int8_sees_every_pixel_level_exactly(exported: Exported) -> None:
    """The normalized input is on the int8 grid: no pixel is rounded before the first convolution."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(exported.run / "export" / "model_tflite-int8.tflite"),
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    height, width = inp["shape"][1:3]
    pixels = (np.arange(height * width * 3) % 256).astype(np.uint8).reshape(1, height, width, 3)
    interpreter.set_tensor(inp["index"], pixels)
    interpreter.invoke()
    first_conv = next(op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D")
    seen = next(t for t in interpreter.get_tensor_details() if t["index"] == first_conv["inputs"][0])
    scale, zero = seen["quantization"]
    normalized = (interpreter.get_tensor(seen["index"]).astype(np.float64) - zero) * scale
    # (p - 127) / 127.5: x / 127.5 - 1 moved by half a level (see rounding), or (p - 127) when the
    # converter folds the division into the convolution; either way no level is rounded.
    offset = pixels.astype(np.float64) - 127
    factor = normalized.flat[0] / offset.flat[0]
    assert np.isclose(factor, 1.0) or np.isclose(factor, 1 / 127.5), factor
    np.testing.assert_allclose(normalized, factor * offset, atol=1e-6)
