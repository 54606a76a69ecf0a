"""`ImageDataset`, the in-memory form every dataset is loaded into, and the seeded stratified split.

Images stay uint8 [N, C, H, W] (a quarter of float32's memory, and what the device copy is made from); the
per-channel mean and std of the training images travel with them so `normalize` is right for any dataset.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor


def default_cache_dir() -> Path:
    """Where datasets are looked for and downloaded to: `$CNNLAB_DATA`, else `~/.cache/cnnlab/data`."""
    override = os.environ.get("CNNLAB_DATA")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "cnnlab" / "data"


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 [N, C, H, W] images, in [0, 1] units.

    Counts every pixel value with a 256-bin histogram per channel, so the sums are exact integers and no
    float copy of the whole dataset is made; the moments are then taken in float64.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"channel_stats expects uint8 images, got {images.dtype}")
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).to(torch.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total
        variance = (counts * (values - mean) ** 2).sum() / total
        means.append(float(mean))
        stds.append(float(variance.sqrt()))
    return tuple(means), tuple(stds)


@dataclass
class ImageDataset:
    """A classification dataset held in memory as uint8 tensors, with a fixed train/test split."""

    name: str
    train_images: Tensor  # uint8 [N, C, H, W], contiguous
    train_labels: Tensor  # int64 [N]
    test_images: Tensor  # uint8 [M, C, H, W]
    test_labels: Tensor  # int64 [M]
    classes: list[str]
    mean: tuple[float, ...] = field(default=())  # per-channel mean of the training images, in [0, 1] units
    std: tuple[float, ...] = field(default=())  # per-channel std of the training images, in [0, 1] units
    hflip: bool = False  # True when a horizontal flip preserves the label (clothes, objects; not digits)

    def __post_init__(self) -> None:
        if not self.mean or not self.std:
            self.mean, self.std = channel_stats(self.train_images)

    @property
    def in_chans(self) -> int:
        return self.train_images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train_images.shape[2]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self.name!r}: {len(self.train_labels)} train / {len(self.test_labels)} test, "
            f"{self.in_chans}x{self.image_size}x{self.image_size}, {self.num_classes} classes, hflip={self.hflip})"
        )


def stratified_indices(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded stratified split of `range(len(labels))` into (kept, held_out) index tensors, each sorted.

    `ceil(fraction * N)` indices are held out (scikit-learn's `train_test_split` convention: 1,797 digits at
    0.2 give 360), shared among the classes in proportion to their sizes by largest remainder, and drawn
    at random within each class.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in [0, 1), got {fraction}")
    n = len(labels)
    classes, class_of, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    # The small epsilon keeps float error (0.2 * 1000 = 200.00000000000003) from rounding an exact quota up.
    n_held = min(n, math.ceil(fraction * n - 1e-9))
    exact = fraction * counts.to(torch.float64)
    quota = exact.floor().to(torch.int64)
    shortfall = n_held - int(quota.sum())
    # Largest fractional parts first; a stable sort breaks ties by class order, so the split is deterministic.
    by_remainder = torch.sort(exact - quota, descending=True, stable=True).indices
    quota[by_remainder[:shortfall]] += 1

    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(n, generator=generator)
    # Group the shuffled indices by class (stable, so each class keeps its random order) and rank them in it.
    grouped = shuffled[torch.sort(class_of[shuffled], stable=True).indices]
    class_start = torch.cumsum(counts, 0) - counts
    rank_in_class = torch.arange(n) - class_start[class_of[grouped]]
    held = rank_in_class < quota[class_of[grouped]]
    return grouped[~held].sort().values, grouped[held].sort().values


def split_validation(
    images: Tensor, labels: Tensor, fraction: float, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Hold out a seeded, stratified `fraction` of (images, labels) for validation.

    Returns (train_images, train_labels, val_images, val_labels), each in the original order; fraction 0 gives
    empty validation tensors of the right dtype and trailing shape.
    """
    kept, held = stratified_indices(labels, fraction, seed)
    return images[kept], labels[kept], images[held], labels[held]
