"""Network in Network: mlpconv layers and a global-average-pooling head (Lin, Chen & Yan 2013).

An mlpconv block is a kxk conv followed by two 1x1 convs, each with a ReLU: a small MLP slid over every
position, a richer local feature than one linear filter. Instead of fully connected layers, the last block
outputs one map per class and global average pooling turns each map into that class's score.

Layout: d2l's NiN (the paper reports only CIFAR/SVHN/MNIST nets, and d2l's follows the authors' ImageNet
model): mlpconv blocks of 96, 256 and 384 channels with 11x11/4, 5x5 and 3x3 kernels, each followed by a 3x3
stride-2 max-pool, dropout 0.5, and a last mlpconv block that is `num_classes` wide (3x3 conv, 1x1, 1x1).

The uniform interface (a final nn.Linear at `classifier_path`): the last block's final 1x1 conv is applied
after the global average pool, as `fc = nn.Linear(num_classes, num_classes)`. A 1x1 conv is a per-position
linear map, and averaging commutes with a linear map, so GAP(conv1x1(x)) == fc(GAP(x)) exactly: the same
function with the same parameters (1,992,166 for 1 input channel and 10 classes, as in d2l), but an nn.Linear
that `reset_classifier` can replace. The one deviation: d2l also applies a ReLU to the class maps, which
would clip the logits at zero and does not commute with the pool; here the scores are left linear.
`reset_classifier(n)` swaps `fc` for a fresh `num_classes -> n` linear: the class-map block keeps the width
it was built with, so for a new task building the model with `num_classes=n` is the more faithful choice.

small_input=True replaces the 11x11 stride-4 conv with a 3x3 stride-1 conv and drops the first max-pool, for
28-32 pixel images (28 -> 13 -> 6 at the last block; the paper's CIFAR nets also keep the resolution early).
No torchvision twin, so parameter names are ours (block1..block4, fc).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._registry import register_model
from cnnlab.models.base import ImageClassifier

LIN_2013 = "Lin, Chen & Yan, Network In Network, ICLR 2014, arXiv:1312.4400"


def mlpconv(
    in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, padding: int = 0, num_1x1: int = 2
) -> nn.Sequential:
    """A kxk conv, then `num_1x1` 1x1 convs (a per-pixel MLP), ReLU after each."""
    layers: list[nn.Module] = [nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding), nn.ReLU(inplace=True)]
    for _ in range(num_1x1):
        layers += [nn.Conv2d(out_chs, out_chs, 1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class NiN(ImageClassifier):
    """block1..block3 (mlpconv + max-pool) -> dropout -> block4 (class maps) -> global average pool -> fc."""

    classifier_path = "fc"
    stage_names = ("block1", "block2", "block3", "block4")

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        widths: tuple[int, int, int] = (96, 256, 384),
        dropout: float = 0.5,
        small_input: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        c1, c2, c3 = widths
        if small_input:
            self.block1 = nn.Sequential(*mlpconv(in_chans, c1, 3, padding=1))  # no pool: keep 28-32 pixels
        else:
            self.block1 = nn.Sequential(*mlpconv(in_chans, c1, 11, stride=4), nn.MaxPool2d(3, 2))
        self.block2 = nn.Sequential(*mlpconv(c1, c2, 5, padding=2), nn.MaxPool2d(3, 2))
        self.block3 = nn.Sequential(*mlpconv(c2, c3, 3, padding=1), nn.MaxPool2d(3, 2))
        self.dropout = nn.Dropout(dropout)
        # The class-map block's third conv (1x1) is `fc`, applied after the pool (see the module docstring).
        self.block4 = mlpconv(c3, num_classes, 3, padding=1, num_1x1=1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_classes, num_classes)
        self.num_features = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, 224, 224]
        x = self.block1(x)  # [B, 96, 54, 54] -> pool [B, 96, 26, 26] (small_input at 28: [B, 96, 28, 28])
        x = self.block2(x)  # [B, 256, 12, 12] (small_input: [B, 256, 13, 13])
        x = self.block3(x)  # [B, 384, 5, 5] (small_input: [B, 384, 6, 6])
        return self.block4(self.dropout(x))  # [B, num_classes, 5, 5]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # [B, num_classes]
        return x if pre_logits else self.fc(x)  # [B, num_classes]


@register_model(
    family="NiN",
    paper=LIN_2013,
    year=2013,
    input_size=(3, 224, 224),
    key_idea="mlpconv (1x1 convs as a per-pixel MLP) and a global-average-pooling head",
)
def nin(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> NiN:
    """Network in Network (Lin, Chen & Yan, arXiv:1312.4400) in d2l's layout: mlpconv 96/256/384 with
    11/5/3 kernels, dropout, a class-map mlpconv and global average pooling; 1,992,166 parameters at
    `nin(num_classes=10, in_chans=1)` (d2l's Fashion-MNIST net at 224 pixels)."""
    return NiN(num_classes=num_classes, in_chans=in_chans, **kwargs)
