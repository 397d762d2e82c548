"""`--target-agreement A`: an int8 model that keeps its most sensitive layers wider until it agrees
with the float model on at least A of the validation photos.

1. Sensitivity: the error each layer adds on its own. TFLite's converter instruments its int8 model
   (`tf.lite.experimental.QuantizationDebugger`): every quantized op's output is compared with the
   same op run in float on the same (dequantized) inputs, and the RMS difference in steps of the
   output's int8 scale ranks the layers. An op that only rounds its result adds about 0.3 steps
   (uniform rounding: 1/sqrt(12)); a layer whose int8 weights lose its signal added 58 and 116
   steps in two small models built for it (one in tests/test_export_target.py), where every other
   layer of the first added 0.08 to 0.39.
2. Greedy by that rank: keep the next layer in float, re-quantize from the same calibration
   (`mlir_quantize` with `denylisted_nodes`, the debugger's own selective-quantization route, about
   20 ms on a small model) and re-measure the agreement, until the target is met; then drop every
   kept layer the target does not need. Each candidate is measured on the validation photos only.
3. Report: the layers kept wider, what each adds to the artefact's size and to its latency on
   this machine (along the kept order), the validation agreement before and after and, for
   information only, the same on the test split.

Int16 activations with int8 weights (TFLite's 16x8 mode) stay integer, but the converter applies
them to the whole model only. `ai-edge-quantizer` 0.10 does it per op (`add_static_config(regex,
activation_num_bits=16)`) and runs beside this stack (numpy 2, ai-edge-litert 2.3), but it is not
used: its models take int8 input where edgetl's take uint8, and 16-bit activations cannot repair a
layer whose int8 *weights* lose the signal (the test model's fragile layer in 16x8 agreed on 32%
of photos, as in int8). So the layers kept wider run in float32.

Formats that must stay fully integer (`edgetpu`, tflite-int8 with `--full-integer`) never get float
ops: when their int8 model misses the target, the format fails with one line saying so.

Not thread-safe: one call converts and measures one format.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.export.common import ExportSource

MAX_WIDER = 12
"""The greedy search keeps at most this many layers wider before it gives up."""
RANKING_PHOTOS = 64
"""Validation photos the per-layer error is measured on (the ranking settles well before that)."""
CLEAN_DB = 100.0
"""The SQNR of a tensor quantization does not touch (the model's input, an exact copy)."""
LATENCY_PHOTOS = 16
"""Photos timed, one at a time, for the latency each kept layer costs."""


@dataclass(frozen=True)
class WiderLayer:
    """One layer kept at a wider precision than int8. Immutable, so thread-safe.

    Attributes:
        layer: The Keras layer it comes from, or the converter's node name when none matches.
        node: The converter's node name (what `denylisted_nodes` names).
        precision: What it runs in ("float32").
        sensitivity: What it loses as int8 on the validation photos: for TFLite the RMS error it adds,
            in steps of its output's int8 scale; for ONNX the signal-to-noise ratio it loses, in dB.
        size_bytes: What keeping it wider adds to the artefact (may be negative).
        latency_ms: What it adds per photo on this machine (one thread of a shared CPU: indicative).
    """

    layer: str
    node: str
    precision: str
    sensitivity: float
    size_bytes: int
    latency_ms: float


@dataclass(frozen=True)
class TargetOutcome:
    """What `--target-agreement` did for one format; `to_dict` goes to export.json and the artefact.
    Immutable, so thread-safe.

    Agreements are shares of photos whose top-1 equals the float model's. The validation figures
    chose the layers; the test figures (None without test photos) were measured afterwards only.
    """

    target: float
    validation_photos: int
    before: float
    after: float
    test_photos: int
    test_before: float | None
    test_after: float | None
    wider: tuple[WiderLayer, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "wider": [asdict(w) for w in self.wider]}


def require_validation(source: ExportSource, fmt: str) -> np.ndarray:
    """The validation photos the target is measured on; refuses when there are none."""
    if source.validation is None or not len(source.validation):
        raise EdgetlError(f"{fmt}: --target-agreement is measured on the validation split, and this export has "
                          "no validation photos. Export a run trained with a validation split, or leave it out.")
    return source.validation


def agreement(source: ExportSource, run: Callable[[np.ndarray], np.ndarray]) -> float:
    """Share of validation photos whose top-1 under `run` equals the float model's."""
    photos = len(require_validation(source, "int8"))
    return 1.0 - (source.validation_disagreements(run) or 0) / photos


def held_out_agreement(source: ExportSource, run: Callable[[np.ndarray], np.ndarray]) -> float | None:
    """The same share on the test photos, for the report only (None without test photos)."""
    if source.test is None or not len(source.test):
        return None
    pixels = source.test.astype(np.float32)
    float_top1 = np.concatenate([np.asarray(source.model.predict_on_batch(pixels[i : i + 32])).argmax(1)
                                 for i in range(0, len(pixels), 32)])
    top1 = np.concatenate([run(pixels[i : i + 32]).argmax(1) for i in range(0, len(pixels), 32)])
    return float((top1 == float_top1).mean())


def latency_ms(run: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray) -> float:
    """Milliseconds per photo, one photo per call, after one warm-up call."""
    photos = pixels[:LATENCY_PHOTOS].astype(np.float32)
    run(photos[:1])
    start = time.perf_counter()
    for i in range(len(photos)):
        run(photos[i : i + 1])
    return (time.perf_counter() - start) * 1000 / len(photos)


def refuse_unmet(fmt: str, target: float, reached: float, why: str) -> EdgetlError:
    """The one-line failure of a format whose int8 model cannot reach the target."""
    return EdgetlError(f"{fmt}: agrees with the float model on {reached:.2%} of the validation photos, below "
                       f"--target-agreement {target:g}; {why}")


Runner = Callable[[Any], Callable[[np.ndarray], np.ndarray]]
"""artefact -> a function from float32 pixels (N, H, W, 3) to its scores."""


@dataclass(frozen=True)
class Widening:
    """How one format makes and runs its candidates: everything `reach` needs to know of it.
    Not thread-safe: its functions write the format's candidates into one folder.

    Attributes:
        fmt: The format, for messages.
        plain: The artefact with every layer int8 (bytes or a path).
        rank: {node: sensitivity, larger is worse} on the validation photos; called only when
            `plain` misses the target.
        build: nodes -> the artefact with those nodes kept wider (after `rank`).
        runner: artefact -> a function from float32 pixels (N, H, W, 3) to its scores.
        size: artefact -> its size in bytes.
        full_integer: True when no layer may be kept in float.
    """

    fmt: str
    plain: Any
    rank: Callable[[], dict[str, float]]
    build: Callable[[Sequence[str]], Any]
    runner: Runner
    size: Callable[[Any], int]
    full_integer: bool = False


def reach(source: ExportSource, widening: Widening, target: float) -> tuple[Any, TargetOutcome]:
    """The artefact with the fewest layers kept wider that meets `target` on the validation photos.

    Not thread-safe (it converts and runs one format's candidates); call it once per format.

    Raises:
        EdgetlError: when the target is missed and the format is fully integer, or when its
            `MAX_WIDER` most sensitive layers kept wider do not reach it.
    """
    fmt, plain_run = widening.fmt, widening.runner(widening.plain)
    before = agreement(source, plain_run)
    if before >= target:
        return widening.plain, _outcome(source, target, before, before, plain_run, None, ())
    if widening.full_integer:
        raise refuse_unmet(fmt, target, before, "it must stay fully integer, so no layer can be kept in float. "
                           "Lower the target or try --quantization auto"
                           + (", or drop --full-integer." if fmt == "tflite-int8" else "."))
    stats = widening.rank()
    ranked = sorted(stats, key=lambda node: -stats[node])[:MAX_WIDER]
    meets = _MeetsTarget(source, widening, target)
    kept = _greedy(ranked, meets)
    if kept is None:
        raise refuse_unmet(fmt, target, max(before, meets.best), f"keeping its {len(ranked)} most sensitive layers "
                           "in float did not reach it. Lower the target, or try --quantization auto.")
    kept = _pruned(kept, meets)
    final = widening.build(kept)
    outcome = _outcome(source, target, before, meets.scores[frozenset(kept)], plain_run, widening.runner(final),
                       _costs(source, widening, kept, stats))
    return final, outcome


def tflite_widening(source: ExportSource, data: bytes, converter: Callable[[], Any], runner: Runner, *,
                    io_dtype: str, full_integer: bool, fmt: str) -> Widening:
    """TFLite: ranked by the quantization debugger, rebuilt by `mlir_quantize` with `denylisted_nodes`.

    `converter` makes a TFLite converter set up as for `data`; the debugger calibrates it again.
    """
    calibrated: list[bytes] = []

    def rank() -> dict[str, float]:
        model, errors = layer_errors(converter(), require_validation(source, fmt))
        calibrated.append(model)
        return errors

    return Widening(fmt=fmt, plain=data, rank=rank,
                    build=lambda nodes: _requantized(calibrated[0], io_dtype, nodes),
                    runner=runner, size=len, full_integer=full_integer)


def onnx_widening(source: ExportSource, quantized: Path, float_model: Path,
                  requantize: Callable[[Sequence[str]], Path], runner: Runner, input_name: str) -> Widening:
    """onnx-int8: ranked by the signal-to-noise each node loses, rebuilt with `nodes_to_exclude`."""
    return Widening(fmt="onnx-int8", plain=quantized, build=requantize, runner=runner,
                    rank=lambda: onnx_layer_errors(float_model, quantized, input_name,
                                                   require_validation(source, "onnx-int8")),
                    size=lambda path: path.stat().st_size)


def layer_errors(converter: Any, pixels: np.ndarray) -> tuple[bytes, dict[str, float]]:
    """(calibrated model, {node: error it adds in steps of its output scale}) on `pixels`.

    `converter` is a TFLite converter set up for full-integer int8; the debugger calibrates it.
    """
    import tensorflow as tf

    photos = pixels[:RANKING_PHOTOS].astype(np.float32)
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"steps": _rms_steps}, fully_quantize=False)
    with warnings.catch_warnings():  # it runs its debug model on tf.lite.Interpreter, deprecated
        warnings.simplefilter("ignore", UserWarning)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([photos[i : i + 1]] for i in range(len(photos))),
            debug_options=options)
        debugger.run()
    errors = {_node_name(key): float(metrics["steps"]) for key, metrics in debugger.layer_statistics.items()}
    return debugger.calibrated_model, errors


