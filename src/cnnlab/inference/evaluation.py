"""Loss, accuracy and predictions of a model over uint8 images, optionally with test-time augmentation: mirrored
views (flips) and diagonally moved ones (translations), as airbench's levels 1 and 2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.batches import prepare_batch
from cnnlab.data import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.precision import autocast


def check_flip_tta(data: ImageDataset) -> None:
    if not data.hflip:
        raise CnnlabError(
            f"test-time flips need label-preserving horizontal flips, which {data.name} does not "
            "have (a mirrored image can belong to another class): drop --tta"
        )


def check_tta_shift(data: ImageDataset, shift: int) -> None:
    if isinstance(shift, bool) or not isinstance(shift, int) or shift < 0:
        raise CnnlabError(f"--tta-shift must be zero or a positive whole number of pixels, got {shift!r}")
    if shift * 2 >= data.image_size:
        raise CnnlabError(
            f"--tta-shift {shift} is half the side of {data.name} images ({data.image_size} pixels) or more: "
            f"use at most {(data.image_size - 1) // 2} (1 or 2 is usual)"
        )


def view_logits(model: nn.Module, x: torch.Tensor, flip: bool, shift: int) -> torch.Tensor:
    """The model's logits for `x`, averaged over the test-time views: with `flip` the mean with the mirror's
    (flip(3): the width axis of [B, C, H, W]); with `shift` px, half that and half the mean of `x` moved down-right
    and up-left by `shift` (reflect padding keeps the border's texture, as airbench pads)."""
    logits = model(x).float()
    if flip:
        logits = (logits + model(x.flip(3)).float()) / 2
    if not shift:
        return logits
    height, width = x.shape[-2:]
    padded = F.pad(x, (shift,) * 4, mode="reflect")
    moved = (padded[..., :height, :width], padded[..., 2 * shift :, 2 * shift :])
    return logits / 2 + sum(view_logits(model, view, flip, 0) for view in moved) / 4


@torch.no_grad()
def evaluate_arrays(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    data: ImageDataset,
    batch_size: int = 512,
    dtype: torch.dtype | None = None,
    channels_last: bool = True,
    flip_tta: bool = False,
    shift_tta: int = 0,
) -> tuple[float, float, torch.Tensor]:
    """(mean loss, accuracy, predicted labels) over uint8 images, in eval mode. flip_tta: classify each image by
    the mean of its own and its mirror image's logits; shift_tta: also by views moved that many pixels
    (`view_logits`; test-time augmentation, as airbench does)."""
    if flip_tta:
        check_flip_tta(data)
    if shift_tta:
        check_tta_shift(data, shift_tta)
    was_training = model.training
    model.eval()
    total_loss, predictions = 0.0, []
    for start in range(0, len(images), batch_size):
        x = prepare_batch(images[start : start + batch_size], data, channels_last)
        y = labels[start : start + batch_size]
        with autocast(dtype, images.device.type):
            logits = view_logits(model, x, flip_tta, shift_tta)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        predictions.append(logits.argmax(dim=1))
    model.train(was_training)
    if len(images) == 0:
        return float("nan"), float("nan"), torch.empty(0, dtype=torch.long)
    predicted = torch.cat(predictions)
    return total_loss / len(images), (predicted == labels).float().mean().item(), predicted


def misclassified(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The positions, in order, of the images whose predicted class is not their label: the one definition that
    eval.json's list, the lab's grid and `visualize --misclassified` share."""
    return (predicted != labels).nonzero().flatten()
