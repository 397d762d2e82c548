"""ONNX exporters: float (tf2onnx) and int8 (onnxruntime static quantization).

The int8 model uses QDQ format, per-channel weights and MinMax calibration on the same
calibration set as the TFLite int8 model, with unsigned 8-bit activations *and* weights (U8U8),
all 8 bits of each. On x86 CPUs without VNNI, onnxruntime's signed-weight kernels (u8*s8) add
pairs of products in int16, which saturates with full-range weights; its U8U8 kernels widen to
16 bits first and do not saturate, so no bits need to be given up (`reduce_range`) for them.
Measured on a 2-core AMD EPYC (AVX2, no VNNI), photos whose top-1 differs from the float model:

| model, photos                                   | s8s8 8-bit | s8s8 7-bit | U8U8 8-bit | naive TFLite |
|-------------------------------------------------|------------|------------|------------|--------------|
| MobileNetV2-1.0-224 cats/dogs, 1,188 held out   | 128        | 78         | 52         | 59           |
| the demo's digits model, 1,860 (all)            | 96 (1,797) | 43         | 45         | -            |

With the `gptq` recipe (the default) the Conv weights are pinned to TFLite's symmetric grid
(scale max|w| / 127, zero point 128) through `TensorQuantOverrides`: `edgetl.export.rounding`
rounded them onto that grid, and onnxruntime's asymmetric one would round them a second time.
Its input and output stay float32, so the same runtime code feeds it as the float model.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetl.export import recipes, target_agreement
from edgetl.export.common import ExportSource, artefact_metadata, check_output, write_artefact
from edgetl.spec import METADATA_FILE_NAME

if TYPE_CHECKING:
    from edgetl.export import ExportOptions

INPUT_NAME = "pixels"


def _io(model: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from onnx import helper

    def one(value: Any) -> dict[str, Any]:
        t = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        return {"name": value.name, "dtype": helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": shape,
                "scale": None, "zero_point": None}

    initializers = {t.name for t in model.graph.initializer}
    return [one(v) for v in model.graph.input if v.name not in initializers], [one(v) for v in model.graph.output]


def finish(source: ExportSource, model: Any, fmt: str, out: Path, **extra: Any) -> Path:
    """Check the graph, store `edgetl.json` and `labels` in `metadata_props`, write it."""
    import onnx

    onnx.checker.check_model(model)
    inputs, outputs = _io(model)
    check_output(source, outputs, fmt)
    meta = artefact_metadata(source, fmt, input=inputs[0], output=outputs[0], **extra)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {METADATA_FILE_NAME: meta.to_json(), "labels": "\n".join(meta.labels)})
    model.doc_string = f"edgetl image classifier ({fmt}), {len(meta.labels)} classes"
    return write_artefact(out, model.SerializeToString(), meta)


def export_onnx(source: ExportSource, opts: ExportOptions, out: Path, calib: np.ndarray | None) -> Path:
    """Float32 ONNX converted by tf2onnx at `opts.onnx_opset`."""
    import onnx

    model = onnx.load_from_string(source.onnx_float(opts.onnx_opset))
    return finish(source, model, "onnx", out, onnx_opset=opts.onnx_opset, quantization="none")


def export_onnx_int8(source: ExportSource, opts: ExportOptions, out: Path, calib: np.ndarray | None) -> Path:
    """Int8 ONNX: QDQ, u8 activations and per-channel u8 weights, calibrated like tflite-int8.

    The weights and the calibration method follow `opts.quantization` (`edgetl.export.recipes`).
    With `opts.target_agreement`, its most sensitive nodes stay float (`nodes_to_exclude`) until it
    agrees with the float model on that share of the validation photos (`edgetl.export.target_agreement`).
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calib is None or len(calib) == 0:
        raise ValueError("onnx-int8 needs calibration images")
    with tempfile.TemporaryDirectory(prefix="onnx_int8_", dir=source.workdir) as tmp:

        def build(recipe: str) -> Path:
            weights = "rounded" if source.rounded_weights(recipe) else "float"
            prep_path = Path(tmp) / f"prep_{weights}.onnx"
            if not prep_path.exists():
                float_path = Path(tmp) / f"{weights}.onnx"
                float_path.write_bytes(source.int8_source(recipe, calib).onnx_float(opts.onnx_opset))
                # skip_symbolic_shape: the symbolic pass needs sympy and the shapes here are static anyway.
                quant_pre_process(float_path, prep_path, skip_symbolic_shape=True)
            return _quantize(prep_path, Path(tmp) / f"{recipe}.onnx", calib, recipe, weights == "rounded")

        recipe, q_path, tried = recipes.pick(opts.quantization, build,
                                             lambda path: source.validation_disagreements(session_runner(path)))
        target = None
        if opts.target_agreement is not None:
            rounded = source.rounded_weights(recipe)
            prep_path, candidates = Path(tmp) / f"prep_{'rounded' if rounded else 'float'}.onnx", itertools.count()

            def requantize(nodes: Sequence[str]) -> Path:
                name = f"{recipe}_wider_{next(candidates)}.onnx"
                return _quantize(prep_path, Path(tmp) / name, calib, recipe, rounded, exclude=nodes)

            widening = target_agreement.onnx_widening(source, q_path, prep_path, requantize, session_runner,
                                                      INPUT_NAME)
            q_path, target = target_agreement.reach(source, widening, opts.target_agreement)
        model = onnx.load(str(q_path))
    return finish(source, model, "onnx-int8", out, onnx_opset=opts.onnx_opset,
                  quantization="onnxruntime static QDQ, uint8 activations, per-channel uint8 weights, "
                  f"{recipe} recipe" + (", some layers float" if target is not None and target.wider else ""),
                  quantization_recipe=recipe, quantization_trials=tried, calibration_images=int(len(calib)),
                  weights_rounded=source.rounded_weights(recipe),
                  **({} if target is None else {"target_agreement": target.to_dict()}))


def _quantize(prep_path: Path, q_path: Path, calib: np.ndarray, recipe: str, rounded: bool,
              exclude: Sequence[str] = ()) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(range(len(calib)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self._it, None)
            return None if i is None else {INPUT_NAME: calib[i : i + 1].astype(np.float32)}

    calibration = recipes.onnx_calibration(recipe)
    if rounded:  # on the grid the kernels were rounded to
        calibration["extra_options"] = {**calibration.get("extra_options", {}),
                                        "TensorQuantOverrides": _converter_weight_grid(prep_path)}
    quantize_static(prep_path, q_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8,
                    nodes_to_exclude=list(exclude), **calibration)
    return q_path


def _converter_weight_grid(prep_path: Path) -> dict[str, list[dict[str, Any]]]:
    """Per-channel overrides that put every Conv weight on TFLite's symmetric grid (scale
    max|w| / 127, zero point 128 in uint8), where `edgetl.export.rounding` rounded it: onnxruntime's
    own asymmetric grid would round those values a second time."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(prep_path))
    initializers = {t.name: t for t in model.graph.initializer}
    grid = {}
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in initializers:
            weights = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32)
            scales = np.abs(weights.reshape(len(weights), -1)).max(axis=1) / np.float32(127)
            grid[node.input[1]] = [{"axis": 0, "scale": np.float32(s if s > 0 else 1.0), "zero_point": np.uint8(128)}
                                   for s in scales]
    return grid


def session_runner(path: Path) -> Any:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda pixels: session.run(None, {INPUT_NAME: pixels})[0]
