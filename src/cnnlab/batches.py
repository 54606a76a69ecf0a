"""A batch of uint8 images as the model takes it: normalised float32, optionally shifted and flipped (training's
augmentation), in channels_last where asked. Below training and inference, which both prepare batches with it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab.data import ImageDataset, PixelPCA, normalize, pca_color, random_crop, random_hflip


def prepare_batch(
    images: torch.Tensor,
    data: ImageDataset,
    channels_last: bool,
    crop_padding: int = 0,
    flip: bool | torch.Tensor = False,
    generator: torch.Generator | None = None,
    keep: slice | None = None,
    color: tuple[PixelPCA, float] | None = None,
) -> torch.Tensor:
    """uint8 images -> normalised float32, randomly shifted by up to `crop_padding` px and flipped if `flip`: at
    random (True), or exactly the images a bool tensor [B] marks (alternating flips), with no random numbers drawn.

    `keep`: only these rows of the batch (one process's share of a global batch). Augmentation still draws its
    random numbers for the whole batch, so each kept image gets the crop and flip it gets in one process.
    `color`: (the training pixels' PCA, sigma) for AlexNet's colour noise (`cnnlab.data.pca_color`), drawn after
    the crop's and flip's numbers."""
    flipping = data.hflip and (isinstance(flip, torch.Tensor) or flip)
    augmenting = bool(crop_padding) or flipping or color is not None
    if keep is not None and not augmenting:
        images = images[keep]
    x = normalize(images, data.mean, data.std)  # uint8 [B, C, H, W] -> float32
    if crop_padding:
        x = random_crop(x, crop_padding, generator)
    if flipping and isinstance(flip, torch.Tensor):
        x = torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)
    elif flipping:
        x = random_hflip(x, generator)
    if color is not None:
        x = pca_color(x, color[0], data.std, color[1], generator)
    if keep is not None and augmenting:
        x = x[keep]
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def resize_batch(x: torch.Tensor, side: int, channels_last: bool) -> torch.Tensor:
    """A prepared batch scaled to side x side (bilinear, antialiased when shrinking): progressive resizing."""
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
