"""Golden vectors: reference photos plus the exact tensors and outputs every artefact must give.

`write_golden` runs each artefact on a few photos and records, per docs/contract.md, the
decoded pixels' checksum, the exact input tensor's checksum, the raw output and the top-k.
`check_golden` re-runs one model on the same PNGs (on a device, say) and compares, so a port
of the preprocessing or a different interpreter build is caught before it ships.

Pixels and the input tensor must be bit-exact everywhere. Outputs follow `tolerance_for`: a
float model's within 1e-5 with the same top-k; a quantized model's (integer outputs, or an
int8/dynamic-range edgetl artefact with float outputs) within `QUANTIZED_STEPS` output steps
with the same top-1, because x86 and ARM int8 kernels round differently (measured: 7 steps of
1/256 on a correct arm64 run of a third-party uint8 MobileNetV2).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgetl._version import __version__
from edgetl.errors import EdgetlError
from edgetl.runtime.backends import interpreter_version
from edgetl.runtime.classifier import Classifier
from edgetl.runtime.image import load_image, load_pixels
from edgetl.runtime.pipeline import decode_workers, map_ahead
from edgetl.spec import PreprocessingSpec, write_text_atomic

GOLDEN_VERSION = 1
GOLDEN_FILE = "golden.json"
MAX_SIDE = 256
"""Reference photos are stored at most this many pixels on the long side, so the folder stays small."""
FLOAT_ATOL = 1e-5
QUANTIZED_STEPS = 12
"""Output steps a quantized model may move between CPU architectures: 7 measured (x86 vs qemu
arm64, ai-edge-litert 2.3, uint8 MobileNetV2) plus margin. Top-1 must still match."""
PROBABILITY_STEP = 1 / 256
"""The step of an int8 softmax output, used for quantized models whose output is float."""
QUANTIZED_FORMATS = ("tflite-int8", "tflite-dynamic", "onnx-int8", "edgetpu")


@dataclass(frozen=True)
class Tolerance:
    """How far one model's outputs may move on another CPU and still be the same model.

    Attributes:
        atol: Largest |difference| of a raw output value (in the raw dtype's units) or a score.
        score_atol: The same bound on a dequantized score.
        top_k_exact: True when every top-k index must match; False: only the top-1.
        rule: The rule in words, for reports.
    """

    atol: float
    score_atol: float
    top_k_exact: bool
    rule: str


def tolerance_for(clf: Classifier) -> Tolerance:
    """The cross-device tolerance for `clf`'s outputs (the rule in the module docstring)."""
    out = clf.output_info
    if out.quantized:
        return Tolerance(atol=QUANTIZED_STEPS, score_atol=QUANTIZED_STEPS * out.scale, top_k_exact=False,
                         rule=f"quantized outputs within {QUANTIZED_STEPS} steps of {out.scale:.3g}, same top-1")
    fmt = getattr(clf.metadata, "format", None)
    if fmt in QUANTIZED_FORMATS:
        atol = QUANTIZED_STEPS * PROBABILITY_STEP
        return Tolerance(atol=atol, score_atol=atol, top_k_exact=False,
                         rule=f"{fmt} float outputs within {QUANTIZED_STEPS} steps of 1/256 ({atol:.3g}), same top-1")
    return Tolerance(atol=FLOAT_ATOL, score_atol=FLOAT_ATOL, top_k_exact=True,
                     rule=f"float outputs within {FLOAT_ATOL:g}, same top-k")


@dataclass(frozen=True)
class ImageCheck:
    """The verdict on one golden image: `reasons` says what differed (empty when it passed)."""

    image: str
    reasons: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class GoldenReport:
    """The verdict of `check_golden` on one model: every image, with the reasons each failed."""

    model: Path
    golden: Path
    checks: tuple[ImageCheck, ...]
    made_with: str | None = None
    """The interpreter that wrote the golden vectors, e.g. "ai-edge-litert 2.3.0" (None: not recorded)."""
    runs_on: str = ""
    """The interpreter this check ran on."""
    rule: str = ""
    """The output tolerance applied (`tolerance_for`), in words."""

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def hint(self) -> str:
        """Why a failure may be the interpreter rather than the device ("" when there is no such doubt)."""
        if self.passed or self.made_with is None or self.made_with == self.runs_on:
            return ""
        return (
            f"The golden vectors were made with {self.made_with}; this device runs {self.runs_on}, whose "
            f"kernels may round differently (quantized models especially). For an exact check, run it on "
            f"{self.made_with}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "golden": str(self.golden),
            "passed": self.passed,
            "made_with": self.made_with,
            "runs_on": self.runs_on,
            "hint": self.hint,
            "rule": self.rule,
            "images": [{"image": c.image, "passed": c.passed, "reasons": list(c.reasons)} for c in self.checks],
        }


def write_golden(out_dir: Path, artefacts: Sequence[Path], images: Sequence[Path], top_k: int = 3) -> Path:
    """Write `out_dir/golden.json` and the reference photos (`img_000.png`, ...).

    Args:
        out_dir: Folder to write into (created if needed).
        artefacts: Model files of one trained model (same labels and preprocessing).
        images: Reference photos; each is stored upright, RGB, at most 256 px on the long side.
        top_k: Predictions recorded per image. Defaults to `3`.

    Returns:
        The path of golden.json.

    Raises:
        EdgetlError: if there are no artefacts or images, a model or photo cannot be read, or the
            artefacts disagree on labels or preprocessing.
    """
    if not artefacts or not images:
        raise EdgetlError(
            "Golden vectors need at least one artefact and one image. "
            f"Received: {len(artefacts)} artefacts, {len(images)} images"
        )
    cores = range(decode_workers())  # opening and running the artefacts side by side
    classifiers = list(map_ahead(lambda _, path: Classifier.from_file(path), artefacts, cores))
    first = classifiers[0]
    for clf in classifiers[1:]:
        if clf.labels != first.labels or clf.spec != first.spec:
            raise EdgetlError(
                f"All artefacts in one golden set must share labels and preprocessing. Received: {clf.path.name} "
                f"differs from {first.path.name}"
            )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [_save_reference(image, out_dir / f"img_{i:03d}.png") for i, image in enumerate(images)]
    pixels = [load_pixels(file, first.spec) for file in files]
    document = {
        "golden_version": GOLDEN_VERSION,
        "edgetl_version": __version__,
        "labels": list(first.labels),
        "preprocessing": first.spec.to_dict(),
        "images": [
            {"file": f.name, "pixels_sha256": _sha256(p), "pixels_shape": list(p.shape)}
            for f, p in zip(files, pixels, strict=True)
        ],
        "artefacts": dict(zip(
            (clf.path.name for clf in classifiers),
            map_ahead(lambda _, clf: _artefact_entry(clf, files, pixels, top_k), classifiers, cores),
            strict=True,
        )),
    }
    path = out_dir / GOLDEN_FILE
    write_text_atomic(path, json.dumps(document, indent=1, ensure_ascii=False))
    return path


def check_golden(model: Path, golden_dir: Path) -> GoldenReport:
    """Re-run `model` on the golden photos and compare pixels, input tensor, raw output and top-k.

    Pixels and input tensor must match exactly; outputs within `tolerance_for(model)`.

    Raises:
        EdgetlError: if golden.json is missing or malformed, or has no entry for this model.
    """
    model, golden_dir = Path(model), Path(golden_dir)
    document = _read_golden(golden_dir)
    entry = document["artefacts"].get(model.name)
    if entry is None:
        known = ", ".join(sorted(document["artefacts"])) or "none"
        raise EdgetlError(
            f"{golden_dir / GOLDEN_FILE} has no entry for this model. Received: {model.name}. Entries: {known}"
        )
    clf = Classifier.from_file(model)
    tolerance = tolerance_for(clf)
    interpreters = {
        "made_with": entry.get("interpreter"), "runs_on": interpreter_version(clf.backend), "rule": tolerance.rule,
    }
    spec = PreprocessingSpec.from_dict(document["preprocessing"])
    if spec != clf.spec:
        reason = f"preprocessing differs from golden.json: model {clf.spec}, golden {spec}"
        return GoldenReport(model, golden_dir, tuple(ImageCheck(r["image"], (reason,)) for r in entry["results"]),
                            **interpreters)
    try:
        images = {image["file"]: image for image in document["images"]}
        checks = tuple(_check_image(clf, golden_dir, images[r["image"]], r, tolerance) for r in entry["results"])
    except (KeyError, TypeError) as e:
        raise EdgetlError(f"golden.json is malformed (missing {e}). Received: {golden_dir / GOLDEN_FILE}") from e
    return GoldenReport(model, golden_dir, checks, **interpreters)


def _save_reference(source: Path, target: Path) -> Path:
    img = load_image(source)
    if max(img.size) > MAX_SIDE:
        ratio = MAX_SIDE / max(img.size)
        size = (max(1, round(img.width * ratio)), max(1, round(img.height * ratio)))
        img = img.resize(size, Image.Resampling.BILINEAR)
    img.save(target, format="PNG")
    return target


def _artefact_entry(clf: Classifier, files: list[Path], pixels: list[np.ndarray], top_k: int) -> dict[str, Any]:
    results = []
    for file, pix in zip(files, pixels, strict=True):
        tensor = clf.quantize_input(pix[None])
        raw = clf.invoke_raw(tensor)
        scores = clf.dequantize_output(raw)[0]
        results.append(
            {
                "image": file.name,
                "input_sha256": _sha256(tensor),
                "raw_output": raw.reshape(-1).tolist(),
                "top_k": [p.to_dict() for p in clf.top_k(scores, top_k)],
            }
        )
    return {
        "interpreter": interpreter_version(clf.backend),
        "input": clf.input_info.to_dict(),
        "output": _output_dict(clf),
        "results": results,
    }


def _check_image(clf: Classifier, golden_dir: Path, image: dict[str, Any], expected: dict[str, Any],
                 tolerance: Tolerance) -> ImageCheck:
    path = golden_dir / expected["image"]
    pixels = load_pixels(path, clf.spec)
    if _sha256(pixels) != image["pixels_sha256"]:
        return ImageCheck(path.name, ("decoded pixels differ from golden (pixels_sha256)",))
    tensor = clf.quantize_input(pixels[None])
    if _sha256(tensor) != expected["input_sha256"]:
        return ImageCheck(path.name, ("input tensor differs from golden (input_sha256)",))
    raw = clf.invoke_raw(tensor)
    reasons = [_compare_raw(raw.reshape(-1), np.asarray(expected["raw_output"]), tolerance)]
    want = [(p["index"], p["score"]) for p in expected["top_k"]]
    got = [(p.index, p.score) for p in clf.top_k(clf.dequantize_output(raw)[0], len(want))]
    got_idx, want_idx = [i for i, _ in got], [i for i, _ in want]
    if got_idx[:1] != want_idx[:1] or (tolerance.top_k_exact and got_idx != want_idx):
        reasons.append(f"top-{'k' if tolerance.top_k_exact else '1'} indices {got_idx} != golden {want_idx}")
    else:
        scores = {i: score for i, score in got}
        if any(abs(scores[i] - w) > tolerance.score_atol for i, w in want if i in scores):
            reasons.append(f"top-k scores differ from golden by more than {tolerance.score_atol:.3g}")
    return ImageCheck(path.name, tuple(r for r in reasons if r))


def _compare_raw(raw: np.ndarray, want: np.ndarray, tolerance: Tolerance) -> str:
    if raw.shape != want.shape:
        return f"raw output has {raw.size} values, golden has {want.size}"
    diff = float(np.max(np.abs(raw.astype(np.float64) - want.astype(np.float64)))) if raw.size else 0.0
    return f"raw output max diff {diff:.3g} > {tolerance.atol:.3g} ({tolerance.rule})" if diff > tolerance.atol else ""


def _read_golden(golden_dir: Path) -> dict[str, Any]:
    path = golden_dir / GOLDEN_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise EdgetlError(
            f"No golden vectors found. Received: {path} does not exist. "
            "Export writes them to RUN_DIR/export/golden/"
        ) from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgetlError(f"golden.json cannot be read ({e}). Received: {path}") from e
    if not isinstance(document, dict) or document.get("golden_version") != GOLDEN_VERSION:
        version = document.get("golden_version") if isinstance(document, dict) else None
        raise EdgetlError(f"golden_version must be {GOLDEN_VERSION}. Received: golden_version={version!r} in {path}")
    missing = {"preprocessing", "images", "artefacts"} - document.keys()
    if missing:
        raise EdgetlError(f"golden.json lacks required keys. Received: missing {sorted(missing)} in {path}")
    return document


def _output_dict(clf: Classifier) -> dict[str, Any]:
    info = clf.output_info
    return {"dtype": info.dtype, "scale": info.scale, "zero_point": info.zero_point}


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
