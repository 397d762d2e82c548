"""Pictures a person would rather look at than JSON: training curves and a confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


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
                ax.plot(epochs, values, style, marker="o", markersize=3, label=f"{'validation' if prefix else 'train'} {metric}")
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


def plot_confusion(matrix: np.ndarray, names: Sequence[str], path: Path, *, title: str = "") -> None:
    """A confusion matrix with counts in the cells (rows: true class, columns: predicted)."""
    plt = pyplot()
    size = max(4.0, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, labels=names, rotation=45, ha="right")
    ax.set_yticks(ticks, labels=names)
    if len(names) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, col), count in np.ndenumerate(matrix):
            ax.text(col, row, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix ({title})" if title else "Confusion matrix")
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """Write a figure under a temporary name, rename it when whole, and close it."""
    plt = pyplot()
    tmp = path.with_name(f".{path.stem}.partial.png")
    try:
        fig.savefig(tmp, dpi=110)
        tmp.replace(path)
    finally:
        plt.close(fig)
