"""What `edgetl predict` and `python -m edgetl.runtime` share: classify a list of photo files,
skipping the unreadable ones, and the JSON they print."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError
from edgetl.runtime.classifier import Classifier, Prediction
from edgetl.runtime.image import ImageSource
from edgetl.streams import stdout_carries_unicode


@dataclass(frozen=True)
class FolderPredictions:
    """The photos that were read and their predictions, and the ones skipped with the reason (immutable)."""

    images: list[Path]
    results: list[list[Prediction]]
    skipped: list[tuple[Path, str]]


def classify_files(clf: Classifier, files: Sequence[Path], top_k: int, *, strict: bool) -> FolderPredictions:
    """Classify photo files; one that cannot be read is skipped (as training skips it), or with
    `strict` stops everything before anything is printed.

    Raises:
        EdgetlError: with `strict`, for the first unreadable photo; without, if none could be read.
    """
    if strict:
        return FolderPredictions(list(files), clf.classify(files, top_k=top_k), [])
    outcomes = clf.classify_each(files, top_k=top_k)
    read = [(file, outcome) for file, outcome in zip(files, outcomes, strict=True) if isinstance(outcome, list)]
    skipped = [(file, str(outcome)) for file, outcome in zip(files, outcomes, strict=True)
               if isinstance(outcome, EdgetlError)]
    if not read:
        raise EdgetlError(f"None of the {len(files)} photos could be read; the first: {skipped[0][1]}")
    return FolderPredictions([file for file, _ in read], [outcome for _, outcome in read], skipped)


def prediction_records(images: Sequence[ImageSource], results: list[list[Prediction]]) -> list[dict[str, Any]]:
    """The JSON layout of `edgetl predict --json`: ``[{"image", "top_k": [{"label", "index", "score"}]}]``."""
    return [
        {
            "image": str(image) if isinstance(image, (str, os.PathLike)) else f"<{type(image).__name__}>",
            "top_k": [p.to_dict() for p in predictions],
        }
        for image, predictions in zip(images, results, strict=True)
    ]


def predictions_json(images: Sequence[ImageSource], results: list[list[Prediction]]) -> str:
    """`prediction_records` as printed: non-ASCII kept where stdout carries Unicode, JSON escapes elsewhere."""
    return json.dumps(prediction_records(images, results), indent=2, ensure_ascii=not stdout_carries_unicode())
