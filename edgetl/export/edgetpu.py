"""Edge TPU: a pre-flight report of what `edgetpu_compiler` will map, and the compile step.

The compiler maps a fully int8/uint8-quantized TFLite graph onto the Edge TPU op by op, and
stops at the first op it cannot map: that op and everything after it run on the CPU. The
pre-flight report reads the op list and tensor types of an int8 model (no compiler needed) and
names each op that is not in Coral's documented supported-op list or does not run on 8-bit
tensors, so a user sees before buying hardware how much of the model would be accelerated.

Supported ops: https://coral.ai/docs/edgetpu/models-intro/#supported-operations
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError

SUPPORTED_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN",
    "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU",
    "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT",
    "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM",
    "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})
"""TFLite builtin op names from Coral's 'Supported operations' table (compiler 16)."""

EIGHT_BIT = frozenset({"int8", "uint8"})
# Tensors an 8-bit op may still carry in another type: int32 biases, shapes, axes, paddings.
_ALLOWED_OTHER = frozenset({"int32", "int64"})
COMPILER = "edgetpu_compiler"


@dataclass(frozen=True)
class OpCheck:
    """One op type of the model and whether the Edge TPU can run it.

    Attributes:
        op: TFLite builtin op name (e.g. "CONV_2D") or "CUSTOM:<name>".
        count: How many times the op occurs.
        mappable: True when every occurrence is supported and 8-bit.
        reasons: Why it is not mappable (empty when it is).
    """

    op: str
    count: int
    mappable: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreflightReport:
    """What `edgetpu_compiler` would do with a model, predicted from its ops and tensor types.

    Attributes:
        ops: One `OpCheck` per op type, in order of first occurrence.
        total_ops: Number of ops in the main subgraph.
        first_unmappable: Index and name of the first op the compiler cannot map (it and all
            later ops would run on the CPU), or None when the whole graph maps.
        mapped_ops: Ops before `first_unmappable` (the part that would run on the Edge TPU).
        notes: Other findings (dynamic batch size, float input/output with quantize ops).
    """

    ops: tuple[OpCheck, ...]
    total_ops: int
    first_unmappable: tuple[int, str] | None
    mapped_ops: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fully_mappable(self) -> bool:
        return self.first_unmappable is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_ops": self.total_ops,
            "mapped_ops": self.mapped_ops,
            "fully_mappable": self.fully_mappable,
            "first_unmappable": list(self.first_unmappable) if self.first_unmappable else None,
            "ops": [
                {"op": o.op, "count": o.count, "mappable": o.mappable, "reasons": list(o.reasons)} for o in self.ops
            ],
            "notes": list(self.notes),
        }


def preflight(
    operators: list[dict[str, Any]], inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]
) -> PreflightReport:
    """Predict the Edge TPU mapping of a TFLite graph.

    Args:
        operators: In execution order, dicts with "op", "input_dtypes", "output_dtypes" (as
            returned by `edgetl.runtime.tflite_reader.read_tflite`).
        inputs: The graph's input tensors (dicts with "dtype" and "shape_signature").
        outputs: The graph's output tensors.

    Returns:
        The report; it never raises for an unsupported model (that is its finding).
    """
    reasons_by_op: dict[str, set[str]] = {}
    counts: Counter[str] = Counter()
    first: tuple[int, str] | None = None
    last = len(operators) - 1
    for i, node in enumerate(operators):
        op = node["op"]
        counts[op] += 1
        reasons = set(_reasons(node, at_edge=i in (0, last)))
        reasons_by_op.setdefault(op, set()).update(reasons)
        if reasons and first is None:
            first = (i, op)
    checks = tuple(
        OpCheck(op=op, count=counts[op], mappable=not reasons_by_op[op], reasons=tuple(sorted(reasons_by_op[op])))
        for op in counts
    )
    notes = []
    if any(-1 in t.get("shape_signature", ()) for t in inputs):
        notes.append("the input has a dynamic batch size; `edgetl export --formats edgetpu` converts with batch 1")
    if any(t["dtype"] not in EIGHT_BIT for t in inputs + outputs):
        notes.append("float input/output: the QUANTIZE/DEQUANTIZE ops at the ends run on the CPU")
    return PreflightReport(
        ops=checks, total_ops=len(operators), first_unmappable=first,
        mapped_ops=len(operators) if first is None else first[0], notes=tuple(notes),
    )


