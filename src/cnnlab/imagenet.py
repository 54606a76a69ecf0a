"""ImageNet-1k predictions from a torchvision checkpoint the user downloaded (nothing is fetched).

    cnnlab.predict(images=["cat.jpg"], model="resnet50", weights="resnet50-11ad3fa6.pth")

The preprocessing is torchvision's own for those weights: the `transforms()` of the twin's torchvision
`Weights` entry whose download file has the checkpoint's name (resnet50-0676ba61.pth is IMAGENET1K_V1: resize
256; resnet50-11ad3fa6.pth is IMAGENET1K_V2: resize 232), else of the twin's DEFAULT entry. It resizes the shorter
side, center-crops and normalises with the ImageNet mean/std. The 1000 class names ship in imagenet_classes.txt
(torchvision's `_IMAGENET_CATEGORIES`, in index order).
"""

from __future__ import annotations

import functools
import os
import warnings
from importlib import resources
from pathlib import Path

import torch
import torchvision
from torch import nn

from cnnlab.errors import CnnlabError, HeadMismatchWarning
from cnnlab.registry import create_model, list_models, model_info

NUM_CLASSES = 1000
# Builder arguments that torchvision sets whenever it loads ImageNet weights into the twin: GoogLeNet's were
# ported from Caffe and expect its re-normalisation of the input.
_IMAGENET_KWARGS = {"googlenet_tv": {"transform_input": True}}


@functools.cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, index i being the checkpoint's output i."""
    text = resources.files("cnnlab").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(text.splitlines())


def imagenet_weights_entry(model_name: str, weights: str | os.PathLike) -> torchvision.models.WeightsEnum:
    """The torchvision Weights entry whose preprocessing fits `weights` (see the module docstring)."""
    info = model_info(model_name)
    if info.twin is None:
        twinned = [name for name in list_models() if model_info(name).twin]
        raise CnnlabError(
            f"{model_name} has no torchvision twin, so no ImageNet checkpoint fits it; "
            f"models with one: {', '.join(twinned)}"
        )
    entries = torchvision.models.get_model_weights(info.twin)
    stem = Path(weights).stem
    return next((entry for entry in entries if Path(entry.url).stem == stem), entries.DEFAULT)


def load_imagenet_model(model_name: str, weights: str | os.PathLike) -> nn.Module:
    """`model_name` with the ImageNet checkpoint at `weights`, in eval mode; a head of another size is an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = create_model(
            model_name, num_classes=NUM_CLASSES, in_chans=3, weights=weights, **_IMAGENET_KWARGS.get(model_name, {})
        )
    for warning in caught:
        if isinstance(warning.message, HeadMismatchWarning):  # load_weights kept a fresh head
            raise CnnlabError(f"{weights} is not an ImageNet-1k checkpoint: {warning.message}")
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return model.eval()


@torch.no_grad()
def predict_imagenet(
    model_name: str, weights: str | os.PathLike, images: list[str | Path], top_k: int = 5
) -> list[dict]:
    """Top-k ImageNet class names and probabilities for each image, as `cnnlab.predict` returns them, plus the
    preprocessing used under "preprocessing" (the torchvision Weights entry, resize and crop sizes, mean/std)."""
    from cnnlab.inference.prediction import open_image, top_classes

    entry = imagenet_weights_entry(model_name, weights)
    transform = entry.transforms()
    model = load_imagenet_model(model_name, weights)
    batch = torch.stack([transform(open_image(path, 3)) for path in images])  # float32 [B, 3, crop, crop]
    preprocessing = {
        "weights": str(entry),
        "resize": list(transform.resize_size),
        "crop": list(transform.crop_size),
        "mean": list(transform.mean),
        "std": list(transform.std),
    }
    return [
        {**item, "preprocessing": preprocessing}
        for item in top_classes(model(batch), list(imagenet_classes()), images, top_k)
    ]
