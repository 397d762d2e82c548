"""TFLite exporters: fp32, dynamic-range, fp16 and full-integer int8, one function each.

All four convert with `TFLiteConverter.from_saved_model` on a `model.export(dir)` SavedModel
(`from_concrete_functions` on a Keras 3 model silently writes a model with NaN outputs), then embed
standard TFLite Model Metadata plus `labels.txt` and `edgetl.json` (`tflite_metadata.embed`).
Full-integer int8 converts the copy its `--quantization` recipe makes (`convert_int8`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetl.export import recipes, target_agreement, tflite_metadata
from edgetl.export.common import ExportSource, artefact_metadata, check_output, io_extra, write_artefact

if TYPE_CHECKING:
    from edgetl.export import ExportOptions
    from edgetl.export.target_agreement import TargetOutcome

CALIBRATION_BATCH = 16
"""Calibration photos per invoke of the converter's calibrator (it resizes a dynamic-batch input).
Min/max over a batch is min/max over its photos: the scales moved by at most 7e-7 (relative, float
rounding), no zero point moved, and the int8 calibration took 20% fewer CPU-seconds than one photo
per invoke (MobileNetV2-1.0-224, 200 photos)."""


def convert(source: ExportSource, mode: str, *, calib: np.ndarray | None = None, io_dtype: str = "uint8",
            batch: int | None = None) -> bytes:
    """Convert the source model to a TFLite flatbuffer (no metadata yet).

    `mode` is "fp32", "dynamic" (int8 weights), "fp16" (float16 weights) or "int8" (full integer).
    """
    import tensorflow as tf

    if mode == "int8":  # calibration checked by convert_int8
        per_invoke = CALIBRATION_BATCH if batch is None else 1  # a fixed batch-1 graph cannot take more
        return bytes(int8_converter(source, calib, io_dtype=io_dtype, batch=batch, per_invoke=per_invoke).convert())
    converter = tf.lite.TFLiteConverter.from_saved_model(str(source.saved_model(batch=batch)))
    if mode != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    return bytes(converter.convert())


def int8_converter(source: ExportSource, calib: np.ndarray, *, io_dtype: str = "uint8",
                   batch: int | None = None, per_invoke: int = 1) -> Any:
    """A `TFLiteConverter` set up for full-integer int8, calibrated on `calib` (`per_invoke` photos
    at a time, `CALIBRATION_BATCH` needs a dynamic-batch SavedModel) when it converts."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(source.saved_model(batch=batch)))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    calib = with_full_pixel_range(calib)
    converter.representative_dataset = lambda: (
        [calib[i : i + per_invoke].astype(np.float32)] for i in range(0, len(calib), per_invoke))
    # Full integer: every op int8, or the conversion fails instead of silently keeping floats.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8 if io_dtype == "uint8" else tf.int8
    converter.inference_output_type = converter.inference_input_type
    return converter


def convert_int8(source: ExportSource, opts: ExportOptions, calib: np.ndarray | None, *,
                 batch: int | None = None) -> tuple[str, bytes, dict[str, int]]:
    """Full-integer conversion under `opts.quantization`: (recipe used, flatbuffer, auto's trials).

    The recipes differ in the weights only (`recipes.TFLITE_RECIPES`); parity on the validation
    split, for `auto`, is judged against the float model.
    """
    if calib is None or len(calib) == 0:
        raise ValueError("int8 conversion needs calibration images")
    return recipes.pick(
        opts.quantization,
        lambda name: convert(source.int8_source(name, calib), "int8", calib=calib, io_dtype=opts.io_dtype, batch=batch),
        lambda data: source.validation_disagreements(runner(data, source)), offered=recipes.TFLITE_RECIPES)


def runner(data: bytes, source: ExportSource) -> Any:
    """float32 pixels (N, H, W, 3) -> scores of an int8 flatbuffer, through the device runtime."""
    from edgetl.runtime import Classifier
    from edgetl.runtime.backends import open_backend

    path = Path(tempfile.mkstemp(suffix=".tflite", dir=source.workdir)[1])
    path.write_bytes(data)
    backend = open_backend(path, threads=None, delegate=None)
    backend.prepare()
    classifier = Classifier(path, backend, labels=source.metadata.labels, spec=source.metadata.preprocessing,
                            metadata=source.metadata)
    return lambda pixels: classifier.run_pixels(pixels.astype(np.uint8))  # decoded photos: exact


