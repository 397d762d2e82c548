"""Tiny hand-built ONNX models for the runtime tests (no TensorFlow needed to make them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetl.spec import ModelMetadata, PreprocessingSpec

NCHW_LABELS = ("dark", "bright")


def write_nchw_classifier(path: Path, *, embed_metadata: bool = True) -> Path:
    """An NCHW float model (N, 3, 8, 8) in [0, 255] -> softmax over (dark, bright), dynamic batch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([[-1, 1]] * 3, np.float32) / 50, "w")
    bias = numpy_helper.from_array(np.array([2.5, -2.5], np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["mean", "w"], ["logits0"]),
            helper.make_node("Add", ["logits0", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["edgetl_probs"], axis=1),
        ],
        "nchw_classifier",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("edgetl_probs", TensorProto.FLOAT, ["N", 2])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if embed_metadata:
        meta = ModelMetadata(
            labels=NCHW_LABELS,
            preprocessing=PreprocessingSpec(image_size=(8, 8), layout="NCHW"),
            format="onnx",
        )
        helper.set_model_props(model, {"edgetl.json": meta.to_json(), "labels": "\n".join(NCHW_LABELS)})
    onnx.save(model, path)
    return path


def write_rank2_model(path: Path) -> Path:
    """A model whose input is a feature vector (1, 4), not an image."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Softmax", ["features"], ["probs"], axis=1)],
        "not_an_image",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path
