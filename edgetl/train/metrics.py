"""What `metrics.json` reports: per-split accuracy, per-class precision/recall, confusion, learned."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetl._version import __version__
from edgetl.data import Splits
from edgetl.plots import FULL_MATRIX_MAX_CLASSES
from edgetl.spec import PreprocessingSpec
from edgetl.train import distributed

if TYPE_CHECKING:
    import keras

    from edgetl.backbones import BackboneOptions
    from edgetl.train.options import TrainOptions

CHANCE_SIGMAS = 2.0
"""A model whose accuracy is within this many binomial standard deviations of chance (the
largest class's share) is reported as not having learned."""


def evaluate(
    model: keras.Model,
    splits: Splits,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    options: TrainOptions,
    backbone: BackboneOptions,
    spec: PreprocessingSpec,
    stage_report: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    names = splits.class_names
    report: dict[str, Any] = {
        "strategy": options.strategy,
        "backbone": {"name": options.backbone_name(backbone), "alpha": backbone.alpha, "weights": backbone.weights},
        "image_size": list(spec.image_size),
        "augment": options.uses_augmentation,
        "class_names": list(names),
        "class_counts": {
            split: {names[i]: int(np.sum(labels == i)) for i in range(len(names))}
            for split, (_, labels) in arrays.items()
        },
        "train_seconds": round(seconds, 1),
        "edgetl_version": __version__,
    }
    for split in ("val", "test"):
        x, y = arrays[split]
        if len(y):
            predicted = distributed.predict(model, x, options.batch_size).argmax(axis=1)
            report |= _classification_report(split, y, predicted, names)
    report |= _learning_check(report, arrays)
    if stage_report:
        report["fine_tune"] = stage_report
    return report


def _learning_check(report: dict[str, Any], arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """`learned`: whether held-out accuracy beats chance (the largest class's share) beyond noise.

    A warning says so when it does not: a baseline at chance makes any transfer gain meaningless.
    """
    split = next((s for s in ("test", "val") if f"{s}_accuracy" in report), None)
    if split is None:
        return {}
    labels = arrays[split][1]
    chance = float(np.bincount(labels).max() / len(labels))
    margin = CHANCE_SIGMAS * float(np.sqrt(chance * (1 - chance) / len(labels)))
    accuracy = report[f"{split}_accuracy"]
    learned = accuracy > chance + margin
    if not learned:
        warnings.warn(
            f"The {report['strategy']} model did not learn: {split} accuracy {accuracy:.1%} is within noise of chance "
            f"({chance:.1%}, the largest class's share, +{margin:.1%} on {len(labels)} photos). "
            "Train longer (--epochs), or check the photos and labels.",
            stacklevel=5,
        )
    return {"learned": bool(learned), "chance_accuracy": round(chance, 4), "learned_judged_on": split}


def _classification_report(
    split: str, truth: np.ndarray, predicted: np.ndarray, names: tuple[str, ...]
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall and the confusion, in memory linear in the photos.

    A dense matrix is kept only up to `FULL_MATRIX_MAX_CLASSES` classes; past that the confused
    (true, predicted) pairs are listed instead: at 1,000 classes the dense matrix would be a
    million cells in metrics.json, nearly all zero.
    """
    classes = len(names)
    support = np.bincount(truth, minlength=classes)
    predicted_count = np.bincount(predicted, minlength=classes)
    correct = np.bincount(truth[truth == predicted], minlength=classes)
    per_class = {
        name: {
            "precision": round(float(correct[i] / predicted_count[i]), 4) if predicted_count[i] else 0.0,
            "recall": round(float(correct[i] / support[i]), 4) if support[i] else 0.0,
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }
    report = {f"{split}_accuracy": round(float(np.mean(truth == predicted)), 4), f"{split}_per_class": per_class}
    if classes <= FULL_MATRIX_MAX_CLASSES:
        confusion = np.zeros((classes, classes), dtype=int)
        np.add.at(confusion, (truth, predicted), 1)
        return report | {f"{split}_confusion_matrix": confusion.tolist()}
    return report | {f"{split}_confused_pairs": confused_pairs(truth, predicted, names)}


def confused_pairs(truth: np.ndarray, predicted: np.ndarray, names: Sequence[str]) -> list[dict[str, Any]]:
    """Every (true, predicted) pair of different classes that occurs, most frequent first.

    Thread-safe (a pure function). Its length is bounded by the photos, not the class count.
    """
    wrong = truth != predicted
    cells, counts = np.unique(np.stack([truth[wrong], predicted[wrong]], axis=1), axis=0, return_counts=True)
    order = np.lexsort((cells[:, 1], cells[:, 0], -counts)) if len(counts) else []
    return [{"true": names[cells[i, 0]], "predicted": names[cells[i, 1]], "count": int(counts[i])} for i in order]
