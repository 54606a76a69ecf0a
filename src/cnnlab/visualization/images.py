"""Arrays of pixels, shared by the PNGs of `cnnlab visualize` (matplotlib) and the lab's Inspect (PIL): an image as
an array, maps scaled each to [0, 1], maps tiled into one sheet, and a heat map over an image."""

from __future__ import annotations

import numpy as np
import torch

JET_ALPHA = 0.5  # how much of the heat map shows over the image


def image_array(pixels: torch.Tensor) -> np.ndarray:
    """uint8 [C, H, W] -> [H, W] grey or [H, W, 3] RGB."""
    array = pixels.cpu().numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def scale_each(maps: torch.Tensor) -> torch.Tensor:
    """Each map (the first axis indexes them) min-max scaled to [0, 1] on its own; a flat map becomes 0."""
    flat = maps.reshape(len(maps), -1).float()
    low, high = flat.min(dim=1).values, flat.max(dim=1).values
    shape = (-1,) + (1,) * (maps.ndim - 1)
    return (maps.float() - low.view(shape)) / (high - low).clamp_min(1e-12).view(shape)


def tile_sheet(tiles: torch.Tensor, columns: int = 8, gap_value: int = 40) -> np.ndarray:
    """Tiles in [0, 1], grey [n, h, w] or RGB [n, h, w, 3], side by side in rows of `columns` with a 1-pixel gap,
    as one uint8 array."""
    n, h, w = tiles.shape[:3]
    rows, columns = -(-n // columns), min(columns, n)
    sheet = np.full((rows * (h + 1), columns * (w + 1), *tiles.shape[3:]), gap_value, dtype=np.uint8)
    pixels = (tiles.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    for i in range(n):
        r, c = divmod(i, columns)
        sheet[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = pixels[i]
    return sheet


def heat_colours(heat: torch.Tensor) -> np.ndarray:
    """A [H, W] map in [0, 1] as uint8 RGB in matplotlib's 'jet' colours."""
    from matplotlib import colormaps

    return (colormaps["jet"](heat.clamp(0, 1).cpu().numpy())[..., :3] * 255).astype(np.uint8)