def _reasons(node: dict[str, Any], *, at_edge: bool) -> list[str]:
    op = node["op"]
    if op not in SUPPORTED_OPS:
        return ["not in the Edge TPU supported-op list"]
    if op in ("QUANTIZE", "DEQUANTIZE") and at_edge:
        return []  # the float<->int8 conversion at the graph's ends is expected to stay on the CPU
    tensor_types = set(node["input_dtypes"]) | set(node["output_dtypes"])
    bad = sorted(tensor_types - EIGHT_BIT - _ALLOWED_OTHER)
    return [f"runs on {', '.join(bad)} tensors (needs int8/uint8)"] if bad else []


def compiler_path() -> str | None:
    """Path of `edgetpu_compiler` on PATH, or None."""
    return shutil.which(COMPILER)


def require_compiler(int8_model: Path) -> None:
    """Refuse `--formats edgetpu` before any conversion when the compiler is not on PATH.

    Raises:
        EdgetlError: naming the exact command to run on a machine that has the compiler.
    """
    if compiler_path() is None:
        raise EdgetlError(_missing_compiler(str(int8_model)))


def _missing_compiler(int8_model: str) -> str:
    return (
        f"{COMPILER} is not on PATH, so the Edge TPU model cannot be compiled. Install it (Debian/Ubuntu x86_64: "
        "https://coral.ai/docs/edgetpu/compiler/), or export --formats tflite-int8 and compile that on a machine "
        f"that has it: {COMPILER} -s -o {Path(int8_model).parent} {int8_model}"
    )


def compile_model(model: bytes, *, timeout_s: int = 600) -> tuple[bytes, str]:
    """Run `edgetpu_compiler` on an int8 TFLite model.

    Returns:
        The compiled model bytes and the compiler's log (its `-s` op mapping summary).

    Raises:
        EdgetlError: if the compiler is not on PATH or fails.
    """
    exe = compiler_path()
    if exe is None:
        raise EdgetlError(_missing_compiler("model_tflite-int8.tflite"))
    with tempfile.TemporaryDirectory(prefix="edgetl-edgetpu-") as tmp:
        src = Path(tmp) / "model.tflite"
        src.write_bytes(model)
        proc = subprocess.run(
            [exe, "-s", "-o", tmp, str(src)], capture_output=True, text=True, timeout=timeout_s, check=False
        )
        compiled = Path(tmp) / "model_edgetpu.tflite"
        if proc.returncode != 0 or not compiled.exists():
            raise EdgetlError(
                f"{COMPILER} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}"
            )
        return compiled.read_bytes(), proc.stdout


def export_edgetpu(source: Any, opts: Any, out: Path, calib: Any) -> Path:
    """Edge TPU model: int8 TFLite with batch 1, pre-flight report beside it, then the compiler.

    The pre-flight report (`model_edgetpu_preflight.json`) is written first, so it is there even
    when the compiler is missing or fails.
    """
    import json

    from edgetl.export import tflite
    from edgetl.runtime.tflite_reader import read_tflite
    from edgetl.spec import write_text_atomic

    recipe, data, tried = tflite.convert_int8(source, opts, calib, batch=1)
    data, target = tflite.to_target(source, opts, calib, recipe, data, "edgetpu", full_integer=True, batch=1)
    parsed = read_tflite(data, source="edgetpu")
    report = preflight(parsed["operators"], parsed["inputs"], parsed["outputs"])
    write_text_atomic(out.with_name(f"{out.stem}_preflight.json"), json.dumps(report.to_dict(), indent=2))
    compiled, log = compile_model(data)
    return tflite.finish(source, compiled, "edgetpu", out, quantization=f"full integer int8 ({opts.io_dtype} io), "
                         "compiled for the Edge TPU", edgetpu_compiler_log=log.strip()[-2000:],
                         quantization_recipe=recipe, quantization_trials=tried,
                         weights_rounded=source.rounded_weights(recipe),
                         calibration_images=int(len(calib)) if calib is not None else 0,
                         **({} if target is None else {"target_agreement": target.to_dict()}))
