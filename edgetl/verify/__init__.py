"""`edgetl verify`: prove each exported artefact behaves like the float Keras model, image by image.

Every photo is decoded once (`edgetl.runtime.image.load_pixels`) to uint8 pixels; the Keras
model sees them as float32, each artefact through `edgetl.runtime.Classifier` (the code path
that ships to devices, which quantizes int8 inputs with the tensor's scale and zero point). For
each artefact: output shape first, then top-1 agreement with the float model, max and mean
|Δprobability|, accuracy and its delta (overall and per class), size and CPU latency. All checks
run before the verdict; thresholds come from each format's `Parity` row in
`edgetl.export.FORMATS`, with `min_agreement`/`max_accuracy_drop` overridable for all.

Writes `verify.json`, `verify.md` and `parity.png` into `RUN_DIR/export/`.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgetl._callable import make_callable
from edgetl.device import parse_target, verify_on_device
from edgetl.errors import EdgetlError
from edgetl.runtime.image import is_image_file
from edgetl.runtime.pipeline import decode_workers
from edgetl.safety import check_manifest, check_number, disk_errors, vouched_for
from edgetl.verify import float_reference, sample_gate
from edgetl.verify.float_reference import BATCH, keras_latency, latency
from edgetl.verify.reports import render_markdown, sample_note, write_reports
from edgetl.verify.results import ParityResult, VerifyReport

make_callable(__name__)  # `edgetl.verify(...)` runs `verify()` below


def verify(
    run_dir: str | Path,
    *,
    data: str | Path | None = None,
    images: Sequence[str | Path] | None = None,
    probe: str | Path | None = None,
    min_agreement: float | None = None,
    max_accuracy_drop: float | None = None,
    max_images: int | None = None,
    threads: int | None = None,
    seed: int = 0,
    strict: bool = False,
    write: bool = True,
    formats: Sequence[str] | None = None,
    device: str | None = None,
    ssh_config: str | Path | None = None,
    device_python: str = "python3",
    allow_unproven: bool = False,
    wait: bool = False,
) -> VerifyReport:
    """Compare every artefact in `RUN_DIR/export/` with the run's float Keras model.

    Args:
        run_dir: A RUN_DIR with model.keras and an export/ folder.
        data: A folder of `<class>/<image>` photos whose class names equal the run's labels, or
            of unlabelled photos directly inside it. Defaults to `None` (every held-out photo of
            the run: its validation and test splits).
        images: Explicit unlabelled photos instead of `data`. Defaults to `None`.
        probe: A folder of further unlabelled photos (searched recursively) that count towards
            agreement only. Defaults to `None`.
        min_agreement: Override of every format's minimum top-1 agreement. Defaults to `None`
            (each format's `Parity.min_agreement`, 0.98). Both this and `max_accuracy_drop` are
            judged as counts of photos with `edgetl.verify.sample_gate` (an artefact fails when the
            sample shows, at 95% confidence, that it misses the threshold).
        max_accuracy_drop: Override of the maximum accuracy loss (0.02 = 2 points). Defaults to `None`.
        max_images: Compare at most this many images, drawn with `seed`. Defaults to `None` (all).
        threads: Interpreter threads for the artefacts. Defaults to `None`.
        seed: Seed of the `max_images` draw. Defaults to `0`.
        strict: Raise one `EdgetlError` listing every failure instead of returning. Defaults to `False`.
        write: Write verify.json, verify.md and parity.png; the RUN_DIR is then locked while
            verify runs (`edgetl.runlock`), so an export or train of it waits or stops. Defaults to `True`.
        formats: Judge only the artefacts of these formats (e.g. "tflite-int8"). Defaults to `None` (all).
        device: `ssh://[USER@]HOST[:PORT]`: also run every artefact there on the same photo
            files (`edgetl.device`), judged by the same gate. Defaults to `None` (this host only).
        ssh_config: An ssh config file for the device (`ssh -F`). Defaults to `None` (ssh's own).
        device_python: The device's python with edgetl[runtime]. Defaults to `"python3"`.
        allow_unproven: Check an export folder without a manifest (export.json) on its artefacts'
            own metadata, with a warning, instead of refusing it. Defaults to `False`.
        wait: Wait for another process writing the run instead of raising `FolderBusy`.
            Defaults to `False`.

    Returns:
        The report (`report.passed` is the verdict).

    Raises:
        EdgetlError: for bad input (no model, no artefacts, classes that differ from the labels,
            a corrupt artefact, an export without a manifest), and with `strict=True` when any
            check fails; `edgetl.runlock.FolderBusy` while another process writes the run.
    """
    from edgetl.runlock import folder_lock

    for name, value in (("min_agreement", min_agreement), ("max_accuracy_drop", max_accuracy_drop)):
        check_number(name, value, 0.0, 1.01, allow_none=True)
    check_number("max_images", max_images, 1, 10_000_000, integer=True, allow_none=True)
    check_number("seed", seed, 0, 2**32 - 1, integer=True)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EdgetlError(f"Run directory not found. Received: {run_dir}")
    transport = None if device is None else parse_target(device, ssh_config)
    with folder_lock(run_dir, "edgetl verify", wait=wait) if write else nullcontext():
        report = _verify_locked(run_dir, data=data, images=images, probe=probe, min_agreement=min_agreement,
                                max_accuracy_drop=max_accuracy_drop, max_images=max_images, threads=threads,
                                seed=seed, write=write, formats=formats, transport=transport,
                                device_python=device_python, allow_unproven=allow_unproven)
    if strict and not report.passed:
        raise EdgetlError("Parity failed:\n" + "\n".join(report.failures))
    return report


def _verify_locked(run_dir: Path, *, data: str | Path | None, images: Sequence[str | Path] | None,
                   probe: str | Path | None, min_agreement: float | None, max_accuracy_drop: float | None,
                   max_images: int | None, threads: int | None, seed: int, write: bool,
                   formats: Sequence[str] | None, transport: Any, device_python: str,
                   allow_unproven: bool) -> VerifyReport:
    """`verify` once its options are checked (and, when it writes, the run is locked)."""
    from edgetl.export import FORMATS
    from edgetl.rundir import check_run_dir, load_run, read_run_metadata

    export_dir = run_dir / "export"
    check_run_dir(run_dir)
    meta = read_run_metadata(run_dir)
    recorded = export_dir / float_reference.FILE
    # Without the float model's recorded scores, TensorFlow and the model load while photos decode.
    loading = None if recorded.is_file() else _in_background(load_run, run_dir)
    try:
        artefacts = find_artefacts(export_dir)
        check_manifest(export_dir, run_dir / "model.keras", [path for _, path in artefacts],
                       allow_unproven=allow_unproven)
    except EdgetlError:
        if loading is not None:
            loading.result()  # a model that cannot load is the run's real problem: its error comes first
        raise
    artefacts = _only_formats(artefacts, formats)
    paths, truth, source = _select_images(run_dir, meta.labels, data, images, sample_gate.held_out_split(run_dir))
    if probe is not None:
        paths, truth, source = sample_gate.add_probe(paths, truth, source, Path(probe))
    if max_images is not None and len(paths) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(paths), size=max_images, replace=False))
        paths, truth = [paths[i] for i in keep], (truth[keep] if truth is not None else None)
    pixels, paths, truth = _decode(paths, truth, meta.preprocessing)

    jobs, skipped = [], []
    for fmt, path in artefacts:
        row = FORMATS.get(fmt)
        if row is not None and not row.runnable:
            skipped.append((path.name, f"{fmt} needs its accelerator to run"))
            continue
        parity = row.parity if row is not None else FORMATS["tflite-int8"].parity
        threshold = {
            "min_agreement": parity.min_agreement if min_agreement is None else min_agreement,
            "max_accuracy_drop": parity.max_accuracy_drop if max_accuracy_drop is None else max_accuracy_drop,
            "atol": parity.atol,
        }
        jobs.append((fmt, path, threshold))
    # Recorded scores count only where the manifest vouches for them (check_manifest vouched for
    # model.keras, or there is no manifest and so no vouching); else the model runs.
    usable = loading is None and vouched_for(export_dir, recorded)
    cached = float_reference.lookup(export_dir, paths) if usable else None
    if cached is None:
        loading = loading or _in_background(load_run, run_dir)
    ref_probs, runs = _run_side_by_side(
        (lambda: cached[0]) if cached else (lambda: float_reference.predict(loading.result()[0], pixels)),
        pixels, [path for _, path, _ in jobs], meta.preprocessing.image_size, threads,
    )
    latency_ms = cached[1] if cached else keras_latency(loading.result()[0], pixels)
    reference = {**_reference_figures(ref_probs, truth, meta.labels, latency_ms),
                 "scores_from": "model.keras" if cached is None else f"export/{float_reference.FILE}"}
    results, outputs, by_name = [], {}, {}
    for (fmt, path, threshold), run in zip(jobs, runs):
        result, probs = _compare(fmt, path, run, pixels, truth, ref_probs, reference, meta, threshold)
        results.append(result)
        outputs[fmt] = by_name[path.name] = probs
    facts = None
    if transport is not None:
        verdict = verify_on_device(transport, device_python, jobs, paths, truth, ref_probs, by_name, threads)
        results, facts = [_with_device(r, verdict) for r in results], verdict.facts
    report = VerifyReport(
        run_dir=run_dir, data=source, images=len(paths), labelled=truth is not None, reference=reference,
        results=tuple(results), cross=_cross(outputs), skipped=tuple(skipped),
        flips=sample_gate.flipped_photos(paths, ref_probs, outputs, meta.labels, truth), device=facts,
    )
    if write:
        with disk_errors(f"the parity reports into {export_dir}"):
            write_reports(report, export_dir)
    return report


def find_artefacts(export_dir: Path) -> list[tuple[str, Path]]:
    """(format, path) of every `model_*.tflite` / `model_*.onnx` in an export folder.

    Raises:
        EdgetlError: when there are none.
    """
    found = []
    for path in sorted(Path(export_dir).glob("model_*")) if Path(export_dir).is_dir() else []:
        if path.suffix not in (".tflite", ".onnx") or not path.is_file():
            continue
        fmt = path.stem.removeprefix("model_")
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            try:
                fmt = json.loads(sidecar.read_text(encoding="utf-8")).get("format") or fmt
            except json.JSONDecodeError as e:
                raise EdgetlError(f"Sidecar {sidecar.name} is not valid JSON ({e}). Received: {sidecar}") from e
        found.append((fmt, path))
    order = {name: i for i, name in enumerate(_format_order())}
    found.sort(key=lambda item: (order.get(item[0], len(order)), item[1].name))
    if not found:
        raise EdgetlError(f"No artefacts (model_*.tflite, model_*.onnx) in {export_dir}; run `edgetl export` first.")
    return found


def _only_formats(artefacts: list[tuple[str, Path]], formats: Sequence[str] | None) -> list[tuple[str, Path]]:
    if formats is None:
        return artefacts
    unknown = sorted(set(formats) - {fmt for fmt, _ in artefacts})
    if unknown:
        raise EdgetlError(f"No artefact of format {', '.join(unknown)} in the export folder. Received: "
                          f"formats={list(formats)}, artefacts {[fmt for fmt, _ in artefacts]}")
    return [(fmt, path) for fmt, path in artefacts if fmt in formats]


def _format_order() -> list[str]:
    from edgetl.export import FORMATS

    return list(FORMATS)


def _select_images(run_dir: Path, labels: Sequence[str], data: str | Path | None, images: Sequence[str | Path] | None,
                   test: list[tuple[Path, str]] | None) -> tuple[list[Path], np.ndarray | None, str]:
    if images is not None:
        if not images:
            raise EdgetlError("images is empty; pass at least one photo.")
        return [Path(p) for p in images], None, f"{len(images)} unlabelled images"
    if data is None:
        if not test:
            raise EdgetlError(
                f"{run_dir} has no held-out split (splits.json); pass --data TEST_DIR with <class>/<image> folders."
            )
        index = {label: i for i, label in enumerate(labels)}
        unknown = sorted({cls for _, cls in test} - set(index))
        if unknown:
            raise EdgetlError(f"splits.json test classes {unknown} are not in labels.txt. Received: {run_dir}")
        return (
            [p for p, _ in test], np.array([index[c] for _, c in test]), f"validation and test splits of {run_dir.name}"
        )
    data = Path(data)
    if not data.is_dir():
        raise EdgetlError(f"Test data folder not found. Received: data={data}")
    subdirs = sorted(d for d in data.iterdir() if d.is_dir() and any(is_image_file(p) for p in d.rglob("*")))
    loose = sorted(p for p in data.iterdir() if is_image_file(p))
    if not subdirs:
        if not loose:
            raise EdgetlError(f"No images in the test data folder. Received: data={data}")
        return loose, None, str(data)
    names = {d.name for d in subdirs}
    unknown, missing = sorted(names - set(labels)), sorted(set(labels) - names)
    if unknown or missing:
        raise EdgetlError(
            f"The test data classes differ from the run's labels: not in labels: {unknown or 'none'}; "
            f"labels without a folder: {missing or 'none'}. Received: data={data}, labels={list(labels)}"
        )
    paths, truth = [], []
    for i, label in enumerate(labels):
        files = sorted(p for p in (data / label).rglob("*") if is_image_file(p))
        paths += files
        truth += [i] * len(files)
    return paths, np.array(truth), str(data)


def _decode(paths: list[Path], truth: np.ndarray | None, spec: Any) -> tuple[np.ndarray, list[Path], np.ndarray | None]:
    pixels, kept, bad = float_reference.decode(paths, spec)
    if bad:
        warnings.warn(f"Skipped {len(bad)} unreadable image(s): {'; '.join(bad[:5])}", stacklevel=4)
    if pixels is None:
        raise EdgetlError("None of the test images could be decoded.")
    return pixels, [paths[i] for i in kept], (truth[kept] if truth is not None else None)


@dataclass(frozen=True)
class _ArtefactRun:
    """One artefact opened and run on every image; `probs` is None when it cannot take these pixels."""

    clf: Any
    probs: np.ndarray | None


def _in_background(fn: Any, *args: Any) -> Future:
    """Start `fn(*args)` on its own thread and return its future."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgetl-load")
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)  # the call still runs to its end; nothing else is queued
    return future


