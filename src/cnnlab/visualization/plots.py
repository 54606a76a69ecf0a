"""The PNGs of `cnnlab visualize`, drawn from the arrays the other modules return (matplotlib, no display)."""

from __future__ import annotations

import math
from pathlib import Path

from cnnlab.notebook import use_file_backend

use_file_backend()  # files only; works without a screen
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from cnnlab.visualization.activations import strongest_channels  # noqa: E402
from cnnlab.visualization.images import image_array  # noqa: E402

DPI = 100
MAX_FILTERS = 64  # a wider layer's first 64 kernels; a grid of 512 tiny squares shows nothing
TOP_CHANNELS = 8  # feature-map panels per stage


def shape_label(shape: tuple[int, ...]) -> str:
    """(16, 14, 14) -> "16×14×14", as the tutorials' dimension-flow tables write it."""
    return "×".join(str(size) for size in shape)


def _show_image(ax, pixels: torch.Tensor) -> None:
    array = image_array(pixels)
    ax.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)  # pyplot keeps every open figure alive otherwise
    return path


def plot_filters(tiles: torch.Tensor, path: Path, title: str) -> Path:
    """A grid of kernel tiles: [n, kh, kw, 3] RGB or [n, kh, kw] grey, each already scaled to [0, 1]."""
    tiles = tiles[:MAX_FILTERS]
    columns = min(8, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.6), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(tiles):
            ax.imshow(
                tiles[index].numpy(), cmap="gray" if tiles.ndim == 3 else None, vmin=0, vmax=1, interpolation="nearest"
            )
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_feature_maps(
    pixels: torch.Tensor, maps: dict[str, torch.Tensor], path: Path, title: str, top: int = TOP_CHANNELS
) -> Path:
    """One row per layer: the input first, then each layer's `top` strongest channels of this image
    (maps: {name: [C, h, w] or [D]}), the row titled with the layer's name and shape."""
    columns = max(top, 1)
    fig, axes = plt.subplots(
        len(maps) + 1, columns, figsize=(columns * 1.2, (len(maps) + 1) * 1.35 + 0.4), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    _show_image(axes[0, 0], pixels)
    axes[0, 0].axis("on")
    axes[0, 0].set_title(f"input {shape_label(tuple(pixels.shape))}", fontsize=7, loc="left")
    for row, (name, tensor) in enumerate(maps.items(), start=1):
        grid = tensor if tensor.ndim == 3 else tensor.reshape(-1, 1, 1)  # a flat vector: one 1x1 map per unit
        for column, channel in enumerate(strongest_channels(grid, columns).tolist()):
            ax = axes[row, column]
            ax.imshow(grid[channel].numpy(), cmap="viridis", interpolation="nearest")
            label = f"{name}  {shape_label(tuple(tensor.shape))}\nch {channel}" if column == 0 else f"\nch {channel}"
            ax.set_title(label, fontsize=7, loc="left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_attribution(pixels: torch.Tensor, heat: torch.Tensor, path: Path, title: str, method: str) -> Path:
    """The image, the map [H, W] in [0, 1] and the map over the image."""
    fig, (image_ax, map_ax, overlay_ax) = plt.subplots(1, 3, figsize=(7.5, 2.9))
    _show_image(image_ax, pixels)
    image_ax.set_title("input", fontsize=8)
    map_ax.imshow(heat.numpy(), cmap="jet", vmin=0, vmax=1)
    map_ax.set_title(method, fontsize=8)
    map_ax.axis("off")
    array = image_array(pixels)
    overlay_ax.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=255)
    overlay_ax.imshow(heat.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
    overlay_ax.set_title("overlay", fontsize=8)
    overlay_ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_heatmap(heat: torch.Tensor, path: Path, title: str) -> Path:
    """One map, e.g. the effective receptive field's input gradient."""
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.imshow(heat.numpy(), cmap="viridis")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
