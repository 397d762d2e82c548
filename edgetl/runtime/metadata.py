"""Read what a model file says about itself, without TensorFlow.

Sources, most specific first (docs/ARCHITECTURE.md):

1. `edgetl.json` embedded in the file: a zip entry appended to a .tflite, or the ONNX
   `metadata_props` key `edgetl.json`;
2. standard TFLite Model Metadata (`TFLITE_METADATA`, as written by tflite-support and found in
   Coral's models): the TENSOR_AXIS_LABELS associated file of the output, and the input's
   NormalizationOptions mean/std;
3. the sidecar `{stem}.json` beside the model.

The flatbuffers are read by field slot with `flatbuffers.table.Table`, so neither the
tflite-support package nor an interpreter's generated schema module is needed. Slot numbers
follow `tensorflow/lite/schema/schema.fbs` and `tflite-support/.../metadata_schema.fbs`.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import flatbuffers.number_types as nt
from flatbuffers.table import Table

from edgetl.errors import EdgetlError
from edgetl.spec import METADATA_FILE_NAME, ModelMetadata, is_edgetl_metadata

TFLITE_IDENTIFIER = b"TFL3"
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"

# tflite schema.fbs slots
_MODEL_OPERATOR_CODES, _MODEL_BUFFERS, _MODEL_METADATA = 1, 4, 6
_OPCODE_CUSTOM_CODE = 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_METADATA_NAME, _METADATA_BUFFER = 0, 1
# metadata_schema.fbs slots and enum values
_MM_SUBGRAPHS = 3
_SG_INPUTS, _SG_OUTPUTS = 2, 3
_TM_CONTENT, _TM_PROCESS_UNITS, _TM_ASSOCIATED_FILES = 3, 4, 6
_CONTENT_PROPS_TYPE, _CONTENT_PROPS = 0, 1
_IMAGE_PROPS_COLOR_SPACE = 0
_PU_OPTIONS_TYPE, _PU_OPTIONS = 0, 1
_NORM_MEAN, _NORM_STD = 0, 1
_AF_NAME, _AF_TYPE = 0, 2
_CONTENT_IMAGE_PROPERTIES = 2
_PROCESS_UNIT_NORMALIZATION = 1
_FILE_TENSOR_AXIS_LABELS = 2
_COLOR_SPACES = {1: "RGB", 2: "GRAYSCALE"}


@dataclass(frozen=True)
class FileInfo:
    """What one model file carries about itself.

    Attributes:
        metadata: edgetl's own `edgetl.json` (embedded or sidecar), if any.
        labels: Labels from standard TFLite Model Metadata, if any.
        mean: Input normalization mean from TFLite Model Metadata, per channel.
        std: Input normalization std from TFLite Model Metadata, per channel.
        color_space: "RGB" or "GRAYSCALE" from the input's ImageProperties, if given.
        custom_ops: Custom operator names the TFLite graph uses (e.g. "edgetpu-custom-op").
    """

    metadata: ModelMetadata | None = None
    labels: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    color_space: str | None = None
    custom_ops: tuple[str, ...] = ()


class FlatTable:
    """A flatbuffer table read by field slot (slot i lives at vtable offset 4 + 2 i).

    Reads the TFLite model and its Model Metadata without generated schema code; export and
    inspect use it too.
    """

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

    def string(self, slot: int) -> str | None:
        off = self._off(slot)
        return self._t.String(self._t.Pos + off).decode("utf-8") if off else None

    def table(self, slot: int) -> FlatTable | None:
        off = self._off(slot)
        return FlatTable(self._t.Bytes, self._t.Indirect(self._t.Pos + off)) if off else None

    def tables(self, slot: int) -> list[FlatTable]:
        off = self._off(slot)
        if not off:
            return []
        start = self._t.Vector(off)
        return [FlatTable(self._t.Bytes, self._t.Indirect(start + 4 * i)) for i in range(self._t.VectorLen(off))]

    def floats(self, slot: int) -> tuple[float, ...]:
        off = self._off(slot)
        if not off:
            return ()
        return tuple(float(v) for v in self._t.GetVectorAsNumpy(nt.Float32Flags, off))

    def raw_bytes(self, slot: int) -> bytes:
        off = self._off(slot)
        if not off:
            return b""
        start = self._t.Vector(off)
        return bytes(self._t.Bytes[start : start + self._t.VectorLen(off)])


def read_tflite_info(path: Path, data: bytes) -> FileInfo:
    """Read embedded edgetl.json, TFLite Model Metadata and custom ops from a .tflite file.

    Raises:
        EdgetlError: if the metadata inside the file is corrupt.
    """
    try:
        model = FlatTable.root(data)
        custom_ops = tuple(
            code for op in model.tables(_MODEL_OPERATOR_CODES) if (code := op.string(_OPCODE_CUSTOM_CODE))
        )
        archive = zip_entries(data)
        embedded = archive.get(METADATA_FILE_NAME)
        info = FileInfo(
            metadata=ModelMetadata.from_json(embedded) if embedded is not None else read_sidecar(path),
            custom_ops=custom_ops,
        )
        meta_buf = metadata_buffer(model, data)
        return _with_tflite_metadata(info, FlatTable.root(meta_buf), archive) if meta_buf else info
    except (IndexError, struct.error, UnicodeDecodeError, ValueError, TypeError) as e:
        raise EdgetlError(f"The model's embedded metadata is corrupt ({e}). Received: {path}") from e


def read_onnx_info(path: Path, props: dict[str, str]) -> FileInfo:
    """Read edgetl.json from ONNX `metadata_props` (as onnxruntime reports them), else the sidecar;
    a bare newline-joined `labels` key is used when neither exists."""
    embedded = props.get(METADATA_FILE_NAME)
    metadata = ModelMetadata.from_json(embedded) if embedded else read_sidecar(path)
    labels = parse_labels(props["labels"]) if "labels" in props else None
    return FileInfo(metadata=metadata, labels=labels)


def read_sidecar(path: Path) -> ModelMetadata | None:
    """Read `{stem}.json` beside the model, if there is one and it is edgetl's.

    A user's own `NAME.json` beside `NAME.tflite` (not JSON, or JSON without edgetl's keys) is
    not metadata: it is ignored, silently, as if it were not there.
    """
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        raw = sidecar.read_bytes()
    except OSError as e:
        raise EdgetlError(f"Cannot read the model's sidecar metadata. Received: {sidecar} ({e})") from e
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        return None
    return ModelMetadata.from_json(raw) if is_edgetl_metadata(data) else None


def zip_entries(data: bytes) -> dict[str, bytes]:
    """The associated files zipped onto the end of a .tflite (empty if there are none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}


