"""How pixels become a model input: the contract every stage and every device shares.

`PreprocessingSpec` is written as `preprocessing.json` by training, embedded in every exported
artefact (inside `edgetl.json`), read by `edgetl.runtime` and by the Android demo. It is plain
stdlib so that the device runtime can import it without TensorFlow or Keras.

edgetl models take RGB pixels in the [0, 255] range (float32 for float models) and normalize
inside the network, so `mean` is 0 and `std` is 1 for them. Third-party models may carry other
values in their TFLite Model Metadata; the runtime computes ``(pixel - mean) / std`` per channel
before quantizing with the input tensor's scale and zero point.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError

SPEC_VERSION = 1
RESIZE_METHODS = ("bilinear",)
COLOR_ORDERS = ("RGB", "BGR")
LAYOUTS = ("NHWC", "NCHW")
METADATA_FILE_NAME = "edgetl.json"
"""Name of the JSON document embedded in each artefact (a TFLite associated file, an ONNX
metadata_props key) and written beside it as a sidecar."""


@dataclass(frozen=True, kw_only=True)
class PreprocessingSpec:
    """What a device must do to an image before the model sees it.

    Attributes:
        image_size: Model input as (height, width) in pixels.
        color_order: Channel order of the input, "RGB" or "BGR".
        mean: Per-channel value subtracted from the [0, 255] pixel.
        std: Per-channel divisor applied after subtracting `mean`.
        resize_method: How the decoded photo is resized to `image_size`: "bilinear" is
            Pillow's bilinear filter (antialiased when shrinking), applied after EXIF rotation
            and conversion to RGB, stretching to the target size without cropping.
        layout: "NHWC" or "NCHW".
        normalization: Human-readable note of what the network does inside (e.g. the
            backbone's own scaling), for people reading the metadata.
    """

    image_size: tuple[int, int]
    color_order: str = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize_method: str = "bilinear"
    layout: str = "NHWC"
    normalization: str = ""

    def __post_init__(self) -> None:
        height, width = self.image_size
        if height < 8 or width < 8:
            raise EdgetlError(f"image_size must be at least 8x8. Received: image_size={self.image_size}")
        if self.color_order not in COLOR_ORDERS:
            raise EdgetlError(f"color_order must be one of {COLOR_ORDERS}. Received: color_order={self.color_order!r}")
        if self.resize_method not in RESIZE_METHODS:
            raise EdgetlError(
                f"resize_method must be one of {RESIZE_METHODS}. Received: resize_method={self.resize_method!r}"
            )
        if self.layout not in LAYOUTS:
            raise EdgetlError(f"layout must be one of {LAYOUTS}. Received: layout={self.layout!r}")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (*self.mean, *self.std)):
            raise EdgetlError(f"mean and std must be finite numbers. Received: mean={self.mean}, std={self.std}")
        if any(s == 0 for s in self.std):
            raise EdgetlError(f"std must not contain 0. Received: std={self.std}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["image_size"] = list(self.image_size)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        data["spec_version"] = SPEC_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessingSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            kwargs = {k: v for k, v in data.items() if k in known}
            kwargs["image_size"] = tuple(int(v) for v in kwargs["image_size"])
            for key in ("mean", "std"):
                if key in kwargs:
                    kwargs[key] = tuple(float(v) for v in kwargs[key])
            return cls(**kwargs)
        except (KeyError, TypeError, ValueError) as e:
            raise EdgetlError(f"Preprocessing spec is malformed ({e}). Received: {data!r}") from e


@dataclass(frozen=True, kw_only=True)
class ModelMetadata:
    """Everything a model file carries about itself (`edgetl.json`).

    Attributes:
        labels: Class names, index i is output i.
        preprocessing: How to turn an image into the input tensor.
        format: Artefact format key ("keras", "tflite-int8", "onnx", ...).
        backbone: Backbone name the model was built on.
        source_run: Training run directory name the artefact came from.
        edgetl_version: Version of edgetl that wrote it.
    """

    labels: tuple[str, ...]
    preprocessing: PreprocessingSpec
    format: str = "keras"
    backbone: str = ""
    source_run: str = ""
    edgetl_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        check_labels(self.labels, f"metadata of {self.source_run or 'the model'}")
        data = {
            "labels": list(self.labels),
            "preprocessing": self.preprocessing.to_dict(),
            "format": self.format,
            "backbone": self.backbone,
            "source_run": self.source_run,
            "edgetl_version": self.edgetl_version,
            **({"extra": self.extra} if self.extra else {}),
        }
        return json.dumps(data, indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = METADATA_FILE_NAME) -> ModelMetadata:
        """Parse an `edgetl.json` document; `source` names the file in errors (a RUN_DIR's metadata.json)."""
        try:
            data = json.loads(text)
            return cls(
                labels=tuple(str(label) for label in data["labels"]),
                preprocessing=PreprocessingSpec.from_dict(data["preprocessing"]),
                format=str(data.get("format", "")),
                backbone=str(data.get("backbone", "")),
                source_run=str(data.get("source_run", "")),
                edgetl_version=str(data.get("edgetl_version", "")),
                extra=dict(data.get("extra", {})),
            )
        except KeyError as e:
            raise EdgetlError(f"Model metadata {source} is malformed: it has no {e.args[0]!r} key.") from e
        except (json.JSONDecodeError, TypeError, AttributeError) as e:
            raise EdgetlError(f"Model metadata {source} is malformed: {e}") from e


LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Control characters (C0, DEL, C1) and Unicode line separators: in a label they would break a
one-label-per-line file (Python's `splitlines` splits on several of them) or a terminal."""


def check_labels(labels: tuple[str, ...] | list[str], where: str) -> None:
    """Refuse labels that a one-per-line labels file cannot carry unchanged.

    Raises:
        EdgetlError: naming the first bad label (escaped) and `where` it came from.
    """
    for label in labels:
        problem = ""
        if LINE_BREAKING.search(label):
            problem = "contains a control character or line break"
        elif label != label.strip() or not label:
            problem = "is empty or starts or ends with whitespace"
        else:
            try:
                label.encode("utf-8")
            except UnicodeEncodeError:
                problem = "is not valid UTF-8"
        if problem:
            raise EdgetlError(f"The class name {printable(label)} {problem}, which a labels file (one name per line) "
                              f"cannot carry; rename it. Received: {printable(where)}")


def labels_text(labels: tuple[str, ...] | list[str], where: str = "labels") -> str:
    """A labels file's text: exactly one line per label (refusing labels that would break that)."""
    check_labels(labels, where)
    return "".join(f"{label}\n" for label in labels)


def escaped(text: str) -> str:
    """`text` with control characters and undecodable bytes written as escapes (no quotes): a
    label or description from a model file never reaches a terminal as raw escape sequences."""
    return "".join(ascii(c)[1:-1] if LINE_BREAKING.match(c) or "\udc80" <= c <= "\udcff" else c for c in str(text))


def printable(text: str) -> str:
    """`text` quoted, with control characters and undecodable bytes escaped: safe for a terminal."""
    return ascii(text) if LINE_BREAKING.search(text) or any("\udc80" <= c <= "\udcff" for c in text) else repr(text)


def first_few(items: Sequence[str], *, limit: int = 10, sep: str = ", ") -> str:
    """The first `limit` items joined, then "and N more": a message stays short at 1,000 classes.

    Thread-safe (a pure function).
    """
    more = len(items) - limit
    return sep.join(items[:limit]) + (f"{sep}and {more} more" if more > 0 else "")


def check_regular_file(path: Path, what: str) -> None:
    """Refuse, without opening it, a path that is not a regular file: a pipe would block the read
    forever, a device could be endless.

    Raises:
        EdgetlError: naming `what`, for a missing path or a pipe, device, socket or directory.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as e:
        raise EdgetlError(f"{what} not found. Received: {escaped(str(path))}") from e
    except OSError as e:
        raise EdgetlError(f"Cannot read the {what.lower()} ({e.strerror or e}). Received: {escaped(str(path))}") from e
    if stat.S_ISDIR(mode):
        raise EdgetlError(f"{what} expected, got a directory. Received: {escaped(str(path))}")
    if not stat.S_ISREG(mode):
        raise EdgetlError(f"{what} is not a regular file (a pipe, device or socket), which edgetl never opens. "
                          f"Received: {escaped(str(path))}")


METADATA_MARKER_KEYS = frozenset({"labels", "preprocessing", "edgetl_version"})
"""Keys every `edgetl.json` has (`ModelMetadata.to_json` always writes them): how a sidecar
`{stem}.json` is told apart from a user's own JSON file of the same name."""


def is_edgetl_metadata(data: Any) -> bool:
    """True when a parsed JSON document is edgetl's metadata, not some other JSON file."""
    return isinstance(data, dict) and METADATA_MARKER_KEYS <= data.keys()


def read_labels(path: Path) -> tuple[str, ...]:
    """Read a labels file: one class name per line, blank lines at the end ignored."""
    check_regular_file(Path(path), "Labels file")
    try:
        # Lines end at "\n" only: str.splitlines would also split at \x0b, \x1c-\x1e, \x85, \u2028...
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise EdgetlError(f"Cannot read labels file. Received: {path} ({e})") from e
    while lines and not lines[-1].strip():
        lines.pop()
    return tuple(line.strip() for line in lines)


def make_folder(path: Path, what: str, received: Path | None = None) -> Path:
    """`mkdir -p path`, or one clear EdgetlError naming `what` could not be created and why."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgetlError(f"Cannot create {what}: {e.strerror or e}. Received: {received or path}") from e
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file under a temporary name and rename it, so no reader sees half of it."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        raise EdgetlError(f"Cannot write {path}: {e.strerror or e}") from e


@contextlib.contextmanager
def atomic_path(path: Path, *, keep_suffix: bool = False) -> Iterator[Path]:
    """A hidden temporary name beside `path` to write to: renamed over `path` when the block
    ends, removed if it raises, so no reader sees half a file and a failed write leaves nothing.

    `keep_suffix` ends the temporary name like `path` (".png", ".weights.h5") for writers that
    choose the format by the name. The process id keeps concurrent writers of one file apart.
    """
    path = Path(path)
    tmp = hidden_sibling(path, f".{os.getpid()}.partial{''.join(path.suffixes) if keep_suffix else ''}")
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):  # on a read-only folder, even this fails
            tmp.unlink(missing_ok=True)
        raise


NAME_MAX = 255
"""Longest file name, in bytes, on Linux and macOS file systems."""
TAG_ROOM = 40
"""Bytes kept free for what edgetl appends to a hidden sibling's name (".edgetl-staging-4194304")."""


def hidden_sibling(path: Path, tag: str) -> Path:
    """`.NAME{tag}` beside `path`: where edgetl stages, locks or half-writes `path`.

    A NAME too long to leave `TAG_ROOM` bytes (an --out of 247-255 characters crashed with
    "File name too long") is cut and ends in a hash of the whole name, so the same `path` always
    gets the same sibling and two long names sharing a prefix get different ones. Thread-safe.
    """
    path = Path(path)
    room = NAME_MAX - 1 - max(TAG_ROOM, len(os.fsencode(tag)))
    stem = path.name
    if len(os.fsencode(stem)) > room:
        digest = hashlib.sha256(os.fsencode(stem)).hexdigest()[:12]
        while len(os.fsencode(stem)) > room - len(digest) - 1:
            stem = stem[:-1]
        stem = f"{stem}~{digest}"
    return path.with_name(f".{stem}{tag}")
