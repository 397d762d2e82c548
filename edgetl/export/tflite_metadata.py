"""Standard TFLite Model Metadata, written and read by hand with `flatbuffers`.

The layout follows tflite-support's `metadata_schema.fbs` (schema 1.0.0, file identifier
``M001``) and its `MetadataPopulator`:

1. a `ModelMetadata` flatbuffer (one `SubGraphMetadata`; the input tensor has `ImageProperties`
   RGB and a `NormalizationOptions` process unit; the output tensor has `labels.txt` as an
   associated file of type TENSOR_AXIS_LABELS) is stored in a new model buffer, referenced by a
   `Metadata` entry named ``TFLITE_METADATA`` in the TFLite `Model` table;
2. the associated files (`labels.txt` and `edgetl.json`) are appended to the end of the file as a
   zip archive, so `zipfile.ZipFile(model_path)` lists them.

Android's Task Library, MediaPipe, Coral's tools and `edgetl.runtime` all read this layout. Only
`flatbuffers` and the TFLite schema module are needed (no TensorFlow, no tflite-support, which
has no wheels for current Python). Field numbers below are the slot indices of each table in
`metadata_schema.fbs`; flatbuffers only ever appends fields, so they are stable.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass
from typing import Any

from edgetl.errors import EdgetlError
from edgetl.runtime.metadata import FlatTable, metadata_buffer, zip_entries
from edgetl.spec import METADATA_FILE_NAME, ModelMetadata, labels_text

METADATA_FIELD_NAME = "TFLITE_METADATA"
METADATA_FILE_IDENTIFIER = b"M001"
TFLITE_FILE_IDENTIFIER = b"TFL3"
LABELS_FILE_NAME = "labels.txt"
MIN_PARSER_VERSION = "1.0.0"
"""Every field written here exists since metadata schema 1.0.0."""

# Enum values from metadata_schema.fbs.
_ASSOCIATED_FILE_TENSOR_AXIS_LABELS = 2
_COLOR_SPACE = {"RGB": 1, "GRAYSCALE": 2}
_CONTENT_FEATURE_PROPERTIES = 1  # union ContentProperties: NONE=0, Feature=1, Image=2, BoundingBox=3
_CONTENT_IMAGE_PROPERTIES = 2
_PROCESS_UNIT_NORMALIZATION = 1  # union ProcessUnitOptions: NONE=0, NormalizationOptions=1, ...
_ASSOCIATED_FILE_TYPES = {0: "UNKNOWN", 1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS", 3: "TENSOR_VALUE_LABELS",
                          4: "TENSOR_AXIS_SCORE_CALIBRATION", 5: "VOCABULARY"}


def build_metadata_buffer(meta: ModelMetadata, *, model_name: str, description: str) -> bytes:
    """Serialize the standard `ModelMetadata` flatbuffer for an image classifier.

    Args:
        meta: The artefact's edgetl metadata (labels and preprocessing are taken from it).
        model_name: Human-readable model name (`ModelMetadata.name`).
        description: One sentence on what the model does.

    Returns:
        The flatbuffer bytes, with file identifier ``M001``.
    """
    import flatbuffers
    import numpy as np

    spec = meta.preprocessing
    b = flatbuffers.Builder(1024)

    def table(fields: list[tuple[str, int, Any]]) -> int:
        """Build one table from (kind, slot, value) rows; offsets must already exist."""
        b.StartObject(max(slot for _, slot, _ in fields) + 1)
        for kind, slot, value in fields:
            if kind == "offset":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "byte":
                b.PrependInt8Slot(slot, value, 0)
            elif kind == "ubyte":
                b.PrependUint8Slot(slot, value, 0)
            elif kind == "uint":
                b.PrependUint32Slot(slot, value, 0)
        return b.EndObject()

    def vector_of(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def floats(values: tuple[float, ...]) -> int:
        return b.CreateNumpyVector(np.asarray(values, dtype=np.float32))

    # AssociatedFile: name 0, description 1, type 2, locale 3.
    labels_file = table([
        ("offset", 0, b.CreateString(LABELS_FILE_NAME)),
        ("offset", 1, b.CreateString("Class labels, one per line; line i names output i.")),
        ("byte", 2, _ASSOCIATED_FILE_TENSOR_AXIS_LABELS),
    ])
    # ImageSize: width 0, height 1. ImageProperties: color_space 0, default_size 1.
    height, width = spec.image_size
    image_size = table([("uint", 0, width), ("uint", 1, height)])
    image_props = table([("byte", 0, _COLOR_SPACE["RGB"]), ("offset", 1, image_size)])
    # Content: content_properties_type 0, content_properties 1, range 2.
    input_content = table([("ubyte", 0, _CONTENT_IMAGE_PROPERTIES), ("offset", 1, image_props)])
    # NormalizationOptions: mean 0, std 1. ProcessUnit: options_type 0, options 1.
    normalization = table([("offset", 0, floats(spec.mean)), ("offset", 1, floats(spec.std))])
    process_unit = table([("ubyte", 0, _PROCESS_UNIT_NORMALIZATION), ("offset", 1, normalization)])
    # Stats: max 0, min 1 (the input value range before normalization).
    input_stats = table([("offset", 0, floats((255.0,))), ("offset", 1, floats((0.0,)))])
    # TensorMetadata: name 0, description 1, dimension_names 2, content 3, process_units 4,
    # stats 5, associated_files 6.
    input_tensor = table([
        ("offset", 0, b.CreateString("image")),
        ("offset", 1, b.CreateString(
            f"RGB image {width}x{height}, pixel values 0-255, resized with {spec.resize_method} "
            f"(stretch, no crop); normalized as (x - mean) / std.")),
        ("offset", 3, input_content),
        ("offset", 4, vector_of([process_unit])),
        ("offset", 5, input_stats),
    ])
    feature_props = _empty_table(b)  # FeatureProperties has no fields
    output_content = table([("ubyte", 0, _CONTENT_FEATURE_PROPERTIES), ("offset", 1, feature_props)])
    output_stats = table([("offset", 0, floats((1.0,))), ("offset", 1, floats((0.0,)))])
    output_tensor = table([
        ("offset", 0, b.CreateString("probability")),
        ("offset", 1, b.CreateString(f"Probabilities of the {len(meta.labels)} labels.")),
        ("offset", 3, output_content),
        ("offset", 5, output_stats),
        ("offset", 6, vector_of([labels_file])),
    ])
    # SubGraphMetadata: name 0, description 1, input_tensor_metadata 2, output_tensor_metadata 3.
    subgraph = table([
        ("offset", 0, b.CreateString(model_name)),
        ("offset", 2, vector_of([input_tensor])),
        ("offset", 3, vector_of([output_tensor])),
    ])
    # ModelMetadata: name 0, description 1, version 2, subgraph_metadata 3, author 4, license 5,
    # associated_files 6, min_parser_version 7.
    root = table([
        ("offset", 0, b.CreateString(model_name)),
        ("offset", 1, b.CreateString(description)),
        ("offset", 2, b.CreateString(meta.edgetl_version or "")),
        ("offset", 3, vector_of([subgraph])),
        ("offset", 4, b.CreateString("edgetl")),
        ("offset", 7, b.CreateString(MIN_PARSER_VERSION)),
    ])
    b.Finish(root, file_identifier=METADATA_FILE_IDENTIFIER)
    return bytes(b.Output())


def _empty_table(b: Any) -> int:
    b.StartObject(0)
    return b.EndObject()


def embed(model: bytes, meta: ModelMetadata, *, model_name: str, description: str) -> bytes:
    """Return `model` with standard metadata inserted and `labels.txt` + `edgetl.json` zipped on.

    An existing ``TFLITE_METADATA`` entry is replaced, as `MetadataPopulator` does; any zip
    already appended to `model` is dropped (the flatbuffer is re-serialized from its root).

    Raises:
        EdgetlError: if `model` is not a TFLite flatbuffer.
    """
    import flatbuffers
    import numpy as np

    schema = _schema()
    if model[4:8] != TFLITE_FILE_IDENTIFIER:
        raise EdgetlError("Not a TFLite model (file identifier is not 'TFL3'); cannot add metadata.")
    model_t = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    buffer_t = schema.BufferT()
    buffer_t.data = np.frombuffer(build_metadata_buffer(meta, model_name=model_name, description=description), np.uint8)
    model_t.buffers = model_t.buffers or []
    model_t.metadata = model_t.metadata or []
    existing = [m for m in model_t.metadata if _decode(m.name) == METADATA_FIELD_NAME]
    if existing:
        model_t.buffers[existing[0].buffer] = buffer_t
    else:
        model_t.buffers.append(buffer_t)
        entry = schema.MetadataT()
        entry.name = METADATA_FIELD_NAME
        entry.buffer = len(model_t.buffers) - 1
        model_t.metadata.append(entry)
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(model_t.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    out = io.BytesIO()
    out.write(builder.Output())
    # Mode "a" on a stream that is not yet a zip appends one after the existing bytes, exactly
    # like MetadataPopulator._populate_associated_files; offsets in the central directory stay
    # relative to the archive start, so zipfile and the Android zip reader both open it.
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(LABELS_FILE_NAME, labels_text(meta.labels))
        zf.writestr(METADATA_FILE_NAME, meta.to_json())
    return out.getvalue()


def _schema() -> Any:
    """The TFLite schema module (object API), from the runtime package or TensorFlow."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError as e:
            raise EdgetlError(
                "Reading or writing TFLite metadata needs the TFLite schema module. "
                "Install it with: pip install 'edgetl[runtime]'"
            ) from e
    return schema


