"""The one reader of .tflite files: the graph and its standard Model Metadata, without TensorFlow.

Flatbuffers are read by named field slot with `flatbuffers.table.Table`, so neither
tflite-support nor an interpreter is needed. Slot numbers follow
`tensorflow/lite/schema/schema.fbs` and tflite-support's `metadata_schema.fbs` (schema 1.0.0);
flatbuffers only ever append fields, so they are stable. The runtime, `edgetl inspect` and the
exporters' checks all read through this module; the exporters only write
(`edgetl.export.tflite_metadata`), with the metadata slots named here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import flatbuffers.number_types as nt
from flatbuffers.table import Table

from edgetl.errors import EdgetlError

TFLITE_IDENTIFIER = b"TFL3"
METADATA_IDENTIFIER = b"M001"
METADATA_NAME = "TFLITE_METADATA"
"""The `Model.metadata` entry whose buffer holds the Model Metadata flatbuffer."""
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"

# schema.fbs slots
MODEL_OPERATOR_CODES, MODEL_SUBGRAPHS, MODEL_DESCRIPTION, MODEL_BUFFERS, MODEL_METADATA = 1, 2, 3, 4, 6
OPCODE_DEPRECATED_BUILTIN, OPCODE_CUSTOM_CODE, OPCODE_BUILTIN = 0, 1, 3
SUBGRAPH_TENSORS, SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = 0, 1, 2, 3
TENSOR_SHAPE, TENSOR_TYPE, TENSOR_NAME, TENSOR_QUANTIZATION, TENSOR_SHAPE_SIGNATURE = 0, 1, 3, 4, 7
QUANT_SCALE, QUANT_ZERO_POINT = 2, 3
OPERATOR_OPCODE_INDEX, OPERATOR_INPUTS, OPERATOR_OUTPUTS = 0, 1, 2
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2
METADATA_ENTRY_NAME, METADATA_ENTRY_BUFFER = 0, 1

# metadata_schema.fbs slots (ModelMetadata, SubGraphMetadata, TensorMetadata, ...)
MM_NAME, MM_DESCRIPTION, MM_VERSION, MM_SUBGRAPHS, MM_AUTHOR, MM_ASSOCIATED_FILES, MM_MIN_PARSER_VERSION = (
    0, 1, 2, 3, 4, 6, 7
)
SG_NAME, SG_INPUTS, SG_OUTPUTS, SG_ASSOCIATED_FILES = 0, 2, 3, 4
TM_NAME, TM_DESCRIPTION, TM_CONTENT, TM_PROCESS_UNITS, TM_STATS, TM_ASSOCIATED_FILES = 0, 1, 3, 4, 5, 6
CONTENT_PROPS_TYPE, CONTENT_PROPS = 0, 1
IMAGE_PROPS_COLOR_SPACE, IMAGE_PROPS_DEFAULT_SIZE = 0, 1
IMAGE_SIZE_WIDTH, IMAGE_SIZE_HEIGHT = 0, 1
PU_OPTIONS_TYPE, PU_OPTIONS = 0, 1
NORM_MEAN, NORM_STD = 0, 1
STATS_MAX, STATS_MIN = 0, 1
AF_NAME, AF_DESCRIPTION, AF_TYPE = 0, 1, 2
# metadata_schema.fbs enum values
CONTENT_FEATURE_PROPERTIES, CONTENT_IMAGE_PROPERTIES = 1, 2  # union ContentProperties (NONE=0)
PROCESS_UNIT_NORMALIZATION = 1  # union ProcessUnitOptions (NONE=0)
COLOR_SPACE_RGB, COLOR_SPACE_GRAYSCALE = 1, 2  # ColorSpaceType (UNKNOWN=0)
COLOR_SPACES = {COLOR_SPACE_RGB: "RGB", COLOR_SPACE_GRAYSCALE: "GRAYSCALE"}
ASSOCIATED_FILE_TYPES = {0: "UNKNOWN", 1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS", 3: "TENSOR_VALUE_LABELS",
                         4: "TENSOR_AXIS_SCORE_CALIBRATION", 5: "VOCABULARY"}
TENSOR_AXIS_LABELS = 2

_CORRUPT = (IndexError, struct.error, UnicodeDecodeError, ValueError, TypeError)
"""What a flatbuffer read raises when offsets point outside the buffer."""


class FlatTable:
    """A flatbuffer table read by field slot (slot i lives at vtable offset 4 + 2 i)."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self._t = Table(buf, pos)

    @classmethod
    def root(cls, buf: bytes) -> FlatTable:
        return cls(buf, struct.unpack_from("<I", buf, 0)[0])

    def _off(self, slot: int) -> int:
        return self._t.Offset(4 + 2 * slot)

    def scalar(self, slot: int, flags: type, default: int = 0) -> int:
        off = self._off(slot)
        return self._t.Get(flags, self._t.Pos + off) if off else default

    def string(self, slot: int, errors: str = "strict") -> str | None:
        off = self._off(slot)
        return self._t.String(self._t.Pos + off).decode("utf-8", errors) if off else None

    def table(self, slot: int) -> FlatTable | None:
        off = self._off(slot)
        return FlatTable(self._t.Bytes, self._t.Indirect(self._t.Pos + off)) if off else None

    def tables(self, slot: int) -> list[FlatTable]:
        off = self._off(slot)
        if not off:
            return []
        start = self._t.Vector(off)
        return [FlatTable(self._t.Bytes, self._t.Indirect(start + 4 * i)) for i in range(self._t.VectorLen(off))]

    def numbers(self, slot: int, flags: type) -> tuple[Any, ...]:
        """A vector of scalars (`flags` from `flatbuffers.number_types`); empty when absent."""
        off = self._off(slot)
        if not off:
            return ()
        return tuple(v.item() for v in self._t.GetVectorAsNumpy(flags, off))

    def floats(self, slot: int) -> tuple[float, ...]:
        return tuple(float(v) for v in self.numbers(slot, nt.Float32Flags))

    def raw_bytes(self, slot: int) -> bytes:
        off = self._off(slot)
        if not off:
            return b""
        start = self._t.Vector(off)
        return bytes(self._t.Bytes[start : start + self._t.VectorLen(off)])

    def vector_end(self, slot: int) -> int:
        """Where a vector of bytes ends in the buffer (0 when absent), to detect a truncated file."""
        off = self._off(slot)
        return self._t.Vector(off) + self._t.VectorLen(off) if off else 0