def _run_side_by_side(reference_scores: Callable[[], np.ndarray], pixels: np.ndarray, artefacts: Sequence[Path],
                      image_size: tuple[int, int], threads: int | None) -> tuple[np.ndarray, list[_ArtefactRun]]:
    """The float model's outputs (`reference_scores()`) and every artefact's, computed at once.

    The artefacts run on a few threads while this one computes the float model's scores (for
    which it may first wait for the Keras model to load). Keras and the interpreters release
    the GIL while they compute, so this keeps every core busy; each model still sees exactly the
    same pixels as when run alone, and gives the same outputs.
    """
    with ThreadPoolExecutor(max_workers=decode_workers(), thread_name_prefix="edgetl-verify") as pool:
        runs = [pool.submit(_run_artefact, path, pixels, image_size, threads) for path in artefacts]
        reference = reference_scores()
        return reference, [run.result() for run in runs]


def _run_artefact(path: Path, pixels: np.ndarray, image_size: tuple[int, int], threads: int | None) -> _ArtefactRun:
    from edgetl.runtime import Classifier

    try:
        clf = Classifier.from_file(path, threads=threads)
    except EdgetlError as e:
        raise EdgetlError(f"Cannot open artefact {path.name}: {e}") from e
    if tuple(clf.spec.image_size) != tuple(image_size):  # another run's artefact: judged on its metadata alone
        return _ArtefactRun(clf, None)
    return _ArtefactRun(
        clf, np.concatenate([clf.run_pixels(pixels[i : i + BATCH]) for i in range(0, len(pixels), BATCH)])
    )


