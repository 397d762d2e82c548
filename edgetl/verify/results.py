"""What verify found: `ParityResult` per artefact and the `VerifyReport` over all of them.

Their own module, below both the comparison (`edgetl.verify`) and the reports written from them
(`edgetl.verify.reports`), so that neither of those two imports the other back. Both are frozen
dataclasses: safe to share between threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ParityResult:
    """How one artefact compares with the float model.

    Attributes:
        name: Artefact file name.
        format: Format key (from its sidecar or file name).
        path: The artefact.
        size_bytes: File size.
        shape_ok: Output shape equals the float model's (N, num_classes).
        top1_agreement: Share of images where its top-1 class equals the float model's.
        max_abs_diff: Largest |probability difference| over all images and classes.
        mean_abs_diff: Mean |probability difference|.
        accuracy: Top-1 accuracy on the labelled images, or None when unlabelled.
        accuracy_delta: `accuracy` minus the float model's, or None.
        per_class_delta: Per-label accuracy minus the float model's, or None.
        latency_ms_p50: Median single-image latency (`Classifier.run_pixels`) on this CPU.
        latency_ms_p95: 95th percentile of the same.
        threshold: The thresholds applied: min_agreement, max_accuracy_drop, atol.
        failures: Each failed check as a sentence; empty when it passed.
        gate: The counts the agreement and accuracy checks judged (`sample_gate`): photos,
            disagreements and how many were allowed, the Wilson interval of the agreement, and
            labelled photos lost against the float model and how many were allowed.
        device: Its figures on the device (`edgetl.device.judge`) with `verify --device`, else None.
    """

    name: str
    format: str
    path: Path
    size_bytes: int
    shape_ok: bool
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    accuracy: float | None
    accuracy_delta: float | None
    per_class_delta: dict[str, float] | None
    latency_ms_p50: float
    latency_ms_p95: float
    threshold: dict[str, float | None]
    failures: tuple[str, ...] = ()
    gate: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "format": self.format, "path": str(self.path), "size_bytes": self.size_bytes,
            "accuracy": self.accuracy, "accuracy_delta": self.accuracy_delta, "agreement": self.top1_agreement,
            "max_abs_diff": self.max_abs_diff, "mean_abs_diff": self.mean_abs_diff,
            "latency_ms_p50": self.latency_ms_p50, "latency_ms_p95": self.latency_ms_p95,
            "shape_ok": self.shape_ok, "per_class_delta": self.per_class_delta, "threshold": self.threshold,
            "failures": list(self.failures), "passed": self.passed, "gate": self.gate,
            **({"device": self.device} if self.device is not None else {}),
        }


@dataclass(frozen=True)
class VerifyReport:
    """The verdict on every artefact of a run.

    Attributes:
        run_dir: The run.
        data: Where the images came from ("test split of RUN" or a folder).
        images: How many images were compared.
        labelled: True when accuracy could be measured.
        reference: The float Keras model's figures (accuracy, per-class accuracy, latency).
        results: One `ParityResult` per artefact.
        cross: Agreement and max |Δprob| between the TFLite fp32 and ONNX artefacts, when both exist.
        skipped: Artefacts that cannot run on this CPU (e.g. Edge TPU), with the reason.
        flips: Per artefact, the photos whose top-1 differs from the float model's, with both
            models' top class and score (`sample_gate.flipped_photos`).
        device: The device the artefacts also ran on (`DeviceVerdict.facts`), or None.
    """

    run_dir: Path
    data: str
    images: int
    labelled: bool
    reference: dict[str, Any]
    results: tuple[ParityResult, ...]
    cross: dict[str, Any] | None = None
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    flips: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    device: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[str]:
        """One line per failed check: ``- model_tflite-int8.tflite: top-1 agreement 0.84 < 0.98``."""
        return [f"- {r.name}: {reason}" for r in self.results for reason in r.failures]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir), "data": self.data, "images": self.images, "labelled": self.labelled,
            "reference": self.reference, "artefacts": [r.to_dict() for r in self.results], "cross": self.cross,
            "skipped": [{"name": n, "reason": why} for n, why in self.skipped], "passed": self.passed,
            "flips": self.flips, **({"device": self.device} if self.device is not None else {}),
        }