def onnx_layer_errors(float_model: Path, quantized: Path, input_name: str, pixels: np.ndarray) -> dict[str, float]:
    """{node: signal-to-quantization-noise ratio it loses, dB} of a QDQ model on `pixels`.

    Each tensor's SQNR compares the QDQ model's value with the float model's
    (`onnxruntime.quantization.qdq_loss_debug`); a node loses what its output has less than its
    first input (the model's input counts as `CLEAN_DB`).
    """
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as debug

    feeds = [{input_name: photo[None]} for photo in pixels[:RANKING_PHOTOS].astype(np.float32)]
    activations = []
    for model in (float_model, quantized):
        augmented = model.with_name(f"{model.stem}_debug.onnx")
        debug.modify_model_output_intermediate_tensors(model, augmented)
        activations.append(debug.collect_activations(str(augmented), feeds))  # iterates its reader: a list will do
    errors = debug.compute_activation_error(debug.create_activation_matching(activations[1], activations[0]))
    sqnr = {name: min(float(e.get("xmodel_err", CLEAN_DB)), CLEAN_DB) for name, e in errors.items()}
    return {node.name: sqnr.get(node.input[0], CLEAN_DB) - sqnr[node.output[0]]
            for node in onnx.load(str(float_model)).graph.node if node.input and node.output[0] in sqnr}


