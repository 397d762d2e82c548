"""Standard TFLite Model Metadata, written by hand with `flatbuffers`.

The layout follows tflite-support's `metadata_schema.fbs` (schema 1.0.0, file identifier
``M001``) and its `MetadataPopulator`:

1. a `ModelMetadata` flatbuffer (one `SubGraphMetadata`; the input tensor has `ImageProperties`
   RGB and a `NormalizationOptions` process unit; the output tensor has `labels.txt` as an
   associated file of type TENSOR_AXIS_LABELS) is stored in a new model buffer, referenced by a
   `Metadata` entry named ``TFLITE_METADATA`` in the TFLite `Model` table;
2. the associated files (`labels.txt` and `edgetl.json`) are appended to the end of the file as a
   zip archive, so `zipfile.ZipFile(model_path)` lists them.

Android's Task Library, MediaPipe, Coral's tools and `edgetl.runtime` all read this layout;
`edgetl.runtime.tflite_reader` is edgetl's one reader of it and names the slots written here. Only
`flatbuffers` and the TFLite schema module are needed (no TensorFlow, no tflite-support, which
has no wheels for current Python).
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from edgetl.errors import EdgetlError
from edgetl.runtime.tflite_reader import (
    AF_DESCRIPTION,
    AF_NAME,
    AF_TYPE,
    COLOR_SPACE_RGB,
    CONTENT_FEATURE_PROPERTIES,
    CONTENT_IMAGE_PROPERTIES,
    CONTENT_PROPS,
    CONTENT_PROPS_TYPE,
    IMAGE_PROPS_COLOR_SPACE,
    IMAGE_PROPS_DEFAULT_SIZE,
    IMAGE_SIZE_HEIGHT,
    IMAGE_SIZE_WIDTH,
    METADATA_IDENTIFIER,
    METADATA_NAME,
    MM_AUTHOR,
    MM_DESCRIPTION,
    MM_MIN_PARSER_VERSION,
    MM_NAME,
    MM_SUBGRAPHS,
    MM_VERSION,
    NORM_MEAN,
    NORM_STD,
    PROCESS_UNIT_NORMALIZATION,
    PU_OPTIONS,
    PU_OPTIONS_TYPE,
    SG_INPUTS,
    SG_NAME,
    SG_OUTPUTS,
    STATS_MAX,
    STATS_MIN,
    TENSOR_AXIS_LABELS,
    TFLITE_IDENTIFIER,
    TM_ASSOCIATED_FILES,
    TM_CONTENT,
    TM_DESCRIPTION,
    TM_NAME,
    TM_PROCESS_UNITS,
    TM_STATS,
)
from edgetl.spec import METADATA_FILE_NAME, ModelMetadata, labels_text

LABELS_FILE_NAME = "labels.txt"
MIN_PARSER_VERSION = "1.0.0"
"""Every field written here exists since metadata schema 1.0.0."""


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

    labels_file = table([
        ("offset", AF_NAME, b.CreateString(LABELS_FILE_NAME)),
        ("offset", AF_DESCRIPTION, b.CreateString("Class labels, one per line; line i names output i.")),
        ("byte", AF_TYPE, TENSOR_AXIS_LABELS),
    ])
    height, width = spec.image_size
    image_size = table([("uint", IMAGE_SIZE_WIDTH, width), ("uint", IMAGE_SIZE_HEIGHT, height)])
    image_props = table(
        [("byte", IMAGE_PROPS_COLOR_SPACE, COLOR_SPACE_RGB), ("offset", IMAGE_PROPS_DEFAULT_SIZE, image_size)]
    )
    input_content = table(
        [("ubyte", CONTENT_PROPS_TYPE, CONTENT_IMAGE_PROPERTIES), ("offset", CONTENT_PROPS, image_props)]
    )
    normalization = table([("offset", NORM_MEAN, floats(spec.mean)), ("offset", NORM_STD, floats(spec.std))])
    process_unit = table(
        [("ubyte", PU_OPTIONS_TYPE, PROCESS_UNIT_NORMALIZATION), ("offset", PU_OPTIONS, normalization)]
    )
    # The input value range before normalization.
    input_stats = table([("offset", STATS_MAX, floats((255.0,))), ("offset", STATS_MIN, floats((0.0,)))])
    input_tensor = table([
        ("offset", TM_NAME, b.CreateString("image")),
        ("offset", TM_DESCRIPTION, b.CreateString(
            f"RGB image {width}x{height}, pixel values 0-255, resized with {spec.resize_method} "
            f"(stretch, no crop); normalized as (x - mean) / std.")),
        ("offset", TM_CONTENT, input_content),
        ("offset", TM_PROCESS_UNITS, vector_of([process_unit])),
        ("offset", TM_STATS, input_stats),
    ])
    feature_props = _empty_table(b)  # FeatureProperties has no fields
    output_content = table(
        [("ubyte", CONTENT_PROPS_TYPE, CONTENT_FEATURE_PROPERTIES), ("offset", CONTENT_PROPS, feature_props)]
    )
    output_stats = table([("offset", STATS_MAX, floats((1.0,))), ("offset", STATS_MIN, floats((0.0,)))])
    output_tensor = table([
        ("offset", TM_NAME, b.CreateString("probability")),
        ("offset", TM_DESCRIPTION, b.CreateString(f"Probabilities of the {len(meta.labels)} labels.")),
        ("offset", TM_CONTENT, output_content),
        ("offset", TM_STATS, output_stats),
        ("offset", TM_ASSOCIATED_FILES, vector_of([labels_file])),
    ])
    subgraph = table([
        ("offset", SG_NAME, b.CreateString(model_name)),
        ("offset", SG_INPUTS, vector_of([input_tensor])),
        ("offset", SG_OUTPUTS, vector_of([output_tensor])),
    ])
    root = table([
        ("offset", MM_NAME, b.CreateString(model_name)),
        ("offset", MM_DESCRIPTION, b.CreateString(description)),
        ("offset", MM_VERSION, b.CreateString(meta.edgetl_version or "")),
        ("offset", MM_SUBGRAPHS, vector_of([subgraph])),
        ("offset", MM_AUTHOR, b.CreateString("edgetl")),
        ("offset", MM_MIN_PARSER_VERSION, b.CreateString(MIN_PARSER_VERSION)),
    ])
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
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
    if model[4:8] != TFLITE_IDENTIFIER:
        raise EdgetlError("Not a TFLite model (file identifier is not 'TFL3'); cannot add metadata.")
    model_t = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    buffer_t = schema.BufferT()
    buffer_t.data = np.frombuffer(build_metadata_buffer(meta, model_name=model_name, description=description), np.uint8)
    model_t.buffers = model_t.buffers or []
    model_t.metadata = model_t.metadata or []
    existing = [m for m in model_t.metadata if _decode(m.name) == METADATA_NAME]
    if existing:
        model_t.buffers[existing[0].buffer] = buffer_t
    else:
        model_t.buffers.append(buffer_t)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model_t.buffers) - 1
        model_t.metadata.append(entry)
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(model_t.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
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
    """The TFLite schema module (object API) for writing, from the runtime package or TensorFlow."""
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