# --- the graph -------------------------------------------------------------------------------


def read_tflite(data: bytes, *, source: str = "model") -> dict[str, Any]:
    """Parse a TFLite flatbuffer into plain Python: inputs, outputs and operators of subgraph 0.

    Returns:
        {"inputs": [...], "outputs": [...], "operators": [{"op", "input_dtypes",
        "output_dtypes"}], "description": str, "subgraphs": int}; tensors are dicts with name,
        dtype, shape, shape_signature, scale and zero_point (None for a float tensor).

    Raises:
        EdgetlError: if `data` is not a whole TFLite model.
    """
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise EdgetlError(f"Not a TFLite model (no 'TFL3' file identifier). Received: {source}")
    tensor_types, builtin_ops = _enum_names()
    try:
        model = FlatTable.root(data)
        for buffer in model.tables(MODEL_BUFFERS):  # touching every weight buffer detects truncation
            if buffer.vector_end(BUFFER_DATA) > len(data):
                raise ValueError("weight buffer runs past the end of the file")
        subgraphs = model.tables(MODEL_SUBGRAPHS)
        graph = subgraphs[0]
        tensors = graph.tables(SUBGRAPH_TENSORS)
        codes = model.tables(MODEL_OPERATOR_CODES)

        def tensor(index: int) -> dict[str, Any]:
            t = tensors[index]
            q = t.table(TENSOR_QUANTIZATION)
            scales = q.floats(QUANT_SCALE) if q is not None else ()
            zeros = q.numbers(QUANT_ZERO_POINT, nt.Int64Flags) if q is not None else ()
            shape = [int(v) for v in t.numbers(TENSOR_SHAPE, nt.Int32Flags)]
            signature = [int(v) for v in t.numbers(TENSOR_SHAPE_SIGNATURE, nt.Int32Flags)] or shape
            kind = t.scalar(TENSOR_TYPE, nt.Int8Flags)
            return {"name": t.string(TENSOR_NAME, "replace") or "", "dtype": tensor_types.get(kind, str(kind)),
                    "shape": shape, "shape_signature": signature,
                    "scale": scales[0] if scales else None, "zero_point": int(zeros[0]) if zeros else None}

        operators = []
        for node in graph.tables(SUBGRAPH_OPERATORS):
            code = codes[node.scalar(OPERATOR_OPCODE_INDEX, nt.Uint32Flags)]
            number = max(
                code.scalar(OPCODE_BUILTIN, nt.Int32Flags), code.scalar(OPCODE_DEPRECATED_BUILTIN, nt.Int8Flags)
            )
            name = builtin_ops.get(number, str(number))
            if name == "CUSTOM":
                name = f"CUSTOM:{code.string(OPCODE_CUSTOM_CODE, 'replace') or ''}"
            ins = [j for j in node.numbers(OPERATOR_INPUTS, nt.Int32Flags) if j >= 0]
            outs = node.numbers(OPERATOR_OUTPUTS, nt.Int32Flags)
            operators.append({"op": name, "input_dtypes": [tensor(j)["dtype"] for j in ins],
                              "output_dtypes": [tensor(j)["dtype"] for j in outs]})
        return {
            "inputs": [tensor(j) for j in graph.numbers(SUBGRAPH_INPUTS, nt.Int32Flags)],
            "outputs": [tensor(j) for j in graph.numbers(SUBGRAPH_OUTPUTS, nt.Int32Flags)],
            "operators": operators,
            "description": model.string(MODEL_DESCRIPTION, "replace") or "",
            "subgraphs": len(subgraphs),
        }
    except _CORRUPT as e:
        raise EdgetlError(f"TFLite model is corrupt or truncated ({e}). Received: {source}") from e


