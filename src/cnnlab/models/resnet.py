"""ResNet: identity shortcuts make very deep networks trainable (He et al. 2015).

One generic `ResNet` (stem, stages of residual blocks, global average pool, linear) builds every variant
here; the named builders only choose the block, the depth per stage and the widths. Attribute names mirror
torchvision's (conv1, bn1, layer1.., fc; blocks' downsample) so its checkpoints load without a mapping.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import ImageClassifier
from cnnlab.models.blocks import BasicBlock, Bottleneck, make_stage
from cnnlab.registry import register_model

HE_2015 = "He, Zhang, Ren & Sun, Deep Residual Learning for Image Recognition, CVPR 2016, arXiv:1512.03385"


class ResNet(ImageClassifier):
    """stem -> stages -> global average pool -> linear.

    block: BasicBlock or Bottleneck. layers: blocks per stage. planes: each stage's width before the block's
    expansion. The first stage keeps the resolution; each later one halves it with stride 2.
    small_input: a 3x3 stride-1 stem without max-pool, for 28-32 pixel images; otherwise the ImageNet stem
    (7x7 stride 2 conv, then a 3x3 stride 2 max-pool) that divides the side by 4.
    """

    classifier_path = "fc"

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        planes: list[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        stem_width: int = 64,
        small_input: bool = False,
        bias: bool = False,  # conv biases, as some tutorials write them; redundant before BN
        **block_kwargs,
    ) -> None:
        super().__init__(num_classes, in_chans)
        kernel, stride = (3, 1) if small_input else (7, 2)
        self.conv1 = nn.Conv2d(in_chans, stem_width, kernel, stride=stride, padding=kernel // 2, bias=bias)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        if bias:
            block_kwargs["bias"] = True
        width = stem_width
        for index, (num_blocks, stage_planes) in enumerate(zip(layers, planes), start=1):
            out_chs = stage_planes * block.expansion
            stage = make_stage(block, width, out_chs, num_blocks, 1 if index == 1 else 2, **block_kwargs)
            self.add_module(f"layer{index}", stage)
            width = out_chs
        self.stage_names = tuple(f"layer{i}" for i in range(1, len(layers) + 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)
        self.num_features = width

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, 224, 224]
        x = self.relu(self.bn1(self.conv1(x)))  # [B, 64, 112, 112] (small_input: [B, 64, H, W])
        x = self.maxpool(x)  # [B, 64, 56, 56]
        for stage in self.stages():
            x = stage(x)  # side halves after the first stage: 56 -> 28 -> 14 -> 7
        return x  # [B, 512 * expansion, 7, 7]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # [B, C]
        return x if pre_logits else self.fc(x)  # [B, num_classes]


_TUTORIAL = dict(family="ResNet", paper=HE_2015, year=2015, key_idea="skip connections")


@register_model(input_size=(1, 28, 28), **_TUTORIAL)
def simple_resnet(num_classes: int = 10, in_chans: int = 1, **kwargs) -> ResNet:
    """The tutorials' SimpleResNet: a 32-channel conv-BN-ReLU stem and three 32-channel residual blocks
    written with conv biases, then global average pooling and a 32 -> 10 linear layer."""
    return ResNet(BasicBlock, [3], [32], num_classes, in_chans, stem_width=32, small_input=True, bias=True, **kwargs)


@register_model(input_size=(3, 32, 32), **_TUTORIAL)
def tiny_resnet(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """The tutorials' TinyResNet: a 3x3 stem to 32, then BasicBlock stages 32/64/128/256 with 2 blocks each."""
    return ResNet(BasicBlock, [2, 2, 2, 2], [32, 64, 128, 256], num_classes, in_chans, stem_width=32, small_input=True, **kwargs)


@register_model(input_size=(3, 32, 32), **_TUTORIAL)
def mini_resnet(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """The tutorials' MiniResNet: a 64-channel prep block, then BasicBlock stages 64/128/256 with 2 blocks each."""
    return ResNet(BasicBlock, [2, 2, 2], [64, 128, 256], num_classes, in_chans, stem_width=64, small_input=True, **kwargs)
