"""Read what a model file says about itself, without TensorFlow.

Sources, most specific first (docs/contract.md):

1. `edgetl.json` embedded in the file: a zip entry appended to a .tflite, or the ONNX
   `metadata_props` key `edgetl.json`;
2. standard TFLite Model Metadata (`TFLITE_METADATA`, as written by tflite-support and found in
   Coral's models): the TENSOR_AXIS_LABELS associated file of the output, and the input's
   NormalizationOptions mean/std;
3. the sidecar `{stem}.json` beside the model.

The TFLite flatbuffers are read by `edgetl.runtime.tflite_reader`, the one reader of .tflite files.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.runtime.tflite_reader import FlatTable, InputNormalization, TfliteMetadata, custom_op_names, read_metadata
from edgetl.spec import METADATA_FILE_NAME, ModelMetadata, is_edgetl_metadata, printable


@dataclass(frozen=True)
class FileInfo:
    """What one model file carries about itself.

    Attributes:
        metadata: edgetl's own `edgetl.json` (embedded or sidecar), if any.
        metadata_source: Where `metadata` was read, for messages: "the edgetl.json inside
            NAME" or "the sidecar NAME.json".
        labels: Labels from standard TFLite Model Metadata, if any.
        normalization: The input's normalization and colour space from TFLite Model Metadata.
        custom_ops: Custom operator names the TFLite graph uses (e.g. "edgetpu-custom-op").
    """

    metadata: ModelMetadata | None = None
    metadata_source: str = ""
    labels: tuple[str, ...] | None = None
    normalization: InputNormalization = field(default_factory=InputNormalization)
    custom_ops: tuple[str, ...] = ()


def read_tflite_info(path: Path, data: bytes) -> FileInfo:
    """Read embedded edgetl.json, TFLite Model Metadata and custom ops from a .tflite file.

    Raises:
        EdgetlError: if the metadata inside the file is corrupt.
    """
    try:
        custom_ops = custom_op_names(FlatTable.root(data))
        archive = zip_entries(data)
        embedded = archive.get(METADATA_FILE_NAME)
        metadata, source = _edgetl_metadata(embedded, path)
        standard = read_metadata(data, source=str(path))
        if standard is None:
            return FileInfo(metadata=metadata, metadata_source=source, custom_ops=custom_ops)
        labels = _axis_labels(standard, archive)
        return FileInfo(metadata=metadata, metadata_source=source, labels=labels, normalization=standard.input,
                        custom_ops=custom_ops)
    except (IndexError, struct.error, UnicodeDecodeError, ValueError, TypeError) as e:
        raise EdgetlError(f"The model's embedded metadata is corrupt ({e}). Received: {path}") from e


def read_onnx_info(path: Path, props: dict[str, str]) -> FileInfo:
    """Read edgetl.json from ONNX `metadata_props` (as onnxruntime reports them), else the sidecar;
    a bare newline-joined `labels` key is used when neither exists."""
    metadata, source = _edgetl_metadata(props.get(METADATA_FILE_NAME) or None, path)
    labels = parse_labels(props["labels"]) if "labels" in props else None
    return FileInfo(metadata=metadata, metadata_source=source, labels=labels)


def _edgetl_metadata(embedded: str | bytes | None, path: Path) -> tuple[ModelMetadata | None, str]:
    """The embedded edgetl.json, else the sidecar, and where it was read (for messages)."""
    if embedded is not None:
        return ModelMetadata.from_json(embedded), f"the {METADATA_FILE_NAME} inside {printable(path.name)}"
    return read_sidecar(path), f"the sidecar {printable(path.with_suffix('.json').name)}"


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


MAX_EMBEDDED_FILE_BYTES = 4 << 20
"""Most bytes read (decompressed) from one file zipped onto a .tflite: labels and edgetl.json
are kilobytes; a few MB of deflated zeros would otherwise inflate to gigabytes on a Pi."""
MAX_EMBEDDED_FILES = 64


def zip_entries(data: bytes) -> dict[str, bytes]:
    """The associated files zipped onto the end of a .tflite (empty if there are none).

    Each file is read streaming, at most `MAX_EMBEDDED_FILE_BYTES`; a larger, unreadable or
    excess file is left out with a warning, so a zip bomb never allocates.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = {}
            for number, info in enumerate(archive.infolist()):
                content = _bounded_entry(archive, info) if number < MAX_EMBEDDED_FILES else None
                if content is None:
                    warnings.warn(f"Ignored the file {info.filename!r} zipped into the model: larger than "
                                  f"{MAX_EMBEDDED_FILE_BYTES >> 20} MB, unreadable, or beyond the first "
                                  f"{MAX_EMBEDDED_FILES}.", stacklevel=2)
                    continue
                entries[info.filename] = content
            return entries
    except zipfile.BadZipFile:
        return {}


def _axis_labels(standard: TfliteMetadata, archive: dict[str, bytes]) -> tuple[str, ...] | None:
    """The labels of the output's TENSOR_AXIS_LABELS file, when it is packed in the model."""
    if standard.labels_file not in archive:
        return None
    return parse_labels(archive[standard.labels_file].decode("utf-8"))


def _bounded_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
    if info.file_size > MAX_EMBEDDED_FILE_BYTES:  # the header can lie: the read is bounded too
        return None
    try:
        with archive.open(info) as handle:
            content = handle.read(MAX_EMBEDDED_FILE_BYTES + 1)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error, OSError):
        return None
    return content if len(content) <= MAX_EMBEDDED_FILE_BYTES else None


def parse_labels(text: str) -> tuple[str, ...]:
    """One label per line, trailing blank lines ignored (as `edgetl.spec.read_labels`)."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return tuple(line.strip() for line in lines)