@lru_cache(maxsize=1)
def _enum_names() -> tuple[dict[int, str], dict[int, str]]:
    """TensorType values -> numpy-style dtype names, and BuiltinOperator values -> op names.

    The ~200 op names come from the schema module that ships with ai-edge-litert, as data only.
    """
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as e:
        raise EdgetlError(
            "Reading a TFLite graph needs the TFLite schema module. Install it with: pip install 'edgetl[runtime]'"
        ) from e
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    builtins = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return types, builtins


def custom_op_names(model: FlatTable) -> tuple[str, ...]:
    """Custom operator names the graph uses (e.g. "edgetpu-custom-op")."""
    return tuple(code for op in model.tables(MODEL_OPERATOR_CODES) if (code := op.string(OPCODE_CUSTOM_CODE)))


# --- standard Model Metadata -----------------------------------------------------------------


@dataclass(frozen=True)
class InputNormalization:
    """What the input tensor's metadata says about the image it takes.

    Attributes:
        mean: `NormalizationOptions.mean` per channel (or one for all); empty when absent.
        std: `NormalizationOptions.std`, as `mean`.
        color_space: "RGB" or "GRAYSCALE" from `ImageProperties`, "UNKNOWN" for another
            value, "" when the input has no ImageProperties.
        size: (height, width) from `ImageProperties.default_size`, or None.
    """

    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    color_space: str = ""
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class TfliteMetadata:
    """What the standard metadata of a .tflite says (written by edgetl or any other tool).

    Attributes:
        name: `ModelMetadata.name`.
        description: `ModelMetadata.description`.
        version: `ModelMetadata.version`.
        min_parser_version: The metadata parser version needed to read it.
        input: The first input tensor's image properties and normalization.
        labels_file: Name of the first output's TENSOR_AXIS_LABELS associated file, or "".
        associated_files: Every associated file the metadata records, as (name, type).
    """

    name: str
    description: str
    version: str
    min_parser_version: str
    input: InputNormalization
    labels_file: str
    associated_files: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "version": self.version,
            "min_parser_version": self.min_parser_version, "input_color_space": self.input.color_space,
            "input_size": list(self.input.size) if self.input.size else None,
            "mean": list(self.input.mean), "std": list(self.input.std), "labels_file": self.labels_file,
            "associated_files": [list(f) for f in self.associated_files],
        }


