"""VGG: depth from stacks of 3x3 convolutions (Simonyan & Zisserman 2014).

Two 3x3 convs see a 5x5 window with 18C^2 weights instead of 25C^2, and add a non-linearity in between.
`mini_vgg` is the tutorials' three-block CIFAR network with BatchNorm (conv biases kept, as written there).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import ImageClassifier
from cnnlab.models.blocks import conv_norm_act
from cnnlab.registry import register_model

SIMONYAN_2014 = "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015, arXiv:1409.1556"


def vgg_block(in_chs: int, out_chs: int, num_convs: int = 2, bias: bool = True) -> nn.Sequential:
    """`num_convs` 3x3 conv-BN-ReLU layers, then a 2x2 max-pool that halves the side."""
    layers = [conv_norm_act(in_chs if i == 0 else out_chs, out_chs, 3, bias=bias) for i in range(num_convs)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class MiniVGG(ImageClassifier):
    classifier_path = "fc"
    stage_names = ("block1", "block2", "block3")

    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__(num_classes, in_chans)
        self.block1 = vgg_block(in_chans, widths[0])
        self.block2 = vgg_block(widths[0], widths[1])
        self.block3 = vgg_block(widths[1], widths[2])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, 32, 32]
        x = self.block1(x)  # [B, 32, 16, 16]
        x = self.block2(x)  # [B, 64, 8, 8]
        return self.block3(x)  # [B, 128, 4, 4]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)  # [B, 128]
        return x if pre_logits else self.fc(x)  # [B, 10]


@register_model(
    family="VGG", paper=SIMONYAN_2014, year=2014, input_size=(3, 32, 32), key_idea="3x3 stacks",
)
def mini_vgg(**kwargs) -> MiniVGG:
    """The tutorials' MiniVGG: three two-conv VGG blocks (32/64/128) with BatchNorm, GAP and one linear layer."""
    return MiniVGG(**kwargs)
