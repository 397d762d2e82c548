"""Verify and time artefacts on the device itself: `edgetl verify/bench --device ssh://[USER@]HOST[:PORT]`.

Quantized kernels differ between CPUs (a third-party int8 MobileNetV2 scores one photo 0.887 on
x86 and 0.914 on arm64), so parity proven on the exporting host says little about a Raspberry
Pi. Here the device decodes the same photo files with its own Pillow, runs each artefact with its
own interpreter (`python -m edgetl.runtime.remote`) and streams the scores back; the host judges
them with the same gate as its own run (`edgetl.verify.sample_gate`) and compares them with the host's
scores of the same artefact.

The host side imports numpy and edgetl's gate only; the transport (`edgetl.device.transport`)
and the session (`edgetl.device.session`) know nothing of the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.device.session import probe, run_job
from edgetl.device.transport import SshTransport, Transport, parse_target
from edgetl.errors import EdgetlError

DEFAULT_PYTHON = "python3"


@dataclass(frozen=True)
class DeviceVerdict:
    """What the device measured for verify. Immutable, so thread-safe.

    Attributes:
        facts: verify.json's top-level "device" object (target, machine, system, python,
            edgetl, interpreters, cpu).
        artefacts: Per artefact file name, its "device" object (or {"skipped": why}).
        failures: Per artefact file name, each failed device check as "on the device: ...".
    """

    facts: dict[str, Any]
    artefacts: dict[str, dict[str, Any]]
    failures: dict[str, list[str]] = field(default_factory=dict)


def verify_on_device(transport: Transport, python: str, artefacts: Sequence[tuple[str, Path, dict[str, Any]]],
                     photos: Sequence[Path], truth: np.ndarray | None, ref_probs: np.ndarray,
                     host_probs: dict[str, np.ndarray | None], threads: int | None = None) -> DeviceVerdict:
    """Run every artefact on the device on the photo files and judge its scores.

    Args:
        transport: How to reach the device.
        python: The device's python with edgetl[runtime].
        artefacts: (format, path, threshold) per artefact; the threshold as in `ParityResult.threshold`.
        photos: The photo files, in the order of `ref_probs` rows.
        truth: Label index per photo (-1 unlabelled), or None.
        ref_probs: The float model's scores (N, C).
        host_probs: Per artefact file name, the host's scores of it (or None when it did not run).
        threads: Interpreter threads on the device. Defaults to `None`.

    Raises:
        EdgetlError: when the device cannot be reached, lacks edgetl, or the run ends early.
    """
    files = [(path.name, path) for _, path, _ in artefacts]
    files += [(f"p{i}{photo.suffix.lower()}", photo) for i, photo in enumerate(photos)]
    job = {"mode": "verify", "artefacts": [path.name for _, path, _ in artefacts], "threads": threads,
           "photos": [name for name, _ in files[len(artefacts):]]}
    facts, events = _probe_and_run(transport, python, files, job)
    scores, times = _collect_scores(events, len(photos))
    formats = {path.name: fmt for fmt, path, _ in artefacts}
    verdict = DeviceVerdict(facts=device_facts(transport, facts, events, formats), artefacts={})
    for _, path, threshold in artefacts:
        skipped = next((e["reason"] for e in events if e["event"] == "skipped" and e["name"] == path.name), None)
        if skipped is not None or path.name not in scores:
            verdict.artefacts[path.name] = {"skipped": f"skipped on the device: {skipped or 'not run'}"}
            continue
        figures, failures = judge(np.asarray(scores[path.name], np.float32), times[path.name], ref_probs, truth,
                                  host_probs.get(path.name), threshold)
        verdict.artefacts[path.name] = figures
        verdict.failures[path.name] = failures
    return verdict


def _probe_and_run(transport: Transport, python: str, files: list[tuple[str, Path]], job: dict[str, Any]
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The probe's facts and the run's events; Ctrl-C at any point is one error line (exit 2), as a fault."""
    try:
        return probe(transport, python), run_job(transport, python, files, job)
    except KeyboardInterrupt:
        raise EdgetlError(f"Interrupted (Ctrl-C) while working with {transport.target}; nothing was written.") from None


