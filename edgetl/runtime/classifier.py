"""`Classifier`: photos in, top-k labels out, on one interpreter, with no TensorFlow.

The tensor path is split into the three steps the golden vectors and the Android demo check one
by one: `quantize_input` (uint8 pixels -> the exact input tensor), `invoke_raw` (the interpreter)
and `dequantize_output` (raw output -> float32 scores).
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgetl.errors import EdgetlError
from edgetl.runtime.backends import EDGETPU_INSTALL, Backend, TensorInfo, open_backend
from edgetl.runtime.image import ImageSource, load_pixels
from edgetl.runtime.input_plan import input_plan, look_up, shift_pixels
from edgetl.runtime.metadata import FileInfo, read_onnx_info, read_tflite_info
from edgetl.runtime.pipeline import decode_ahead, interpreter_lanes, map_ahead
from edgetl.runtime.tflite_reader import EDGETPU_CUSTOM_OP, TFLITE_IDENTIFIER
from edgetl.spec import ModelMetadata, PreprocessingSpec, check_regular_file, printable, read_labels

MODEL_SUFFIXES = (".tflite", ".onnx")

BATCH_PIXELS = 300_000
"""Input pixels per interpreter call, at most (32 photos at 96 px, 5 at 224 px): `run_pixels`
feeds a larger batch in chunks. One dynamic batch of 1,000 photos at 96 px took 2 GB (about
220 bytes of tensors per input pixel, kept by the interpreter after the call); a chunk of this
size takes about 66 MB."""


@dataclass(frozen=True)
class Prediction:
    """One ranked class: its output index, its label and its score (a probability for edgetl models).

    Immutable, so thread-safe.
    """

    index: int
    label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        # A NaN or infinite score (a broken model) is null: the JSON stays valid.
        return {"label": self.label, "index": self.index, "score": self.score if math.isfinite(self.score) else None}


class Classifier:
    """An image classifier file (.tflite or .onnx) ready to run on photos.

    Build it with `Classifier.from_file`. Attributes: `path`, `labels`, `spec`, `metadata`,
    `input_info`, `output_info`, `backend` (the interpreter's name), `threads`.

    Thread-safe: one classifier may serve a web handler, a camera thread and a UI thread at
    once, and each call gets its own photo's scores. Each interpreter runs one call at a time
    (TFLite under a lock, ONNX Runtime by itself), so concurrent calls on one TFLite
    classifier take turns on it; `classify` on several photos still fills the cores with its
    twin interpreters. The model's bytes are read once: every interpreter, the twins included,
    runs the model as it was when the classifier was opened, whatever later happens to the file.
    """

    def __init__(
        self,
        path: Path,
        backend: Backend,
        *,
        labels: tuple[str, ...],
        spec: PreprocessingSpec,
        metadata: ModelMetadata | None,
        threads: int | None = None,
        model: bytes | None = None,
    ) -> None:
        self.path = path
        self.threads = threads
        self.labels = labels
        self.spec = spec
        self.metadata = metadata
        self._backend = backend
        self.backend = backend.name
        self.input_info = dataclasses.replace(backend.input, layout=spec.layout)
        self.output_info = dataclasses.replace(backend.output, layout="NC")
        self._plan = input_plan(spec, self.input_info)
        self._model = model
        self._twins: list[Classifier] = []
        self._twins_lock = threading.Lock()
        height, width = spec.image_size
        self._chunk = max(1, BATCH_PIXELS // (height * width)) if backend.dynamic_batch else backend.input.shape[0]

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        threads: int | None = None,
        delegate: str | None = None,
        labels: str | Path | None = None,
    ) -> Classifier:
        """Open a model and read its labels and preprocessing from the file itself.

        Args:
            path: A .tflite or .onnx classifier.
            threads: Interpreter threads. Defaults to `None` (the interpreter's default).
            delegate: "edgetpu" to run Edge TPU-compiled models through `libedgetpu.so.1`.
                Defaults to `None` (CPU).
            labels: A labels file (one per line) overriding the model's own labels.
                Defaults to `None`.

        Returns:
            The classifier.

        Raises:
            EdgetlError: if the file is missing, empty, corrupt or of the wrong format, its input
                is not an image, it needs the Edge TPU delegate, or its metadata is malformed.
        """
        path = Path(path)
        data = _read_model_bytes(path)
        backend = open_backend(path, threads=threads, delegate=delegate, model=data)
        if path.suffix.lower() == ".onnx":
            info = read_onnx_info(path, backend.metadata_props)
        else:
            info = read_tflite_info(path, data)
        if EDGETPU_CUSTOM_OP in info.custom_ops and delegate != "edgetpu":
            raise EdgetlError(
                f"This model is compiled for the Edge TPU and needs its delegate. Received: {path.name} "
                f"with delegate={delegate!r}. Fix: {EDGETPU_INSTALL}"
            )
        backend.prepare()
        spec = _resolve_spec(info, backend.input, path)
        num_classes = _num_classes(backend.output, path)
        labels = _resolve_labels(info, labels, num_classes, path)
        return cls(path, backend, labels=labels, spec=spec, metadata=info.metadata, threads=threads,
                   model=data if backend.replicable else None)

    def quantize_input(self, pixels: np.ndarray) -> np.ndarray:
        """Turn uint8 pixels (N, H, W, 3) into the exact tensor the interpreter is fed.

        Float inputs get ``(pixel - mean) / std`` in float32. Quantized inputs get
        ``round(((pixel - mean) / std) / scale + zero_point)`` (float64, clipped to the dtype),
        or the exact integer shift when that map is the identity within one step.
        """
        self._check_pixels(pixels)
        plan = self._plan
        if plan.shift is not None:
            tensor = shift_pixels(pixels, plan.shift, plan.dtype)
        elif plan.table is None:
            tensor = pixels.astype(plan.dtype)
        else:
            tensor = look_up(plan.table, pixels)
        return np.ascontiguousarray(tensor.transpose(0, 3, 1, 2)) if plan.nchw else tensor

    def invoke_raw(self, tensor: np.ndarray) -> np.ndarray:
        """Run the interpreter on an input tensor and return its raw output (ints for quantized models).

        A model with a fixed batch of 1 runs a larger batch one item at a time. A tensor of another
        type or image shape is refused before the interpreter sees it: a failed resize used to
        leave the interpreter at the wrong shape for every later call.
        """
        height, width = self.spec.image_size
        item = (3, height, width) if self._plan.nchw else (height, width, 3)
        if not isinstance(tensor, np.ndarray) or tensor.dtype != self._plan.dtype or tensor.shape[1:] != item:
            got = f"{tensor.dtype} {tensor.shape}" if isinstance(tensor, np.ndarray) else type(tensor).__name__
            raise EdgetlError(f"The input tensor must be {self._plan.dtype} of shape (N, {', '.join(map(str, item))}) "
                              f"for this model. Received: {got}")
        batch = tensor.shape[0]
        if batch == self.input_info.shape[0] or self._backend.dynamic_batch:
            return self._backend.run(tensor)
        if self.input_info.shape[0] != 1 or batch < 1:
            raise EdgetlError(
                f"Batch size must be {self.input_info.shape[0]} for this model. Received: tensor shape {tensor.shape}"
            )
        return np.concatenate([self._backend.run(tensor[i : i + 1]) for i in range(batch)])

    def invoke_last(self) -> None:
        """Run the interpreter again on the tensor last fed, with no conversion at all.

        The benchmark's baseline: the runner's overhead is `run_pixels` time over this.
        """
        self._backend.invoke()

    def dequantize_output(self, raw: np.ndarray) -> np.ndarray:
        """Raw output -> float32 scores (N, C): ``(raw - zero_point) * scale`` for quantized outputs."""
        raw = raw.reshape(raw.shape[0], -1)
        if self.output_info.quantized:
            return (
                (raw.astype(np.float32) - np.float32(self.output_info.zero_point)) * np.float32(self.output_info.scale)
            )
        return raw.astype(np.float32, copy=False)

    def run_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels (N, H, W, 3) -> float32 scores (N, C), fed in chunks of `BATCH_PIXELS`."""
        self._check_pixels(pixels)
        if len(pixels) <= self._chunk:
            return self.dequantize_output(self.invoke_raw(self.quantize_input(pixels)))
        chunks = range(0, len(pixels), self._chunk)
        return np.concatenate([self.run_pixels(pixels[i : i + self._chunk]) for i in chunks])

    def load_pixels(self, image: ImageSource) -> np.ndarray:
        """Decode one photo (a path, a PIL image or a numpy array) into this model's uint8 pixels (H, W, 3).

        Every kind goes through `edgetl.runtime.image.load_image`, the conversion training used.
        """
        return load_pixels(image, self.spec)

    def classify(self, images: Iterable[ImageSource], top_k: int = 3) -> list[list[Prediction]]:
        """Rank the classes for each photo.

        Args:
            images: A list of photos: paths, PIL images or numpy arrays (see
                `edgetl.runtime.image.load_image`), each converted exactly as a photo file is.
            top_k: How many classes to return per photo (fewer if the model has fewer).
                Defaults to `3`.

        Several photos keep every core busy: each core decodes and runs photos on its own copy of
        a CPU TFLite interpreter (`map_ahead`), or decode threads feed the one interpreter
        (ONNX Runtime, which spreads a run over the cores itself; the Edge TPU; `threads` that
        fill the cores). The scores are those of one photo at a time.

        Returns:
            For each photo, its best `top_k` predictions, best first; equal scores rank the lower
            index first.

        Raises:
            EdgetlError: if a photo cannot be decoded, `images` is not a non-empty list of photos,
                or `top_k` is not an integer of at least 1.
        """
        photos, top_k = _photo_list(images), _checked_top_k(top_k)
        return [self.top_k(scores, top_k) for scores in self._scores(photos, skip_unreadable=False)]

    def classify_each(self, images: Iterable[ImageSource], top_k: int = 3) -> list[list[Prediction] | EdgetlError]:
        """`classify`, except that a photo that cannot be decoded does not stop the others.

        Returns:
            For each photo, its predictions, or the `EdgetlError` that says why it was not read.
        """
        photos, top_k = _photo_list(images), _checked_top_k(top_k)
        return [
            scores if isinstance(scores, EdgetlError) else self.top_k(scores, top_k)
            for scores in self._scores(photos, skip_unreadable=True)
        ]

    def _scores(self, photos: list[ImageSource], *, skip_unreadable: bool) -> Iterator[np.ndarray | EdgetlError]:
        """Each photo's scores, in order; with `skip_unreadable`, a decode error in its place."""
        lanes = self._lanes(len(photos)) if self._backend.replicable else [self]
        if len(lanes) > 1:
            return map_ahead(lambda lane, photo: lane._score_photo(photo, skip_unreadable), photos, lanes)
        # One interpreter (already using every core, or the only one): decode threads feed it.
        load = self._load_or_error if skip_unreadable else self.load_pixels
        return (
            pixels if isinstance(pixels, EdgetlError) else self.run_pixels(pixels[None])[0]
            for pixels in decode_ahead(load, photos)
        )

    def _load_or_error(self, image: ImageSource) -> np.ndarray | EdgetlError:
        try:
            return self.load_pixels(image)
        except EdgetlError as e:
            return e

    def _score_photo(self, image: ImageSource, skip_unreadable: bool) -> np.ndarray | EdgetlError:
        pixels = self._load_or_error(image) if skip_unreadable else self.load_pixels(image)
        return pixels if isinstance(pixels, EdgetlError) else self.run_pixels(pixels[None])[0]

    def _lanes(self, photos: int) -> list[Classifier]:
        """This classifier and twins on their own interpreters, one per core's worth of threads.

        The twins are opened on first need, from the bytes this classifier was opened from, and
        kept for the next call.
        """
        wanted = max(1, min(photos, interpreter_lanes(self.threads)))
        with self._twins_lock:  # two threads' first calls must not both open twins
            if self._model is None and len(self._twins) < wanted - 1:  # built on a backend: read the file once
                self._model = _read_model_bytes(self.path)
            while len(self._twins) < wanted - 1:
                backend = open_backend(self.path, threads=self.threads, delegate=None, model=self._model)
                backend.prepare()
                self._twins.append(
                    Classifier(self.path, backend, labels=self.labels, spec=self.spec, metadata=self.metadata,
                               threads=self.threads, model=self._model)
                )
            return [self, *self._twins[: wanted - 1]]

    def top_k(self, scores: np.ndarray, k: int) -> list[Prediction]:
        """The `k` best classes of one score vector (C,), ties broken by the lower index."""
        order = np.argsort(-scores, kind="stable")[: _checked_top_k(k)]
        return [Prediction(index=int(i), label=self.labels[i], score=float(scores[i])) for i in order]

    def _check_pixels(self, pixels: np.ndarray) -> None:
        expected = (*self.spec.image_size, 3)
        if (
            not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 4
            or pixels.shape[1:] != expected or len(pixels) == 0
        ):
            got = f"{pixels.dtype} {pixels.shape}" if isinstance(pixels, np.ndarray) else type(pixels).__name__
            raise EdgetlError(
                f"Pixels must be a uint8 array of shape (N, {expected[0]}, {expected[1]}, 3). Received: {got}"
            )


def load_runner(
    path: str | Path,
    *,
    threads: int | None = None,
    delegate: str | None = None,
    labels: str | Path | None = None,
) -> Classifier:
    """Open a model file as a `Classifier` (the same as `Classifier.from_file`); thread-safe, as it is."""
    return Classifier.from_file(path, threads=threads, delegate=delegate, labels=labels)


def _read_model_bytes(path: Path) -> bytes:
    """Read the model file and refuse, before any interpreter sees it, what is clearly not a model."""
    suffix = path.suffix.lower()
    if path.is_dir():
        raise EdgetlError(f"Expected a model file, got a directory. Received: {path}")
    check_regular_file(path, "Model file")
    if suffix not in MODEL_SUFFIXES:
        raise EdgetlError(f"Model files must end in one of {MODEL_SUFFIXES}. Received: {path}")
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise EdgetlError(f"Model file not found. Received: {path}") from e
    except OSError as e:
        raise EdgetlError(f"Cannot read the model file ({e.strerror or e}). Received: {path}") from e
    if not data:
        raise EdgetlError(f"Model file is empty. Received: {path}")
    is_tflite = data[4:8] == TFLITE_IDENTIFIER
    if suffix == ".onnx" and is_tflite:
        raise EdgetlError(f"This file is a TFLite model named .onnx. Received: {path}. Rename it to {path.stem}.tflite")
    if suffix == ".tflite" and not is_tflite and data[:1] == b"\x08":  # ONNX ModelProto starts with ir_version
        raise EdgetlError(
            f"This file looks like an ONNX model named .tflite. Received: {path}. Rename it to {path.stem}.onnx"
        )
    return data


def _layout(shape: tuple[int, ...], path: Path) -> str:
    if len(shape) == 4 and shape[3] == 3:
        return "NHWC"
    if len(shape) == 4 and shape[1] == 3:
        return "NCHW"
    raise EdgetlError(
        "The model's input is not an RGB image: expected shape (N, H, W, 3) or (N, 3, H, W). "
        f"Received: input shape {shape} in {path.name}"
    )


def _resolve_spec(info: FileInfo, tensor: TensorInfo, path: Path) -> PreprocessingSpec:
    """The PreprocessingSpec from edgetl's metadata, else derived from the tensor and TFLite metadata."""
    layout = _layout(tensor.shape, path)
    size = tensor.shape[1:3] if layout == "NHWC" else tensor.shape[2:4]
    if info.metadata is not None:
        spec = info.metadata.preprocessing
        if spec.layout != layout or (size != (1, 1) and tuple(spec.image_size) != size):
            raise EdgetlError(
                f"The model's metadata does not match its input tensor: {info.metadata_source} says {spec.layout} "
                f"{spec.image_size}. Received: input shape {tensor.shape} in {path.name}"
            )
        return spec
    if info.normalization.color_space == "GRAYSCALE":
        raise EdgetlError(f"Only RGB image models are supported. Received: a GRAYSCALE input in {path.name}")
    mean, std, note = _third_party_normalization(info, tensor)
    return PreprocessingSpec(image_size=size, mean=mean, std=std, layout=layout, normalization=note)


def _third_party_normalization(info: FileInfo, tensor: TensorInfo) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    norm = info.normalization
    if norm.mean and norm.std:
        return _per_channel(norm.mean), _per_channel(norm.std), "from TFLite Model Metadata NormalizationOptions"
    if tensor.quantized:
        # No metadata: assume the quantized input takes raw pixels (Coral's classify.py default).
        raw_zero = tensor.zero_point + (128 if tensor.dtype == "int8" else 0)
        return (float(raw_zero),) * 3, (1.0 / tensor.scale,) * 3, "assumed: quantized input takes raw [0, 255] pixels"
    return (0.0,) * 3, (1.0,) * 3, "assumed: float input takes [0, 255] pixels (no normalization metadata)"


def _per_channel(values: tuple[float, ...]) -> tuple[float, float, float]:
    if len(values) == 1:
        return (values[0],) * 3
    if len(values) != 3:
        raise EdgetlError(f"Normalization needs 1 or 3 values per parameter. Received: {values}")
    return (values[0], values[1], values[2])


def _num_classes(tensor: TensorInfo, path: Path) -> int:
    """The class count of a (batch, classes) output; (batch, 1, 1, classes) is accepted too."""
    classes = [int(d) for d in tensor.shape[1:]]
    if len(tensor.shape) < 2 or sum(d != 1 for d in classes) > 1 or min(classes) < 1:
        raise EdgetlError(f"The model's output is not a score vector per image (batch, classes), so it is not an image "
                          f"classifier. Received: output shape {tuple(tensor.shape)} in {printable(path.name)}")
    return max(classes)


def _resolve_labels(info: FileInfo, labels_file: str | Path | None, num_classes: int, path: Path) -> tuple[str, ...]:
    """An explicit labels file, else edgetl's metadata, else TFLite metadata, else the indices.

    A labels file of the wrong length is refused: replacing the model's own labels by indices
    (as before) silently threw away correct labels for a typo in a path.
    """
    if labels_file is not None:
        if not isinstance(labels_file, (str, os.PathLike)):
            raise EdgetlError(f"labels must be the path of a labels file. Received: {type(labels_file).__name__}")
        labels = read_labels(Path(labels_file))
        if len(labels) != num_classes:
            raise EdgetlError(
                f"The labels file must have one label per model output: the model has {num_classes} outputs, "
                f"the file has {len(labels)} labels. Received: {printable(str(labels_file))}"
            )
        return labels
    if info.metadata is not None:
        labels, source = info.metadata.labels, info.metadata_source
    elif info.labels is not None:
        labels, source = (
            info.labels,
            f"the model's {'ONNX metadata_props' if path.suffix.lower() == '.onnx' else 'TFLite metadata'}",
        )
    else:
        return tuple(str(i) for i in range(num_classes))
    if len(labels) != num_classes:
        warnings.warn(
            f"The model has {num_classes} outputs but {source} has {len(labels)} labels; "
            "using the output indices as labels instead.",
            stacklevel=3,
        )
        return tuple(str(i) for i in range(num_classes))
    return labels


def _photo_list(images: Iterable[ImageSource]) -> list[ImageSource]:
    """`images` as a list of photos, or one clear error for a single photo or an empty batch."""
    single = isinstance(images, (str, bytes, os.PathLike, Image.Image)) or (
        isinstance(images, np.ndarray) and images.ndim != 4
    )
    if single or not isinstance(images, Iterable):
        raise EdgetlError(
            "images must be a list of photos (paths, PIL images or numpy arrays); for one photo pass "
            f"[photo]. Received: {type(images).__name__}"
        )
    photos = list(images)
    if not photos:
        raise EdgetlError("images is empty: give at least one photo. Received: an empty batch")
    return photos


def _checked_top_k(top_k: object) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise EdgetlError(f"top_k must be an integer of at least 1. Received: top_k={top_k!r}")
    return int(top_k)