def keras_layer_name(model: Any, node: str) -> str:
    """The Keras layer a converter node comes from ("functional_1/fragile_1/convolution1" -> "fragile"),
    or the node name itself. A fused node ("block_1_relu/Relu;block_1_bn/...;block_1_conv/...")
    is named for its layer with weights, the one kept wider."""
    layers = {layer.name: layer for layer in _all_layers(model)} if model is not None else {}
    found = [candidate for op in node.split(";") for part in reversed(op.split("/")[:-1])
             for candidate in (part, re.sub(r"_\d+$", "", part)) if candidate in layers]
    weighted = [name for name in found if getattr(layers[name], "kernel", None) is not None
                or getattr(layers[name], "depthwise_kernel", None) is not None]
    return (weighted or found or [node])[0]


class _MeetsTarget:
    """Builds and measures candidate sets of float nodes, each once; remembers every agreement."""

    def __init__(self, source: ExportSource, widening: Widening, target: float) -> None:
        self.source, self.widening, self.target = source, widening, target
        self.scores: dict[frozenset[str], float] = {}

    @property
    def best(self) -> float:
        return max(self.scores.values(), default=0.0)

    def __call__(self, nodes: Sequence[str]) -> bool:
        key = frozenset(nodes)
        if key not in self.scores:
            self.scores[key] = agreement(self.source, self.widening.runner(self.widening.build(nodes)))
        return self.scores[key] >= self.target


