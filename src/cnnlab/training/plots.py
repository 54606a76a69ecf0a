"""PNG plots of runs: learning curves, model comparisons and confusion matrices (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; works without a screen
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


def plot_curves(metrics: list[dict], path: Path, title: str = "") -> None:
    """Loss and accuracy against epoch, train and validation."""
    epochs = [row["epoch"] for row in metrics]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [r["train_loss"] for r in metrics], "o-", label="train")
    loss_ax.plot(epochs, [r["val_loss"] for r in metrics], "s-", label="validation")
    acc_ax.plot(epochs, [100 * r["train_accuracy"] for r in metrics], "o-", label="train")
    acc_ax.plot(epochs, [100 * r["val_accuracy"] for r in metrics], "s-", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    save_epoch_figure(fig, (loss_ax, acc_ax), path, title)


def plot_comparison(rows: list[dict], path: Path, title: str = "") -> None:
    """Test accuracy, parameters (log scale) and training images/s per model, side by side."""
    names = [r["model"] for r in rows]
    panels = [
        ("test accuracy (%)", [100 * r["test_accuracy"] for r in rows], False),
        ("parameters", [r["params"] for r in rows], True),
        ("training images/s", [r["train_images_per_second"] for r in rows], False),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4))
    colors = plt.cm.tab10(np.arange(len(rows)) % 10)
    for ax, (label, values, log) in zip(axes, panels):
        bars = ax.bar(names, values, color=colors)
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
    fig.suptitle(title)
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
