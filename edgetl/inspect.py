"""`edgetl inspect MODEL`: what a .tflite or .onnx file contains, without TensorFlow.

Inputs and outputs with dtypes and quantization, an op histogram, the embedded metadata
(`edgetl.json`, standard TFLite Model Metadata, ONNX `metadata_props`) and, for TFLite, the
Edge TPU pre-flight report. TFLite files are parsed by the runtime's one reader,
`edgetl.runtime.tflite_reader` (no interpreter is created); ONNX files with `onnx`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError
from edgetl.runtime.backends import TensorInfo
from edgetl.runtime.metadata import zip_entries
from edgetl.runtime.tflite_reader import read_metadata, read_tflite
from edgetl.spec import METADATA_FILE_NAME

SUFFIXES = (".tflite", ".onnx")


@dataclass(frozen=True)
class InspectReport:
    """Everything `edgetl inspect` shows about a model file.

    Attributes:
        path: The file.
        format: "tflite" or "onnx".
        size_bytes: File size.
        inputs: Graph inputs.
        outputs: Graph outputs.
        ops: Op type -> count, most frequent first.
        edgetl: The embedded `edgetl.json` document, or None.
        tflite_metadata: Standard TFLite Model Metadata as a dict, or None.
        metadata_props: ONNX `metadata_props` (other than `edgetl.json`), or {} for TFLite.
        details: Format facts: ONNX opset and producer; TFLite packed files and description.
        edgetpu: Edge TPU pre-flight report (TFLite only), as a dict.
    """

    path: Path
    format: str
    size_bytes: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    ops: dict[str, int]
    edgetl: dict[str, Any] | None = None
    tflite_metadata: dict[str, Any] | None = None
    metadata_props: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    edgetpu: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "format": self.format, "size_bytes": self.size_bytes,
            "inputs": [_tensor_dict(t) for t in self.inputs], "outputs": [_tensor_dict(t) for t in self.outputs],
            "ops": self.ops, "edgetl": self.edgetl, "tflite_metadata": self.tflite_metadata,
            "metadata_props": self.metadata_props, "details": self.details, "edgetpu": self.edgetpu,
        }


def inspect_model(path: str | Path) -> InspectReport:
    """Describe a .tflite or .onnx model file.

    Args:
        path: The model file.

    Returns:
        The report.

    Raises:
        EdgetlError: if the file is missing, has another suffix, or is corrupt or truncated.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise EdgetlError(f"inspect reads .tflite and .onnx files. Received: {path}")
    if not path.is_file():
        raise EdgetlError(f"Model file not found. Received: {path}")
    data = path.read_bytes()
    if path.suffix.lower() == ".tflite":
        return _inspect_tflite(path, data)
    return _inspect_onnx(path, data)


# --- TFLite ----------------------------------------------------------------------------------


def _inspect_tflite(path: Path, data: bytes) -> InspectReport:
    from edgetl.export.edgetpu import preflight

    parsed = read_tflite(data, source=str(path))
    standard = read_metadata(data, source=str(path))
    packed = zip_entries(data)
    embedded = packed.get(METADATA_FILE_NAME)
    report = preflight(parsed["operators"], parsed["inputs"], parsed["outputs"])
    return InspectReport(
        path=path, format="tflite", size_bytes=len(data),
        inputs=tuple(_tensor_info(t) for t in parsed["inputs"]),
        outputs=tuple(_tensor_info(t) for t in parsed["outputs"]),
        ops=dict(Counter(o["op"] for o in parsed["operators"]).most_common()),
        edgetl=_json_or_error(embedded, path) if embedded is not None else None,
        tflite_metadata={**standard.to_dict(), "packed_files": list(packed)} if standard else None,
        details={"description": parsed["description"], "subgraphs": parsed["subgraphs"],
                 "packed_files": list(packed)},
        edgetpu=report.to_dict(),
    )


def _tensor_info(t: dict[str, Any]) -> TensorInfo:
    shape = tuple(t["shape_signature"] or t["shape"])
    return TensorInfo(name=t["name"], dtype=t["dtype"], shape=shape, scale=t["scale"] or 0.0,
                      zero_point=t["zero_point"] or 0)


def _tensor_dict(t: TensorInfo) -> dict[str, Any]:
    """A tensor as `edgetl inspect --json` shows it: scale and zero point are None for a float tensor."""
    quantized = t.scale != 0.0
    return {"name": t.name, "dtype": t.dtype, "shape": list(t.shape),
            "scale": t.scale if quantized else None, "zero_point": t.zero_point if quantized else None}


def _json_or_error(raw: bytes | str, path: Path) -> dict[str, Any]:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgetlError(f"The embedded {METADATA_FILE_NAME} is not valid JSON ({e}). Received: {path}") from e


# --- ONNX ------------------------------------------------------------------------------------


def _inspect_onnx(path: Path, data: bytes) -> InspectReport:
    try:
        import onnx
        from onnx import helper
    except ImportError as e:
        raise EdgetlError("Inspecting .onnx files needs the onnx package: pip install onnx") from e
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as e:  # onnx raises DecodeError, ValidationError, ... from protobuf and C++
        raise EdgetlError(f"ONNX model is corrupt or truncated ({type(e).__name__}: {e}). Received: {path}") from e
    initializers = {t.name for t in model.graph.initializer}
    scales = {n.input[0]: n for n in model.graph.node if n.op_type == "QuantizeLinear"}

    def info(value: Any) -> TensorInfo:
        tensor_type = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        return TensorInfo(name=value.name, dtype=dtype, shape=dims)

    props = {p.key: p.value for p in model.metadata_props}
    embedded = props.pop(METADATA_FILE_NAME, None)
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    return InspectReport(
        path=path, format="onnx", size_bytes=len(data),
        inputs=tuple(info(v) for v in model.graph.input if v.name not in initializers),
        outputs=tuple(info(v) for v in model.graph.output),
        ops=dict(Counter(n.op_type for n in model.graph.node).most_common()),
        edgetl=_json_or_error(embedded, path) if embedded is not None else None,
        metadata_props=props,
        details={"opset": opsets.get("ai.onnx"), "opsets": opsets,
                 "producer": f"{model.producer_name} {model.producer_version}".strip(),
                 "quantized": bool(scales), "ir_version": model.ir_version},
    )
