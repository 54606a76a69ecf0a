"""Loss, accuracy and predictions of a model over uint8 images, optionally with flip test-time augmentation."""

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
) -> tuple[float, float, torch.Tensor]:
    """(mean loss, accuracy, predicted labels) over uint8 images, in eval mode. flip_tta: classify each image by
    the mean of its own and its mirror image's logits (test-time augmentation, as airbench does)."""
    if flip_tta:
        check_flip_tta(data)
    was_training = model.training
    model.eval()
    total_loss, predictions = 0.0, []
    for start in range(0, len(images), batch_size):
        x = prepare_batch(images[start : start + batch_size], data, channels_last)
        y = labels[start : start + batch_size]
        with autocast(dtype, images.device.type):
            logits = model(x)
            if flip_tta:
                logits = (logits.float() + model(x.flip(3)).float()) / 2  # flip(3): the width axis of [B, C, H, W]
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
