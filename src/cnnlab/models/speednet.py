"""SpeedNet: a few wide 3x3 convolutions for throughput, in the manner of airbench's CIFAR-10 network (Jordan 2024).

Our own network for a small CPU, not a published architecture. It follows the shape of Keller Jordan's airbench
net (94% on CIFAR-10 in 3.29 s on one GPU): a stem conv, then three blocks of two wide 3x3 convs each, a global
max-pool and one linear layer whose logits are multiplied by a fixed 1/9, with no residual connections.

Each block is conv -> 2x2 max-pool -> BN -> GELU -> conv -> BN -> GELU. The pool sits right after the block's
first conv, so the second conv (the block's widest: out x out channels) runs on a quarter of the pixels and costs
a quarter of what it would before the pool. Few layers with many channels make few, large matrix products, which
fill a CPU's AVX-512/AMX tiles better than many thin layers do. Multiplying the logits by a fixed 1/9 is a fixed
softmax temperature: the initial predictions start soft, with nothing extra to learn.

Three 2x2 pools need 8 pixels a side (8 -> 4 -> 2 -> 1), so digits at 8x8 still run.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._registry import register_model
from cnnlab.models.base import ImageClassifier
from cnnlab.models.blocks import conv_norm_act

JORDAN_2024 = "Jordan, 94% on CIFAR-10 in 3.29 Seconds on a Single GPU, arXiv:2404.00498, 2024"


def speed_block(in_chs: int, out_chs: int) -> nn.Sequential:
    """conv -> 2x2 max-pool -> BN -> GELU -> conv -> BN -> GELU: the side halves before the second conv.

    One flat Sequential (indices 0-6) so that every layer shows by name in `cnnlab summary`.
    """
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, 3, padding=1, bias=False),  # no bias: BN follows and would cancel it
        nn.MaxPool2d(2),
        nn.BatchNorm2d(out_chs),
        nn.GELU(),
        *conv_norm_act(out_chs, out_chs, 3, bias=False, activation=nn.GELU),
    )


class SpeedNet(ImageClassifier):
    """stem conv -> three `speed_block`s -> global max-pool -> linear (no bias) -> logits * `scale`."""

    classifier_path = "fc"
    stage_names = ("stem", "block1", "block2", "block3")

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        widths: tuple[int, int, int] = (64, 128, 256),
        stem: int = 32,
        scale: float = 1 / 9,
    ) -> None:
        super().__init__(num_classes, in_chans)
        self.stem = conv_norm_act(in_chans, stem, 3, bias=False, activation=nn.GELU)
        self.block1 = speed_block(stem, widths[0])
        self.block2 = speed_block(widths[0], widths[1])
        self.block3 = speed_block(widths[1], widths[2])
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes, bias=False)  # defined last: the head's weight is the last parameter
        self.scale = scale  # a plain float, not a parameter: airbench fixes it at 1/9
        self.num_features = widths[2]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 1, 28, 28]
        x = self.stem(x)  # [B, 32, 28, 28]
        x = self.block1(x)  # [B, 64, 14, 14]
        x = self.block2(x)  # [B, 128, 7, 7]
        return self.block3(x)  # [B, 256, 3, 3] (at 32: 4x4; at 8: 1x1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)  # [B, 256]: the strongest response of each channel anywhere
        return x if pre_logits else self.fc(x) * self.scale  # [B, 10]


_SPEEDNET = dict(
    family="SpeedNet",
    paper=JORDAN_2024,
    year=2024,
    input_size=(3, 32, 32),
    key_idea="few wide convs for throughput",
)


@register_model(**_SPEEDNET)
def speednet(num_classes: int = 10, in_chans: int = 3, **kwargs) -> SpeedNet:
    """SpeedNet after airbench (Jordan 2024): stem 32, blocks 64/128/256, max-pool head scaled by 1/9."""
    kwargs = {"widths": (64, 128, 256), "stem": 32, **kwargs}
    return SpeedNet(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**_SPEEDNET)
def speednet_small(num_classes: int = 10, in_chans: int = 3, **kwargs) -> SpeedNet:
    """SpeedNet at half width (Jordan 2024's airbench shape): stem 24, blocks 32/64/128, head scaled by 1/9."""
    kwargs = {"widths": (32, 64, 128), "stem": 24, **kwargs}
    return SpeedNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
