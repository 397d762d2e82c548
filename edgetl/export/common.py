"""What every exporter shares: the source model, its metadata, and whole-file writes."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.spec import ModelMetadata, write_bytes_atomic, write_text_atomic


@dataclass
class ExportSource:
    """The float Keras model being exported, plus intermediates shared by the exporters.

    The SavedModel and the float ONNX graph are built once per export and reused (they are not
    artefacts: each exporter still converts from them independently and writes its own file).

    Attributes:
        model: The Keras model (float32 RGB pixels in [0, 255] NHWC -> probabilities).
        metadata: Its metadata (format "keras"); exporters derive theirs with `for_format`.
        workdir: A temporary directory for intermediates, removed by `export()`.
        validation: uint8 pixels (N, H, W, 3) of the run's validation photos, on which
            `--quantization auto` compares recipes and `--target-agreement` chooses layers; None when
            not needed or unavailable.
        test: uint8 pixels of the run's test photos, whose agreement `--target-agreement` reports
            (never chooses on); None when not needed or unavailable.
    """

    model: Any
    metadata: ModelMetadata
    workdir: Path
    validation: np.ndarray | None = None
    test: np.ndarray | None = None
    _saved_model: dict[int, Path] = field(default_factory=dict, repr=False)
    _onnx: dict[int, bytes] = field(default_factory=dict, repr=False)
    _validation_scores: np.ndarray | None = field(default=None, repr=False)
    _rounded: ExportSource | None = field(default=None, repr=False)

    def int8_source(self, recipe: str, calib: np.ndarray) -> ExportSource:
        """What an int8 format converts under `recipe`: this source, or for a recipe that rounds
        weights (`recipes.ROUNDS_WEIGHTS`) a copy with GPTQ-rounded kernels and its normalization
        on the int8 grid, made once and shared by every int8 format (`recipes.rounded_copy`).
        Parity is still judged against this source's model."""
        if not self.rounded_weights(recipe):
            return self
        if self._rounded is None:
            from edgetl.export import recipes

            self._rounded = dataclasses.replace(self, model=recipes.rounded_copy(recipe, self.model, calib),
                                                validation=None, test=None, _saved_model={}, _onnx={},
                                                _validation_scores=None)
        return self._rounded

    def rounded_weights(self, recipe: str) -> bool:
        """Whether `recipe` converts GPTQ-rounded kernels: False for a recipe that does not round, and for a
        model with no Keras convolution to round (a hub backbone's are inside its SavedModel, which the
        converters quantize by min/max), so gptq converts it as minmax does and export.json says so."""
        from edgetl.export import recipes

        if recipe not in recipes.ROUNDS_WEIGHTS:
            return False
        if self.model is None:  # the export worker: the main process sent the rounded copy, or had nothing to round
            return self._rounded is not None
        from edgetl.export import rounding

        return rounding.has_roundable_layers(self.model)

    def validation_disagreements(self, run: Callable[[np.ndarray], np.ndarray]) -> int | None:
        """Validation photos whose top-1 under `run` (float32 pixels -> scores) differs from the float model's.

        None when there are no validation photos.
        """
        if self.validation is None or not len(self.validation):
            return None
        pixels = self.validation.astype(np.float32)
        if self._validation_scores is None:
            self._validation_scores = np.concatenate(
                [np.asarray(self.model.predict_on_batch(pixels[i : i + 32])) for i in range(0, len(pixels), 32)])
        scores = np.concatenate([run(pixels[i : i + 32]) for i in range(0, len(pixels), 32)])
        return int((scores.argmax(1) != self._validation_scores.argmax(1)).sum())

    @property
    def image_size(self) -> tuple[int, int]:
        return self.metadata.preprocessing.image_size

    def saved_model(self, *, batch: int | None = None) -> Path:
        """A SavedModel of the model (`model.export`: its TFLite conversion matches Keras, unlike
        `from_concrete_functions`, which writes NaN outputs without an error for Keras 3 models).

        Args:
            batch: Fixed batch size, or None for a dynamic batch dimension.
        """
        key = batch or 0
        if key not in self._saved_model:
            import keras

            height, width = self.image_size
            path = Path(tempfile.mkdtemp(prefix=f"saved_model_b{key}_", dir=self.workdir))
            spec = keras.InputSpec(shape=(batch, height, width, 3), dtype="float32")
            self.model.export(str(path), format="tf_saved_model", verbose=False, input_signature=[spec])
            self._saved_model[key] = path
        return self._saved_model[key]

    def onnx_float(self, opset: int) -> bytes:
        """The float ONNX graph from tf2onnx (input "pixels", dynamic batch), serialized."""
        if opset not in self._onnx:
            import tensorflow as tf
            import tf2onnx

            height, width = self.image_size
            signature = [tf.TensorSpec((None, height, width, 3), tf.float32, name="pixels")]
            proto, _ = tf2onnx.convert.from_keras(self.model, input_signature=signature, opset=opset)
            self._onnx[opset] = proto.SerializeToString()
        return self._onnx[opset]


def artefact_metadata(source: ExportSource, fmt: str, **extra: Any) -> ModelMetadata:
    """The metadata embedded in one artefact: the source's, with its format and io details."""
    return dataclasses.replace(source.metadata, format=fmt, extra={**source.metadata.extra, **extra})


def io_extra(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Input/output dtype and quantization for `edgetl.json` (what a device must feed/read)."""

    def one(t: dict[str, Any]) -> dict[str, Any]:
        return {"name": t["name"], "dtype": t["dtype"], "shape": t.get("shape_signature") or t["shape"],
                "scale": t.get("scale"), "zero_point": t.get("zero_point")}

    return {"input": one(inputs[0]), "output": one(outputs[0])}


def write_artefact(out: Path, data: bytes, meta: ModelMetadata) -> Path:
    """Write the artefact and its `{stem}.json` sidecar, each whole or not at all."""
    write_bytes_atomic(out, data)
    write_text_atomic(sidecar_path(out), meta.to_json())
    return out


def sidecar_path(artefact: Path) -> Path:
    return artefact.with_suffix(".json")


def check_output(source: ExportSource, outputs: list[dict[str, Any]], fmt: str) -> None:
    """Refuse an artefact whose output is not (batch, num_classes): a broken conversion."""
    shape = outputs[0].get("shape_signature") or outputs[0]["shape"]
    if len(outputs) != 1 or len(shape) != 2 or shape[-1] != len(source.metadata.labels):
        raise EdgetlError(
            f"{fmt}: the converted model's output is {shape} (x{len(outputs)}), expected one "
            f"(batch, {len(source.metadata.labels)}) tensor; the conversion is broken."
        )
