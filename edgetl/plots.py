"""Pictures a person would rather look at than JSON: training curves, a confusion matrix, parity.

Every figure has a bounded size whatever the class count. Not thread-safe: pyplot keeps global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.spec import atomic_path

FULL_MATRIX_MAX_CLASSES = 50
"""Up to this many classes confusion.png is a matrix and metrics.json holds
`{split}_confusion_matrix`; past it, the most-confused pairs (`{split}_confused_pairs`)."""

MAX_FIGURE_INCHES = 20.0
"""No figure side grows past this (2,200 px at the 110 dpi figures are saved with)."""

SUMMARY_ROWS = 25
"""Bars per panel of the confusion summary drawn past `FULL_MATRIX_MAX_CLASSES` classes."""


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and devices
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict[str, str]], path: Path) -> None:
    """Loss and accuracy per epoch, train and validation, with stage boundaries marked."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [int(row["epoch"]) for row in history]
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [float(v) for row in history if (v := row.get(prefix + metric)) not in (None, "", "NA")]
            if len(values) == len(epochs) and values:
                ax.plot(epochs, values, style, marker="o", markersize=3,
                        label=f"{'validation' if prefix else 'train'} {metric}")
        for previous, row in zip(history, history[1:]):
            if row["stage"] != previous["stage"]:
                ax.axvline(int(row["epoch"]) - 0.5, color="grey", linestyle=":", label=f"start of {row['stage']}")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion(metrics: dict[str, Any], split: str, path: Path) -> None:
    """confusion.png of one held-out split from metrics.json, bounded in size whatever the class count.

    Up to `FULL_MATRIX_MAX_CLASSES` classes it is the matrix with counts in the cells (rows: true
    class, columns: predicted). Past that a matrix grows with the square of the class count (300
    classes needed 10.6 GB and 50 s; ~1,000 exceed the renderer's limit), so the figure shows the
    most-confused pairs and the classes with the lowest recall, at a fixed size. Not thread-safe
    (pyplot's global state).
    """
    if f"{split}_confusion_matrix" in metrics:
        _plot_matrix(np.array(metrics[f"{split}_confusion_matrix"]), metrics["class_names"], path,
                     title=f"{split} split")
    else:
        _plot_most_confused(metrics[f"{split}_confused_pairs"], metrics[f"{split}_per_class"], path,
                            title=f"{split} split")


