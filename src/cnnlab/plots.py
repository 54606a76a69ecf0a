"""PNG plots of runs: learning curves, model comparisons and confusion matrices (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.notebook import use_file_backend
from cnnlab.rundir.metrics import phase_marks

use_file_backend()  # files only; works without a screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_epoch_figure(fig, axes, path: Path, title: str = "") -> None:
    """The finish every against-epoch figure shares: whole-number epoch ticks, a grid and legend per panel, the
    title; then write the PNG and free the figure (pyplot keeps every open figure alive otherwise)."""
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(metrics: list[dict], path: Path, title: str = "", phase_names: list[str] | None = None) -> None:
    """Loss and accuracy against epoch, train and validation; a phased run's phase boundaries as dashed vertical
    lines labelled with the phase entered ("phase 2: all", its name from `phase_names`)."""
    epochs = [row["epoch"] for row in metrics]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [r["train_loss"] for r in metrics], "o-", label="train")
    loss_ax.plot(epochs, [r["val_loss"] for r in metrics], "s-", label="validation")
    acc_ax.plot(epochs, [100 * r["train_accuracy"] for r in metrics], "o-", label="train")
    acc_ax.plot(epochs, [100 * r["val_accuracy"] for r in metrics], "s-", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for mark in phase_marks(metrics, phase_names):
        for ax in (loss_ax, acc_ax):
            ax.axvline(mark["x"], color="gray", linestyle="--", linewidth=1)
            ax.text(
                mark["x"],
                0.98,
                f" {mark['label']}",
                transform=ax.get_xaxis_transform(),
                va="top",
                fontsize=8,
                color="dimgray",
            )
    save_epoch_figure(fig, (loss_ax, acc_ax), path, title)


def plot_comparison(rows: list[dict], path: Path, title: str = "") -> None:
    """Test accuracy, parameters (log scale) and training images/s per model, side by side. Rows merged over
    several seeds (values that are `cnnlab.repeats.Spread`s) draw each bar at the mean with a ± 1 std error bar,
    and the title says so."""
    from cnnlab.repeats import Spread

    def mean(value, scale=1):
        return scale * (value.mean if isinstance(value, Spread) else value)

    def std(value, scale=1):
        return scale * value.std if isinstance(value, Spread) else 0.0

    names = [r["model"] for r in rows]
    spread = any(isinstance(value, Spread) for r in rows for value in r.values())
    panels = [  # label, column, scale, log axis
        ("test accuracy (%)", "test_accuracy", 100, False),
        ("parameters", "params", 1, True),
        ("training images/s", "train_images_per_second", 1, False),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4))
    colors = plt.cm.tab10(np.arange(len(rows)) % 10)
    for ax, (label, column, scale, log) in zip(axes, panels):
        values = [mean(r[column], scale) for r in rows]
        errors = {"yerr": [std(r[column], scale) for r in rows], "capsize": 4} if spread else {}
        bars = ax.bar(names, values, color=colors, **errors)
        ax.set_title(label)
        if log:
            ax.set_yscale("log")
        else:
            ax.bar_label(bars, fmt="%.1f" if "accuracy" in label else "%.0f", fontsize=8)
        if "accuracy" in label:
            low = min(values)
            ax.set_ylim(max(0.0, low - 10), 100)
        ax.tick_params(axis="x", rotation=30)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title + ("\nbars: mean over the seeds; error bars: ± 1 std (sample)" if spread else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, classes: list[str], path: Path, title: str = "") -> None:
    """Row-normalised confusion matrix (rows: true class, columns: predicted), counts written in the cells."""
    totals = matrix.sum(axis=1, keepdims=True).clip(min=1)
    size = max(5.0, 0.55 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix / totals, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right")
    ax.set_yticks(ticks, classes)
    if len(classes) <= 20:
        for i in range(len(classes)):
            for j in range(len(classes)):
                share = matrix[i, j] / totals[i, 0]
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share > 0.5 else "black",
                )
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