def metadata_buffer(model: FlatTable, data: bytes) -> bytes | None:
    """The `TFLITE_METADATA` buffer's bytes, from inside the flatbuffer or at its file offset."""
    for entry in model.tables(_MODEL_METADATA):
        if entry.string(_METADATA_NAME) != "TFLITE_METADATA":
            continue
        buffer = model.tables(_MODEL_BUFFERS)[entry.scalar(_METADATA_BUFFER, nt.Uint32Flags)]
        offset = buffer.scalar(_BUFFER_OFFSET, nt.Uint64Flags)
        if offset > 1:  # models over 2 GB keep buffers after the flatbuffer
            return data[offset : offset + buffer.scalar(_BUFFER_SIZE, nt.Uint64Flags)]
        return buffer.raw_bytes(_BUFFER_DATA) or None
    return None


def _with_tflite_metadata(info: FileInfo, metadata: FlatTable, archive: dict[str, bytes]) -> FileInfo:
    subgraphs = metadata.tables(_MM_SUBGRAPHS)
    if not subgraphs:
        return info
    inputs, outputs = subgraphs[0].tables(_SG_INPUTS), subgraphs[0].tables(_SG_OUTPUTS)
    mean, std, color_space = _normalization(inputs[0]) if inputs else (None, None, None)
    labels = _axis_labels(outputs[0], archive) if outputs else None
    return FileInfo(
        metadata=info.metadata,
        labels=labels,
        mean=mean,
        std=std,
        color_space=color_space,
        custom_ops=info.custom_ops,
    )


def _normalization(tensor: FlatTable) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None, str | None]:
    mean = std = color_space = None
    for unit in tensor.tables(_TM_PROCESS_UNITS):
        if unit.scalar(_PU_OPTIONS_TYPE, nt.Uint8Flags) == _PROCESS_UNIT_NORMALIZATION:
            options = unit.table(_PU_OPTIONS)
            mean, std = options.floats(_NORM_MEAN), options.floats(_NORM_STD)
    content = tensor.table(_TM_CONTENT)
    if content is not None and content.scalar(_CONTENT_PROPS_TYPE, nt.Uint8Flags) == _CONTENT_IMAGE_PROPERTIES:
        color_space = _COLOR_SPACES.get(content.table(_CONTENT_PROPS).scalar(_IMAGE_PROPS_COLOR_SPACE, nt.Int8Flags))
    return mean or None, std or None, color_space


def _axis_labels(tensor: FlatTable, archive: dict[str, bytes]) -> tuple[str, ...] | None:
    for file in tensor.tables(_TM_ASSOCIATED_FILES):
        name = file.string(_AF_NAME)
        if file.scalar(_AF_TYPE, nt.Int8Flags) == _FILE_TENSOR_AXIS_LABELS and name in archive:
            return parse_labels(archive[name].decode("utf-8"))
    return None


def parse_labels(text: str) -> tuple[str, ...]:
    """One label per line, trailing blank lines ignored (as `edgetl.spec.read_labels`)."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return tuple(line.strip() for line in lines)
