"""Convolution kernels as pictures: the first conv layer's (or a named one's) weights, scaled for display.

name, weights = filters(model)            # ("conv1", [6, 1, 5, 5]) for LeNet-5
tiles = filter_tiles(weights)             # [6, 5, 5] grey, or [64, 7, 7, 3] RGB for 3 input channels
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.visualization.activations import resolve_layers
from cnnlab.visualization.errors import NotAConvError
from cnnlab.visualization.loading import Subject, as_subject


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first Conv2d in definition order, which is the first applied in every zoo model (the stem)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise NotAConvError(f"{type(model).__name__} has no Conv2d layer")


def conv_weights(model: nn.Module, layer: str | None = None) -> tuple[str, torch.Tensor]:
    """(name, weight [out, in/groups, kh, kw]) of `layer`, or of the first conv when None."""
    if layer is None:
        name, conv = first_conv(model)
    else:
        name, conv = layer, resolve_layers(model, [layer])[layer]
        if not isinstance(conv, nn.Conv2d):
            raise NotAConvError(f"layer '{layer}' is a {type(conv).__name__}, not a Conv2d: it has no kernels to draw")
    return name, conv.weight.detach().float().cpu().clone()


def filters(source: str | nn.Module | Subject, layer: str | None = None) -> tuple[str, torch.Tensor]:
    """The kernels of a run's or a model's first conv layer (or of `layer`): (name, weight [out, in, kh, kw])."""
    return conv_weights(as_subject(source).model, layer)


def filter_tiles(weights: torch.Tensor) -> torch.Tensor:
    """One display tile per output channel, each min-max scaled to [0, 1] on its own: RGB [out, kh, kw, 3] for
    3 input channels, else grey [out, kh, kw] (the mean over the input channels when there are several)."""
    from cnnlab.visualization.images import scale_each

    tiles = weights.permute(0, 2, 3, 1) if weights.shape[1] == 3 else weights.mean(dim=1)  # RGB or grey tiles
    return scale_each(tiles)
