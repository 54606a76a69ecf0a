"""Whitening init (Jordan 2024, airbench; after Coates and Ng 2011): the first convolution starts as a filter bank
that decorrelates the training images' patches, instead of random filters.

The first conv sees k x k x C patches. Their covariance's eigenvectors are the patch "directions" the data spreads
along, and dividing each by the square root of its eigenvalue makes every direction's output unit variance: the
filter bank whitens. Each eigenvector goes in twice, with both signs, because a ReLU or GELU after the conv would
otherwise drop half of every direction. The strongest directions fill the conv's first channels; channels beyond
2 x k x k x C keep their random init. The filters stay trainable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError

EPS = 5e-4  # added to each eigenvalue so the weakest (noise) directions are not blown up; airbench's value
IMAGES = 2_000  # training images whose patches are counted
POSITIONS = 32  # at most about this many patch positions per image side (a stride on larger images)


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first nn.Conv2d in the model's definition order (its stem)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise CnnlabError(f"--whiten needs a convolution to initialise; {type(model).__name__} has none")
    if conv.groups != 1:
        raise CnnlabError(f"--whiten needs an ordinary first convolution; {type(model).__name__}'s is grouped")
    return conv


def patch_covariance(images: torch.Tensor, kernel: tuple[int, int], batch: int = 64) -> torch.Tensor:
    """[d, d] covariance of the images' k x k x C patches (d = C*k*k), summed batch by batch."""
    stride = max(1, images.shape[-1] // POSITIONS)
    d = images.shape[1] * kernel[0] * kernel[1]
    total, outer, count = torch.zeros(d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64), 0
    for start in range(0, len(images), batch):
        patches = F.unfold(images[start : start + batch].float(), kernel, stride=stride)  # [B, d, positions]
        patches = patches.transpose(1, 2).reshape(-1, d).double()
        total += patches.sum(0)
        outer += patches.T @ patches
        count += len(patches)
    mean = total / count
    return outer / count - torch.outer(mean, mean)


def whitening_filters(covariance: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """[2d, d] filters, strongest direction first, each as +v and then -v, scaled to unit output variance."""
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending: flipped to strongest first
    variances, directions = eigenvalues.flip(0).clamp(min=0), eigenvectors.flip(1).T  # row i: direction i
    filters = directions / torch.sqrt(variances + eps)[:, None]
    return torch.stack([filters, -filters], dim=1).reshape(-1, filters.shape[1])


@torch.no_grad()
def whiten_first_conv(model: nn.Module, images: torch.Tensor) -> int:
    """Set the first conv's leading filters to whiten `images` (normalised float [N, C, H, W]); returns how many
    filters it set."""
    conv = first_conv(model)
    if conv.in_channels != images.shape[1]:
        raise CnnlabError(
            f"--whiten: the first conv takes {conv.in_channels} channels, the images have {images.shape[1]}"
        )
    filters = whitening_filters(patch_covariance(images[:IMAGES].cpu(), conv.kernel_size))
    n = min(conv.out_channels, len(filters))
    shape = (n, conv.in_channels, *conv.kernel_size)
    conv.weight[:n] = filters[:n].reshape(shape).to(conv.weight)  # the weight's dtype and device
    return n