def _greedy(ranked: Sequence[str], meets: Callable[[Sequence[str]], bool]) -> list[str] | None:
    """The shortest prefix of `ranked` that meets the target, or None."""
    for count in range(1, len(ranked) + 1):
        if meets(ranked[:count]):
            return list(ranked[:count])
    return None


def _pruned(kept: list[str], meets: Callable[[Sequence[str]], bool]) -> list[str]:
    """`kept` without each layer the target does not need (tried least sensitive first)."""
    for node in reversed(list(kept)):
        without = [n for n in kept if n != node]
        if without and meets(without):
            kept = without
    return kept


def _costs(source: ExportSource, widening: Widening, kept: Sequence[str],
           stats: dict[str, float]) -> tuple[WiderLayer, ...]:
    """Each kept layer's size and latency, as what adding it to the ones before it costs."""
    pixels = require_validation(source, widening.fmt)
    steps = [widening.build(kept[:count]) for count in range(len(kept) + 1)]
    sizes = [widening.size(step) for step in steps]
    times = [latency_ms(widening.runner(step), pixels) for step in steps]
    return tuple(
        WiderLayer(layer=keras_layer_name(source.model, node), node=node, precision="float32",
                   sensitivity=round(stats[node], 3), size_bytes=sizes[i + 1] - sizes[i],
                   latency_ms=round(times[i + 1] - times[i], 3))
        for i, node in enumerate(kept))


def _outcome(source: ExportSource, target: float, before: float, after: float,
             run_before: Callable[[np.ndarray], np.ndarray], run_after: Callable[[np.ndarray], np.ndarray] | None,
             wider: tuple[WiderLayer, ...]) -> TargetOutcome:
    """The report, with the test split measured now that the choice is made."""
    test_before = held_out_agreement(source, run_before)
    test_after = held_out_agreement(source, run_after) if run_after is not None else test_before
    return TargetOutcome(target=target, validation_photos=len(require_validation(source, "int8")),
                         before=round(before, 4), after=round(after, 4),
                         test_photos=0 if source.test is None else len(source.test),
                         test_before=None if test_before is None else round(test_before, 4),
                         test_after=None if test_after is None else round(test_after, 4), wider=wider)


def _requantized(calibrated: bytes, io_dtype: str, nodes: Sequence[str]) -> bytes:
    """The int8 model with `nodes` in float, quantized from `calibrated` as the converter does."""
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize

    io = tf.uint8 if io_dtype == "uint8" else tf.int8
    return bytes(mlir_quantize(calibrated, input_data_type=io, output_data_type=io,
                               denylisted_nodes=list(nodes) or None))


def _rms_steps(float_out: np.ndarray, quant_out: np.ndarray, scale: float, zero_point: int) -> float:
    """RMS difference between an op's float and int8 outputs, in steps of the int8 scale."""
    dequantized = (quant_out.astype(np.float32) - zero_point) * scale
    return float(np.sqrt(np.mean((float_out - dequantized) ** 2)) / scale)


def _node_name(debug_key: str) -> str:
    """"NumericVerify/functional_1/fragile_1/convolution11:18" -> the node name "functional_1/fragile_1/convolution1"
    (the debugger appends the output index, then ":" and the verify tensor's index)."""
    name = debug_key.removeprefix("NumericVerify/").rsplit(":", 1)[0]
    return name[:-1] if name[-1:].isdigit() else name


def _all_layers(model: Any) -> list[Any]:
    found = []
    for layer in getattr(model, "layers", []):
        found += [layer, *_all_layers(layer)]
    return found
