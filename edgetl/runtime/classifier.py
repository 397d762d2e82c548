"""`Classifier`: photos in, top-k labels out, on one interpreter, with no TensorFlow.

The tensor path is split into the three steps the golden vectors and the Android demo check one
by one: `quantize_input` (uint8 pixels -> the exact input tensor), `invoke_raw` (the interpreter)
and `dequantize_output` (raw output -> float32 scores).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgetl.errors import EdgetlError
from edgetl.runtime.backends import EDGETPU_INSTALL, Backend, TensorInfo, open_backend
from edgetl.runtime.image import image_to_pixels, load_image
from edgetl.runtime.metadata import FileInfo, read_onnx_info, read_tflite_info
from edgetl.runtime.pipeline import decode_ahead, interpreter_lanes, map_ahead
from edgetl.runtime.tflite_reader import EDGETPU_CUSTOM_OP, TFLITE_IDENTIFIER
from edgetl.spec import ModelMetadata, PreprocessingSpec, check_regular_file, printable, read_labels

MODEL_SUFFIXES = (".tflite", ".onnx")


@dataclass(frozen=True)
class Prediction:
    """One ranked class: its output index, its label and its score (a probability for edgetl models)."""

    index: int
    label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        # A NaN or infinite score (a broken model) is null: the JSON stays valid.
        return {"label": self.label, "index": self.index, "score": self.score if math.isfinite(self.score) else None}


def prediction_records(
    images: Sequence[str | Path | Image.Image], results: list[list[Prediction]]
) -> list[dict[str, Any]]:
    """The JSON layout of `edgetl predict --json`: ``[{"image", "top_k": [{"label", "index", "score"}]}]``."""
    return [
        {
            "image": str(image) if not isinstance(image, Image.Image) else "<PIL image>",
            "top_k": [p.to_dict() for p in predictions],
        }
        for image, predictions in zip(images, results, strict=True)
    ]


@dataclass(frozen=True)
class _InputPlan:
    """How uint8 pixels become the input tensor, decided once per model.

    `shift` is set when the affine map pixel -> quantized value is the identity within one
    quantization step; the pixels then go through that exact integer shift, as Coral's own
    classify.py feeds raw pixels to its uint8 models (mean=std=127.5, scale=1/128, zp=128).
    Otherwise `table` holds the exact tensor value of every (channel, pixel value): the
    normalization is a function of those two alone, so looking it up gives the same bits as
    computing it per pixel, in a tenth of the time. `table` is None when the map is the
    identity on float32 (mean 0, std 1: edgetl models normalize inside the graph).
    """

    dtype: np.dtype
    shift: int | None
    table: np.ndarray | None
    nchw: bool


class Classifier:
    """An image classifier file (.tflite or .onnx) ready to run on photos.

    Build it with `Classifier.from_file`. Attributes: `path`, `labels`, `spec`, `metadata`,
    `input_info`, `output_info`, `backend` (the interpreter's name), `threads`.
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
        self._plan = _input_plan(spec, self.input_info)
        self._twins: list[Classifier] = []

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
        backend = open_backend(path, threads=threads, delegate=delegate)
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
        return cls(path, backend, labels=labels, spec=spec, metadata=info.metadata, threads=threads)

    def quantize_input(self, pixels: np.ndarray) -> np.ndarray:
        """Turn uint8 pixels (N, H, W, 3) into the exact tensor the interpreter is fed.

        Float inputs get ``(pixel - mean) / std`` in float32. Quantized inputs get
        ``round(((pixel - mean) / std) / scale + zero_point)`` (float64, clipped to the dtype),
        or the exact integer shift when that map is the identity within one step.
        """
        self._check_pixels(pixels)
        plan = self._plan
        if plan.shift is not None:
            tensor = _shift_pixels(pixels, plan.shift, plan.dtype)
        elif plan.table is None:
            tensor = pixels.astype(plan.dtype)
        else:
            tensor = _look_up(plan.table, pixels)
        return np.ascontiguousarray(tensor.transpose(0, 3, 1, 2)) if plan.nchw else tensor

    def invoke_raw(self, tensor: np.ndarray) -> np.ndarray:
        """Run the interpreter on an input tensor and return its raw output (ints for quantized models).

        A model with a fixed batch of 1 runs a larger batch one item at a time.
        """
        batch = tensor.shape[0] if tensor.ndim else 0
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
        """uint8 pixels (N, H, W, 3) -> float32 scores (N, C)."""
        return self.dequantize_output(self.invoke_raw(self.quantize_input(pixels)))

    def load_pixels(self, image: str | Path | Image.Image) -> np.ndarray:
        """Decode one photo (a path or a PIL image) into this model's uint8 pixels (H, W, 3)."""
        if isinstance(image, Image.Image):
            return image_to_pixels(image if image.mode == "RGB" else image.convert("RGB"), self.spec)
        return image_to_pixels(load_image(image), self.spec)

    def classify(self, images: Sequence[str | Path | Image.Image], top_k: int = 3) -> list[list[Prediction]]:
        """Rank the classes for each photo.

        Args:
            images: Photo paths or PIL images.
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
            EdgetlError: if a photo cannot be decoded or `top_k` is below 1.
        """
        if top_k < 1:
            raise EdgetlError(f"top_k must be at least 1. Received: top_k={top_k}")
        lanes = self._lanes(len(images)) if self._backend.replicable else [self]
        if len(lanes) > 1:
            scores = map_ahead(Classifier._score_photo, images, lanes)
        else:  # one interpreter (already using every core, or the only one): decode threads feed it
            scores = (self.run_pixels(pixels[None])[0] for pixels in decode_ahead(self.load_pixels, images))
        return [self.top_k(photo_scores, top_k) for photo_scores in scores]

    def _score_photo(self, image: str | Path | Image.Image) -> np.ndarray:
        return self.run_pixels(self.load_pixels(image)[None])[0]

    def _lanes(self, photos: int) -> list[Classifier]:
        """This classifier and twins on their own interpreters, one per core's worth of threads.

        The twins are opened on first need and kept for the next call.
        """
        wanted = max(1, min(photos, interpreter_lanes(self.threads)))
        while len(self._twins) < wanted - 1:
            backend = open_backend(self.path, threads=self.threads, delegate=None)
            backend.prepare()
            self._twins.append(
                Classifier(self.path, backend, labels=self.labels, spec=self.spec, metadata=self.metadata,
                           threads=self.threads)
            )
        return [self, *self._twins[: wanted - 1]]

    def top_k(self, scores: np.ndarray, k: int) -> list[Prediction]:
        """The `k` best classes of one score vector (C,), ties broken by the lower index."""
        order = np.argsort(-scores, kind="stable")[:k]
        return [Prediction(index=int(i), label=self.labels[i], score=float(scores[i])) for i in order]

    def _check_pixels(self, pixels: np.ndarray) -> None:
        expected = (*self.spec.image_size, 3)
        if (
            not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 4
            or pixels.shape[1:] != expected
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
    """Open a model file as a `Classifier` (the same as `Classifier.from_file`)."""
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
                f"The model's metadata does not match its input tensor: metadata says {spec.layout} "
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
    """An explicit labels file, else edgetl's metadata, else TFLite metadata, else the indices."""
    if labels_file is not None:
        labels, source = read_labels(Path(labels_file)), str(labels_file)
    elif info.metadata is not None:
        labels, source = info.metadata.labels, "the model's edgetl.json"
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


def _input_plan(spec: PreprocessingSpec, tensor: TensorInfo) -> _InputPlan:
    dtype = np.dtype(tensor.dtype)
    mean, std = np.asarray(spec.mean, np.float64), np.asarray(spec.std, np.float64)
    scale, zero_point = (tensor.scale, tensor.zero_point) if tensor.scale > 0 else (1.0, 0)
    shift = _identity_shift(mean, std, scale, zero_point) if dtype.kind in "iu" else None
    identity = dtype == np.float32 and not mean.any() and (std == 1.0).all()
    table = None if shift is not None or identity else _normalization_table(mean, std, scale, zero_point, dtype)
    return _InputPlan(dtype, shift, table, spec.layout == "NCHW")


def _normalization_table(
    mean: np.ndarray, std: np.ndarray, scale: float, zero_point: int, dtype: np.dtype
) -> np.ndarray:
    """The input value of each (channel, pixel value), by the formulas `quantize_input` documents.

    Shape (3, 256), or (256,) when the three channels share one map (the common case).
    """
    values = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None], (256, 3))
    if dtype.kind == "f":
        table = ((values.astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        table = np.clip(
            np.rint((values.astype(np.float64) - mean) / std / scale + zero_point), info.min, info.max
        ).astype(dtype)
    return table[:, 0].copy() if (table == table[:, :1]).all() else np.ascontiguousarray(table.T)


def _look_up(table: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """table[c, pixels[..., c]] for every channel c (table[pixels] for a shared map)."""
    if table.ndim == 1:
        return np.take(table, pixels)
    tensor = np.empty(pixels.shape, table.dtype)
    for channel in range(3):
        tensor[..., channel] = table[channel][pixels[..., channel]]
    return tensor


def _shift_pixels(pixels: np.ndarray, shift: int, dtype: np.dtype) -> np.ndarray:
    """pixels + shift, clipped to `dtype`, exactly; the two common cases without arithmetic."""
    if dtype == np.uint8 and shift == 0:
        return pixels
    if dtype == np.int8 and shift == -128:
        # p - 128 in two's complement is p with its top bit flipped: 100x faster than clip().
        return (pixels ^ np.uint8(0x80)).view(np.int8)
    info = np.iinfo(dtype)
    return np.clip(pixels.astype(np.int16) + shift, info.min, info.max).astype(dtype)


def _identity_shift(mean: np.ndarray, std: np.ndarray, scale: float, zero_point: int) -> int | None:
    """The integer k with q(p) = p + k within one quantization step over p in [0, 255], if any."""
    slope = 1.0 / (std * scale)
    offset = zero_point - mean * slope
    shifts = np.rint(offset)
    if len(set(shifts.tolist())) != 1:
        return None
    worst = np.maximum(np.abs(offset - shifts), np.abs((slope - 1.0) * 255.0 + offset - shifts))
    return int(shifts[0]) if float(worst.max()) <= 1.0 + 1e-9 else None