def with_full_pixel_range(calib: np.ndarray) -> np.ndarray:
    """The calibration images, the first with one black and one white pixel.

    The input's quantization comes from the smallest and largest calibration pixel: spanning
    exactly 0..255 makes it the identity (scale 1, zero point 0 for uint8), so the uint8 input
    *is* the photo's pixels. MediaPipe Tasks and Coral's examples feed raw pixels to a uint8
    model; with calibration photos of a narrower range (say 12..240), their scores were off
    by 0.09. Two pixels of one image leave the other tensors' ranges as they were.
    """
    calib = np.array(calib, dtype=np.float32, copy=True)
    calib[0, 0, 0, :], calib[0, 0, 1, :] = 0.0, 255.0
    return calib


def finish(source: ExportSource, data: bytes, fmt: str, out: Path, **extra: Any) -> Path:
    """Check the converted model, embed its metadata, write artefact + sidecar."""
    from edgetl.runtime.tflite_reader import read_tflite

    parsed = read_tflite(data, source=fmt)
    check_output(source, parsed["outputs"], fmt)
    meta = artefact_metadata(source, fmt, **io_extra(parsed["inputs"], parsed["outputs"]), **extra)
    name = f"{source.metadata.backbone or 'edgetl'} image classifier ({fmt})"
    labelled = tflite_metadata.embed(
        data, meta, model_name=name,
        description=f"Classifies an RGB photo into {len(meta.labels)} classes: {', '.join(meta.labels[:10])}"
        + (", ..." if len(meta.labels) > 10 else "."),
    )
    return write_artefact(out, labelled, meta)


def export_tflite_fp32(source: ExportSource, opts: ExportOptions, out: Path, calib: np.ndarray | None) -> Path:
    """Float32 TFLite: the reference artefact, numerically the Keras model."""
    return finish(source, convert(source, "fp32"), "tflite-fp32", out, quantization="none")


def export_tflite_dynamic(source: ExportSource, opts: ExportOptions, out: Path, calib: np.ndarray | None) -> Path:
    """Dynamic-range TFLite: int8 weights, float activations; no calibration needed."""
    return finish(source, convert(source, "dynamic"), "tflite-dynamic", out,
                  quantization="dynamic range: int8 weights, float32 activations")


def export_tflite_fp16(source: ExportSource, opts: ExportOptions, out: Path, calib: np.ndarray | None) -> Path:
    """Float16-weight TFLite: half the size, float32 math on CPUs (GPU delegates run fp16)."""
    return finish(source, convert(source, "fp16"), "tflite-fp16", out, quantization="float16 weights")


def export_tflite_int8(source: ExportSource, opts: ExportOptions, out: Path, calib: np.ndarray | None) -> Path:
    """Full-integer TFLite: int8 weights and activations, uint8 (default) or int8 input/output.

    With `opts.target_agreement`, its most sensitive layers run in float until it agrees with the
    float model on that share of the validation photos (none with `opts.full_integer`).
    """
    recipe, data, tried = convert_int8(source, opts, calib)
    data, target = to_target(source, opts, calib, recipe, data, "tflite-int8", full_integer=opts.full_integer)
    integer = "full integer int8" if target is None or not target.wider else "int8 with float layers"
    return finish(source, data, "tflite-int8", out,
                  quantization=f"{integer}, {opts.io_dtype} input/output, per-channel weights, "
                  f"{recipe} recipe", quantization_recipe=recipe, quantization_trials=tried,
                  weights_rounded=source.rounded_weights(recipe),
                  calibration_images=int(len(calib)) if calib is not None else 0,
                  **({} if target is None else {"target_agreement": target.to_dict()}))


def to_target(source: ExportSource, opts: ExportOptions, calib: np.ndarray, recipe: str, data: bytes, fmt: str, *,
              full_integer: bool, batch: int | None = None) -> tuple[bytes, TargetOutcome | None]:
    """`data` held to `opts.target_agreement` (`edgetl.export.target_agreement`); as it is without one."""
    if opts.target_agreement is None:
        return data, None
    widening = target_agreement.tflite_widening(
        source, data, lambda: int8_converter(source.int8_source(recipe, calib), calib, io_dtype=opts.io_dtype,
                                             batch=batch),
        lambda model: runner(model, source), io_dtype=opts.io_dtype, full_integer=full_integer, fmt=fmt)
    return target_agreement.reach(source, widening, opts.target_agreement)