def _decode(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else value


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TfliteMetadata:
    """What the standard metadata of a .tflite says (written by edgetl or any other tool).

    Attributes:
        name: `ModelMetadata.name`.
        description: `ModelMetadata.description`.
        version: `ModelMetadata.version`.
        min_parser_version: The metadata parser version needed to read it.
        input_color_space: "RGB", "GRAYSCALE" or "" when absent.
        input_size: (height, width) from `ImageProperties.default_size`, or None.
        mean: Normalization mean per channel (empty when absent).
        std: Normalization std per channel (empty when absent).
        labels_file: Name of the output's TENSOR_AXIS_LABELS associated file, or "".
        associated_files: Every associated file the metadata records, as (name, type).
        packed_files: Names of the files zipped onto the end of the model.
    """

    name: str
    description: str
    version: str
    min_parser_version: str
    input_color_space: str
    input_size: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels_file: str
    associated_files: tuple[tuple[str, str], ...]
    packed_files: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "version": self.version,
            "min_parser_version": self.min_parser_version, "input_color_space": self.input_color_space,
            "input_size": list(self.input_size) if self.input_size else None,
            "mean": list(self.mean), "std": list(self.std), "labels_file": self.labels_file,
            "associated_files": [list(f) for f in self.associated_files],
            "packed_files": list(self.packed_files),
        }