def read_metadata(model: bytes, *, source: str = "model") -> TfliteMetadata | None:
    """Parse the standard Model Metadata of a TFLite model; None when the model has none.

    Raises:
        EdgetlError: if the metadata buffer is present but is not a whole metadata flatbuffer.
    """
    try:
        raw = metadata_buffer(FlatTable.root(model), model)
        if raw is None:
            return None
        if raw[4:8] != METADATA_IDENTIFIER:
            raise EdgetlError(
                "The model's TFLITE_METADATA buffer is not TFLite Model Metadata (identifier is not 'M001'). "
                f"Received: {source}"
            )
        return _parse_metadata(FlatTable.root(raw))
    except _CORRUPT as e:
        raise EdgetlError(f"The model's TFLite Model Metadata is corrupt ({e}). Received: {source}") from e


def metadata_buffer(model: FlatTable, data: bytes) -> bytes | None:
    """The `TFLITE_METADATA` buffer's bytes, from inside the flatbuffer or at its file offset."""
    for entry in model.tables(MODEL_METADATA):
        if entry.string(METADATA_ENTRY_NAME) != METADATA_NAME:
            continue
        buffer = model.tables(MODEL_BUFFERS)[entry.scalar(METADATA_ENTRY_BUFFER, nt.Uint32Flags)]
        offset = buffer.scalar(BUFFER_OFFSET, nt.Uint64Flags)
        if offset > 1:  # models over 2 GB keep buffers after the flatbuffer
            return data[offset : offset + buffer.scalar(BUFFER_SIZE, nt.Uint64Flags)]
        return buffer.raw_bytes(BUFFER_DATA) or None
    return None


def _parse_metadata(root: FlatTable) -> TfliteMetadata:
    files = [_associated_file(f) for f in root.tables(MM_ASSOCIATED_FILES)]
    normalization, labels_file = InputNormalization(), ""
    for subgraph in root.tables(MM_SUBGRAPHS)[:1]:
        files += [_associated_file(f) for f in subgraph.tables(SG_ASSOCIATED_FILES)]
        for tensor in subgraph.tables(SG_INPUTS)[:1]:
            files += [_associated_file(f) for f in tensor.tables(TM_ASSOCIATED_FILES)]
            normalization = _input_normalization(tensor)
        for tensor in subgraph.tables(SG_OUTPUTS)[:1]:
            out_files = [_associated_file(f) for f in tensor.tables(TM_ASSOCIATED_FILES)]
            files += out_files
            labels_file = next((name for name, kind in out_files if kind == "TENSOR_AXIS_LABELS"), "")
    return TfliteMetadata(
        name=root.string(MM_NAME) or "", description=root.string(MM_DESCRIPTION) or "",
        version=root.string(MM_VERSION) or "", min_parser_version=root.string(MM_MIN_PARSER_VERSION) or "",
        input=normalization, labels_file=labels_file, associated_files=tuple(files),
    )


def _input_normalization(tensor: FlatTable) -> InputNormalization:
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    for unit in tensor.tables(TM_PROCESS_UNITS):
        options = unit.table(PU_OPTIONS)
        if unit.scalar(PU_OPTIONS_TYPE, nt.Uint8Flags) == PROCESS_UNIT_NORMALIZATION and options is not None:
            mean, std = options.floats(NORM_MEAN), options.floats(NORM_STD)
    color_space, size = "", None
    content = tensor.table(TM_CONTENT)
    props = content.table(CONTENT_PROPS) if content is not None else None
    if props is not None and content.scalar(CONTENT_PROPS_TYPE, nt.Uint8Flags) == CONTENT_IMAGE_PROPERTIES:
        color_space = COLOR_SPACES.get(props.scalar(IMAGE_PROPS_COLOR_SPACE, nt.Int8Flags), "UNKNOWN")
        dims = props.table(IMAGE_PROPS_DEFAULT_SIZE)
        if dims is not None and dims.scalar(IMAGE_SIZE_WIDTH, nt.Uint32Flags):
            size = (dims.scalar(IMAGE_SIZE_HEIGHT, nt.Uint32Flags), dims.scalar(IMAGE_SIZE_WIDTH, nt.Uint32Flags))
    return InputNormalization(mean=mean, std=std, color_space=color_space, size=size)


def _associated_file(table: FlatTable) -> tuple[str, str]:
    return table.string(AF_NAME) or "", ASSOCIATED_FILE_TYPES.get(table.scalar(AF_TYPE, nt.Int8Flags), "UNKNOWN")