def _plot_matrix(matrix: np.ndarray, names: Sequence[str], path: Path, *, title: str) -> None:
    plt = pyplot()
    size = min(MAX_FIGURE_INCHES, max(4.0, 0.5 * len(names) + 2))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(names))
    font = 10 if len(names) <= 30 else 6
    ax.set_xticks(ticks, labels=[_short(n) for n in names], rotation=45, ha="right", fontsize=font)
    ax.set_yticks(ticks, labels=[_short(n) for n in names], fontsize=font)
    if len(names) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, col), count in np.ndenumerate(matrix):
            ax.text(col, row, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix ({title})")
    fig.tight_layout()
    save_figure(fig, path)


def _plot_most_confused(pairs: Sequence[dict[str, Any]], per_class: dict[str, dict[str, Any]], path: Path, *,
                        title: str) -> None:
    """Two panels of `SUMMARY_ROWS` bars: the most frequent (true → predicted) mistakes, and the
    classes with the lowest recall (ties: most photos first)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 2 + 0.28 * SUMMARY_ROWS))
    shown = pairs[:SUMMARY_ROWS]
    y = np.arange(len(shown))
    left.barh(y, [p["count"] for p in shown], color="tab:red", height=0.6)
    left.set(yticks=y, yticklabels=[f"{_short(p['true'])} → {_short(p['predicted'])}" for p in shown],
             ylim=(SUMMARY_ROWS - 0.5, -0.5), xlabel="photos",
             title=f"Most-confused pairs ({len(shown)} of {len(pairs)})")
    left.xaxis.get_major_locator().set_params(integer=True)
    worst = sorted(per_class.items(), key=lambda kv: (kv[1]["recall"], -kv[1]["support"], kv[0]))[:SUMMARY_ROWS]
    y = np.arange(len(worst))
    right.barh(y, [100 * c["recall"] for _, c in worst], color="tab:blue", height=0.6)
    for i, (_, c) in enumerate(worst):
        right.text(100 * c["recall"], i, f" {100 * c['recall']:.0f}% of {c['support']}", va="center", fontsize=7)
    right.set(yticks=y, yticklabels=[_short(name) for name, _ in worst], ylim=(SUMMARY_ROWS - 0.5, -0.5),
              xlim=(0, 125), xticks=[0, 25, 50, 75, 100], xlabel="recall (%)",
              title=f"Lowest recall ({len(worst)} of {len(per_class)} classes)")
    for axis in (left, right):
        axis.tick_params(axis="y", labelsize=7)
        axis.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Confusion ({title}, {len(per_class)} classes: a full matrix is drawn up to "
                 f"{FULL_MATRIX_MAX_CLASSES})")
    fig.tight_layout()
    save_figure(fig, path)


def _short(name: str, limit: int = 28) -> str:
    """A class name cut to `limit` characters for an axis label."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def plot_parity(report: Any, path: Path) -> None:
    """parity.png: per artefact, top-1 agreement, max |Δprob| and accuracy, each with its threshold.

    Axes are zoomed to the figures (a 2-point accuracy drop spans a visible length), every
    threshold tick is labelled with its value, and each bar carries its own value; no legend
    covers a bar.
    """
    plt = pyplot()
    results = report.results
    names = [r.format for r in results]
    # An artefact that could not be compared (another run's labels or input size) has NaN
    # figures: drawn as the worst case, not left to matplotlib's warnings.
    agreements = np.nan_to_num([100 * r.top1_agreement for r in results], nan=0.0)
    diffs = np.clip(np.nan_to_num([r.max_abs_diff for r in results], nan=1.0, posinf=1.0), 1e-9, 1.0)
    colours = ["tab:green" if r.passed else "tab:red" for r in results]
    fig, axes = plt.subplots(1, 3 if report.labelled else 2,
                             figsize=(14 if report.labelled else 10, 1.6 + 0.45 * len(names)))
    y = np.arange(len(names))
    minimums = [100 * r.threshold["min_agreement"] for r in results]
    _bars(axes[0], y, agreements, colours, [f"{v:.1f}%" for v in agreements], minimums, [f"≥{m:g}%" for m in minimums])
    axes[0].set(yticks=y, yticklabels=names, xlabel="top-1 agreement with float (%)",
                xlim=_zoom([*agreements, *minimums], top=100))
    atols = [r.threshold["atol"] for r in results]
    _bars(axes[1], y, diffs, colours, [f"{v:.0e}" for v in diffs], atols,
          [f"≤{a:.0e}" if a is not None else "" for a in atols])
    axes[1].set(xscale="log", yticks=y, yticklabels=[], xlabel="max |Δprobability| (log)",
                xlim=(min(diffs.min(), 1e-7) / 3, 3.0))
    if report.labelled:
        reference = 100 * report.reference["accuracy"]
        accuracies = np.array([100 * (r.accuracy or 0) for r in results])
        floors = [reference - 100 * r.threshold["max_accuracy_drop"] for r in results]
        _bars(axes[2], y, accuracies, colours, [f"{v:.1f}%" for v in accuracies], floors,
              [f"≥{f:.1f}%" for f in floors])
        axes[2].axvline(reference, color="black", ls="--", lw=1)
        axes[2].set(yticks=y, yticklabels=[], xlim=_zoom([*accuracies, *floors, reference], top=100),
                    xlabel=f"accuracy (%); dashed: float model {reference:.1f}%")
    for axis in axes:
        axis.set_ylim(len(names) - 0.5, -0.8)  # table order, top to bottom; room for the top tick's label
    for axis in (axes[0], axes[2]) if report.labelled else axes[:1]:
        # the room right of 100 is for labels
        axis.set_xticks([t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= 100])
    fig.suptitle(f"{report.run_dir.name}: {report.images} images, {'PASS' if report.passed else 'FAIL'} "
                 "(black ticks: thresholds)")
    fig.tight_layout()
    save_figure(fig, path)


def _bars(ax: Any, y: np.ndarray, values: Sequence[float], colours: Sequence[str], texts: Sequence[str],
          thresholds: Sequence[float | None], threshold_texts: Sequence[str]) -> None:
    """Horizontal bars with their value at the end, and a labelled black threshold tick on each."""
    ax.barh(y, values, color=colours, height=0.6)
    for i, (value, text, threshold, label) in enumerate(zip(values, texts, thresholds, threshold_texts)):
        ax.text(value, i, f" {text}", va="center", ha="left", fontsize=7)
        if threshold is not None:
            ax.plot([threshold] * 2, [i - 0.4, i + 0.4], color="black", lw=1.5)
            ax.text(threshold, i - 0.42, label, va="bottom", ha="center", fontsize=6)


def _zoom(values: Sequence[float], *, top: float) -> tuple[float, float]:
    """x limits around percentages: 3 points below the lowest, room for the value labels above."""
    low = max(0.0, min(values) - 3.0)
    high = max(top, max(values))
    return low, high + 0.25 * (high - low) + 0.5


def save_figure(fig, path: Path) -> None:
    """Write a figure under a temporary name, rename it when whole, and close it."""
    plt = pyplot()
    try:
        with atomic_path(path, keep_suffix=True) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