def read_metadata(model: bytes) -> TfliteMetadata | None:
    """Parse the standard metadata of a TFLite model; None when the model has none.

    Raises:
        EdgetlError: if the metadata buffer is present but is not a metadata flatbuffer.
    """
    import flatbuffers.number_types as N

    try:
        raw = metadata_buffer(FlatTable.root(model), model)
        if raw is None:
            return None
        if raw[4:8] != METADATA_FILE_IDENTIFIER:
            raise EdgetlError("The model's TFLITE_METADATA buffer is not TFLite Model Metadata (identifier is not 'M001').")
        root = FlatTable.root(raw)
        files: list[tuple[str, str]] = [_file(f) for f in root.tables(6)]
        color, size, mean, std, labels_file = "", None, (), (), ""
        for sub in root.tables(3)[:1]:
            files += [_file(f) for f in sub.tables(4)]
            for tensor in sub.tables(2)[:1]:
                files += [_file(f) for f in tensor.tables(6)]
                content = tensor.table(3)
                if content and content.scalar(0, N.Uint8Flags) == _CONTENT_IMAGE_PROPERTIES:
                    props = content.table(1)
                    if props:
                        color = {v: k for k, v in _COLOR_SPACE.items()}.get(props.scalar(0, N.Int8Flags), "UNKNOWN")
                        dims = props.table(1)
                        if dims and dims.scalar(0, N.Uint32Flags):
                            size = (dims.scalar(1, N.Uint32Flags), dims.scalar(0, N.Uint32Flags))
                for unit in tensor.tables(4):
                    if unit.scalar(0, N.Uint8Flags) == _PROCESS_UNIT_NORMALIZATION and unit.table(1):
                        mean, std = unit.table(1).floats(0), unit.table(1).floats(1)
            for tensor in sub.tables(3)[:1]:
                out_files = [_file(f) for f in tensor.tables(6)]
                files += out_files
                labels_file = next((n for n, t in out_files if t == "TENSOR_AXIS_LABELS"), "")
        return TfliteMetadata(
            name=root.string(0) or "", description=root.string(1) or "", version=root.string(2) or "",
            min_parser_version=root.string(7) or "", input_color_space=color, input_size=size,
            mean=mean, std=std, labels_file=labels_file, associated_files=tuple(files),
            packed_files=tuple(zip_entries(model)),
        )
    except (IndexError, struct.error, UnicodeDecodeError, ValueError, TypeError) as e:  # offsets outside the buffer
        raise EdgetlError(f"The model's TFLite Model Metadata is corrupt ({e}).") from e


def _file(table: FlatTable) -> tuple[str, str]:
    import flatbuffers.number_types as N

    return table.string(0) or "", _ASSOCIATED_FILE_TYPES.get(table.scalar(2, N.Int8Flags), "UNKNOWN")