def device_facts(transport: Transport, facts: dict[str, Any], events: list[dict[str, Any]],
                 formats: dict[str, str] | None = None) -> dict[str, Any]:
    """verify.json's top-level "device" object from the probe and the `opened` events (`formats`: per file name)."""
    interpreters = []
    for event in events:
        if event["event"] == "opened":
            name, _, version = str(event["interpreter"]).rpartition(" ")
            interpreters.append({"artefact": event["name"], "format": (formats or {}).get(event["name"]),
                                 "name": name, "version": version})
    return {"target": transport.target, "machine": facts.get("machine"), "system": facts.get("system"),
            "python": facts.get("python"), "edgetl": facts.get("edgetl"), "interpreters": interpreters,
            "cpu": facts.get("cpu")}


def _collect_scores(events: list[dict[str, Any]], n: int) -> tuple[dict[str, list], dict[str, list[float]]]:
    scores: dict[str, list] = {}
    times: dict[str, list[float]] = {}
    photos = [e for e in events if e["event"] == "photo"]
    if len(photos) != n:
        raise EdgetlError(f"The device returned {len(photos)} of {n} photos' scores.")
    for event in sorted(photos, key=lambda e: e["index"]):
        for name, row in event["scores"].items():
            scores.setdefault(name, []).append(row)
            times.setdefault(name, []).append(float(event["ms"][name]))
    return scores, times


def judge(probs: np.ndarray, ms: list[float], ref_probs: np.ndarray, truth: np.ndarray | None,
          host: np.ndarray | None, threshold: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """One artefact's device figures and its failed checks, judged by the host's gate."""
    from edgetl.verify import sample_gate

    if probs.shape != ref_probs.shape:
        return {"n": len(probs), "shape_ok": False}, [
            f"on the device: output shape {probs.shape} != float model's {ref_probs.shape}"]
    pred, ref_pred = probs.argmax(1), ref_probs.argmax(1)
    gate, failures = sample_gate.judge_sample(pred, ref_pred, truth, threshold)
    max_dprob = float(np.abs(probs - ref_probs).max())
    if not np.isfinite(probs).all():
        failures.append("outputs contain NaN or infinity")
    if threshold.get("atol") is not None and not max_dprob <= threshold["atol"]:
        failures.append(f"max |Δprob| {max_dprob:.3g} > atol {threshold['atol']:.3g}")
    accuracy = float((pred == truth)[truth >= 0].mean()) if truth is not None and (truth >= 0).any() else None
    figures = {
        "agreement": float((pred == ref_pred).mean()), "disagreements": gate["disagreements"], "n": len(probs),
        "accuracy": accuracy, "max_abs_dprob": max_dprob,
        "host_device_top1_differ": None if host is None else int((host.argmax(1) != pred).sum()),
        "host_device_max_abs_diff": None if host is None else float(np.abs(host - probs).max()),
        "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
        "gate": gate, "passed": not failures,
    }
    return figures, [f"on the device: {reason}" for reason in failures]


def bench_on_device(transport: Transport, python: str, model: Path, *, photos: Sequence[Path] = (),
                    runs: int = 100, warmup: int = 10, threads: int | None = None) -> dict[str, Any]:
    """`edgetl bench` run on the device: its latency p50/p90/p99, photos/s on `photos`, and its facts.

    Returns:
        `BenchReport.to_dict()` of the device's run plus "device" (the facts as in verify.json).

    Raises:
        EdgetlError: as `verify_on_device`, and when the device cannot run the model.
    """
    from edgetl.spec import check_regular_file

    check_regular_file(model, "Model file")
    files = [(model.name, model)] + [(f"p{i}{p.suffix.lower()}", p) for i, p in enumerate(photos)]
    job = {"mode": "bench", "artefacts": [model.name], "threads": threads, "runs": runs, "warmup": warmup,
           "photos": [name for name, _ in files[1:]]}
    facts, events = _probe_and_run(transport, python, files, job)
    for event in events:
        if event["event"] == "skipped":
            raise EdgetlError(f"{model.name} cannot run on {transport.target}: {event['reason']}")
    report = next(e["report"] for e in events if e["event"] == "bench")
    return {**report, "device": device_facts(transport, facts, events)}


__all__ = ["DEFAULT_PYTHON", "DeviceVerdict", "SshTransport", "Transport", "bench_on_device", "parse_target",
           "verify_on_device"]
