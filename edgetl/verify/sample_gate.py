"""The sample `edgetl verify` judges on: which photos, how many it may lose, and which flipped.

A share measured on a few dozen photos is coarse: on a 37-photo test split one photo is 2.7
points, so a plain "agreement >= 98%" would fail an artefact on a single photo whose float
scores sit near a tie. `edgetl verify` therefore gates on counts:

    an artefact fails only when its sample shows, at 95% one-sided confidence (the Wilson score
    interval), that the true share of photos it loses is above the allowed share.

`allowed_count(n, share)` is the largest count that passes; verify prints it beside the Wilson
interval of the agreement. The rule is the same at every sample size; it allows about
`share * n + 1.6 * sqrt(share * n)` photos (n = 37 at 2%: 2; n = 310: 10; n = 1000: 27), so a
bigger sample makes the gate sharper, never looser in share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.runtime.image import is_image_file

Z_ONE_SIDED_95 = 1.645
SMALL_SAMPLE = 200
"""Below this many photos the verify report adds a note with the interval and the allowance."""


def wilson_interval(successes: int, n: int, z: float = Z_ONE_SIDED_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial share `successes / n` (z = 1.645: 90% two-sided).

    Returns (0.0, 1.0) for an empty sample.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At p = 0 or 1 the bound on that side is exactly p; rounding would put it a hair inside.
    low = 0.0 if successes == 0 else (centre - half) / denom
    high = 1.0 if successes == n else (centre + half) / denom
    return low, high


def allowed_count(n: int, share: float) -> int:
    """Most photos out of `n` an artefact may lose before the sample shows it loses more than `share`.

    That is the largest k whose Wilson lower bound (`wilson_interval(k, n)[0]`) is at most
    `share`; 0 <= k <= n, or -1 when `share` is negative (a threshold above 100%: nothing passes).
    """
    if share < 0:
        return -1
    if n <= 0:
        return 0
    k = 0
    while k < n and wilson_interval(k + 1, n)[0] <= share + 1e-12:
        k += 1
    return k


def held_out_split(run_dir: Path) -> list[tuple[Path, str]] | None:
    """Every labelled photo the run did not train on (validation, then test), or None without splits.json.

    Int8 flips a few photos near a tie, so parity needs as many photos as there are: the test
    split alone is often a few dozen.
    """
    from edgetl.rundir import read_split

    splits = [read_split(run_dir, name) for name in ("val", "test")]
    if all(split is None for split in splits):
        return None
    return [item for split in splits for item in split or []]


def add_probe(paths: list[Path], truth: np.ndarray | None, source: str,
              probe: Path) -> tuple[list[Path], np.ndarray | None, str]:
    """Append the photos under `probe` as unlabelled (truth -1): they count towards agreement only.

    Raises:
        EdgetlError: if the folder does not exist or holds no images.
    """
    if not probe.is_dir():
        raise EdgetlError(f"Probe folder not found. Received: probe={probe}")
    extra = sorted(p for p in probe.rglob("*") if is_image_file(p))
    if not extra:
        raise EdgetlError(f"No images (.jpg, .png, ...) under the probe folder. Received: probe={probe}")
    if truth is not None:
        truth = np.concatenate([truth, np.full(len(extra), -1, dtype=truth.dtype)])
    return paths + extra, truth, f"{source} + {len(extra)} unlabelled probe photos from {probe}"


def judge_sample(pred: np.ndarray, ref_pred: np.ndarray, truth: np.ndarray | None,
                 threshold: dict[str, float | None]) -> tuple[dict[str, Any], list[str]]:
    """Judge agreement and accuracy as counts of photos (`edgetl.verify.sample_gate`), not raw shares.

    Returns:
        The figures (for `ParityResult.gate`) and one sentence per failed check.
    """
    n, disagree = len(pred), int((pred != ref_pred).sum())
    allowed = allowed_count(n, 1.0 - threshold["min_agreement"])
    low, high = wilson_interval(n - disagree, n)
    gate: dict[str, Any] = {"photos": n, "disagreements": disagree, "allowed_disagreements": allowed,
                            "agreement_interval": [round(low, 4), round(high, 4)]}
    failures = []
    if disagree > allowed:
        failures.append(f"top-1 agreement {(n - disagree) / n:.4f} < {threshold['min_agreement']:.4f}: "
                        f"{disagree} of {n} "
                        f"photos disagree with the float model, {_allowance(allowed, n)} (95% upper bound {high:.4f})")
    if truth is not None:
        known = truth >= 0
        lost = int((ref_pred == truth)[known].sum() - (pred == truth)[known].sum())
        allowed_lost = allowed_count(int(known.sum()), threshold["max_accuracy_drop"])
        gate |= {"labelled_photos": int(known.sum()), "photos_lost": lost, "allowed_photos_lost": allowed_lost}
        if lost > allowed_lost:
            failures.append(f"accuracy drop {lost / known.sum():.4f} > {threshold['max_accuracy_drop']:.4f}: {lost} "
                            f"labelled photos lost, {_allowance(allowed_lost, int(known.sum()))}")
    return gate, failures


def _allowance(allowed: int, n: int) -> str:
    return f"at most {allowed} allowed on {n} photos" if allowed >= 0 else "none allowed (a threshold above 100%)"


MAX_FLIPS = 20


def flipped_photos(paths: Sequence[Path], ref_probs: np.ndarray, outputs: dict[str, np.ndarray | None],
                   labels: Sequence[str], truth: np.ndarray | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per artefact, the photos whose top-1 differs from the float model's, closest calls first.

    Each entry names the photo and both models' top class and score: a flip between two classes
    the float model scored 0.51/0.49 is rounding; one it scored 0.95 points at a broken layer.
    With `truth` (class indices, -1 for an unlabelled photo) each entry also has the photo's
    `label` (None when unknown).
    """
    ref_top = ref_probs.argmax(1)
    found = {}
    for fmt, probs in outputs.items():
        if probs is None:
            continue
        rows = np.flatnonzero(probs.argmax(1) != ref_top)
        rows = rows[np.argsort(ref_probs[rows, ref_top[rows]])][:MAX_FLIPS]
        found[fmt] = [{"image": str(paths[i]),
                       "float": {"label": labels[ref_top[i]], "score": round(float(ref_probs[i, ref_top[i]]), 4)},
                       "artefact": {"label": labels[int(probs[i].argmax())], "score": round(float(probs[i].max()), 4),
                                    "float_label_score": round(float(probs[i, ref_top[i]]), 4)}}
                      | ({} if truth is None else {"label": labels[truth[i]] if truth[i] >= 0 else None})
                      for i in rows]
    return {fmt: rows for fmt, rows in found.items() if rows}


__all__ = ["SMALL_SAMPLE", "add_probe", "allowed_count", "flipped_photos", "held_out_split", "judge_sample",
           "wilson_interval"]