def _per_class(pred: np.ndarray, truth: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    return {label: float((pred[truth == i] == i).mean()) for i, label in enumerate(labels) if (truth == i).any()}


def _reference_figures(probs: np.ndarray, truth: np.ndarray | None, labels: Sequence[str],
                       latency_ms: tuple[float, float]) -> dict[str, Any]:
    pred = probs.argmax(1)
    p50, p95 = latency_ms
    return {
        "name": "model.keras", "format": "keras",
        "accuracy": float((pred == truth)[truth >= 0].mean()) if truth is not None else None,
        "per_class_accuracy": _per_class(pred, truth, labels) if truth is not None else None,
        "latency_ms_p50": p50, "latency_ms_p95": p95,
    }


def _compare(fmt: str, path: Path, run: _ArtefactRun, pixels: np.ndarray, truth: np.ndarray | None,
             ref_probs: np.ndarray, reference: dict[str, Any], meta: Any,
             threshold: dict[str, float | None]) -> tuple[ParityResult, np.ndarray | None]:
    clf, probs = run.clf, run.probs
    failures = []
    if tuple(clf.labels) != tuple(meta.labels):
        failures.append(f"labels {list(clf.labels)[:5]} differ from the run's {list(meta.labels)[:5]}")
    if tuple(clf.spec.image_size) != tuple(meta.preprocessing.image_size):
        failures.append(f"input size {clf.spec.image_size} differs from the run's {meta.preprocessing.image_size}")
    shape_ok = probs is not None and probs.shape == ref_probs.shape
    base = dict(name=path.name, format=fmt, path=path, size_bytes=path.stat().st_size, threshold=threshold)
    if not shape_ok:
        if probs is not None:
            failures.insert(0, f"output shape {probs.shape} != float model's {ref_probs.shape}")
        return ParityResult(**base, shape_ok=False, top1_agreement=0.0, max_abs_diff=float("inf"),
                            mean_abs_diff=float("inf"), accuracy=None, accuracy_delta=None, per_class_delta=None,
                            latency_ms_p50=0.0, latency_ms_p95=0.0, failures=tuple(failures)), None
    diff = np.abs(probs - ref_probs)
    pred = probs.argmax(1)
    agreement = float((pred == ref_probs.argmax(1)).mean())
    accuracy = delta = per_class = None
    if truth is not None:
        accuracy = float((pred == truth)[truth >= 0].mean())
        delta = accuracy - reference["accuracy"]
        mine = _per_class(pred, truth, meta.labels)
        per_class = {k: v - reference["per_class_accuracy"][k] for k, v in mine.items()}
    max_diff, mean_diff = float(diff.max()), float(diff.mean())
    if not np.isfinite(probs).all():
        failures.append("outputs contain NaN or infinity (a broken conversion)")
    gate, gate_failures = sample_gate.judge_sample(pred, ref_probs.argmax(1), truth, threshold)
    failures += gate_failures
    if threshold["atol"] is not None and not max_diff <= threshold["atol"]:
        failures.append(f"max |Δprob| {max_diff:.3g} > atol {threshold['atol']:.3g}")
    p50, p95 = latency(clf.run_pixels, pixels[:1])
    return ParityResult(**base, shape_ok=True, top1_agreement=agreement, max_abs_diff=max_diff, mean_abs_diff=mean_diff,
                        accuracy=accuracy, accuracy_delta=delta, per_class_delta=per_class,
                        latency_ms_p50=p50, latency_ms_p95=p95, failures=tuple(failures), gate=gate), probs


def _with_device(result: ParityResult, verdict: Any) -> ParityResult:
    """`result` with its device figures, and the device's failed checks added to its own."""
    return dataclasses.replace(result, device=verdict.artefacts.get(result.name),
                               failures=result.failures + tuple(verdict.failures.get(result.name, ())))


def _cross(outputs: dict[str, np.ndarray | None]) -> dict[str, Any] | None:
    a, b = outputs.get("tflite-fp32"), outputs.get("onnx")
    if a is None or b is None:
        return None
    return {"pair": ["tflite-fp32", "onnx"], "agreement": float((a.argmax(1) == b.argmax(1)).mean()),
            "max_abs_diff": float(np.abs(a - b).max())}


__all__ = ["ParityResult", "VerifyReport", "find_artefacts", "render_markdown", "sample_note", "verify"]
