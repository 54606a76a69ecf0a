"""DenseNet: every layer sees the concatenation of all earlier feature maps in its block (Huang et al. 2017).

A dense block of L layers with growth rate k turns C0 channels into C0 + L*k: each layer adds only k new maps
(BN-ReLU-1x1 conv to `bn_size`*k, then BN-ReLU-3x3 conv to k, the "B" bottleneck) and reuses the rest. Between
blocks a transition (BN-ReLU-1x1 conv, 2x2 average pool) halves the side and keeps a `compression` fraction of
the channels (the "C"). One generic `DenseNet` builds the ImageNet models and the CIFAR DenseNet-BC.

Parameter names mirror torchvision's (features.conv0, features.denseblock1.denselayer1.norm1, ...,
features.transition1.conv, features.norm5, classifier), so its checkpoints load without a mapping.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._registry import register_model
from cnnlab.models.base import ImageClassifier

HUANG_2017 = (
    "Huang, Liu, van der Maaten & Weinberger, Densely Connected Convolutional Networks, CVPR 2017, arXiv:1608.06993"
)


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (to bn_size * growth) then BN-ReLU-3x3 conv (to growth): the k new feature maps."""

    def __init__(self, in_chs: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0) -> None:
        super().__init__()
        inner_chs = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_chs)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_chs, inner_chs, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(inner_chs)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(inner_chs, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, H, W], all earlier maps
        # norm1 is not in-place, so relu1 may overwrite its output without touching the block's features.
        out = self.conv1(self.relu1(self.norm1(x)))  # [B, bn_size * k, H, W]
        out = self.conv2(self.relu2(self.norm2(out)))  # [B, k, H, W]
        return F.dropout(out, p=self.drop_rate, training=self.training) if self.drop_rate > 0 else out


class DenseBlock(nn.ModuleDict):
    """`num_layers` dense layers named denselayer1.., each fed the concatenation of the block's input and every
    earlier layer's output; returns that concatenation, in_chs + num_layers * growth_rate channels."""

    def __init__(self, num_layers: int, in_chs: int, growth_rate: int, bn_size: int, drop_rate: float) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_chs + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C0, H, W]
        for layer in self.values():
            x = torch.cat([x, layer(x)], 1)  # [B, C0 + i * k, H, W] after layer i
        return x


def transition(in_chs: int, out_chs: int) -> nn.Sequential:
    """BN-ReLU-1x1 conv to `out_chs`, then a 2x2 average pool that halves the side."""
    return nn.Sequential(
        OrderedDict(
            norm=nn.BatchNorm2d(in_chs),
            relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_chs, out_chs, 1, bias=False),
            pool=nn.AvgPool2d(2, stride=2),
        )
    )


class DenseNet(ImageClassifier):
    """stem -> (dense block -> transition) * (n - 1) -> dense block -> BN-ReLU -> global average pool -> linear.

    growth_rate: k, the maps each layer adds. block_config: layers per dense block. stem_width: the stem conv's
    output channels (2k in the paper). bn_size: the 1x1 bottleneck's width in multiples of k. compression: the
    fraction of channels a transition keeps (floored). drop_rate: dropout on each layer's new maps.
    stem_norm: BN-ReLU after the stem conv (torchvision's ImageNet models); the paper's CIFAR nets feed the bare
    conv output to the first block, whose layers begin with their own BN-ReLU.
    small_input: a 3x3 stride-1 stem without max-pool, for 28-32 pixel images; otherwise the ImageNet stem
    (7x7 stride 2 conv, then a 3x3 stride 2 max-pool) that divides the side by 4.
    """

    classifier_path = "classifier"

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        stem_width: int = 64,
        bn_size: int = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        stem_norm: bool = True,
    ) -> None:
        super().__init__(num_classes, in_chans)
        kernel, stride = (3, 1) if small_input else (7, 2)
        self.features = nn.Sequential(
            OrderedDict(
                conv0=nn.Conv2d(in_chans, stem_width, kernel, stride=stride, padding=kernel // 2, bias=False),
                norm0=nn.BatchNorm2d(stem_width) if stem_norm else nn.Identity(),
                relu0=nn.ReLU(inplace=True) if stem_norm else nn.Identity(),
                pool0=nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1),
            )
        )
        width = stem_width
        for index, num_layers in enumerate(block_config, start=1):
            block = DenseBlock(num_layers, width, growth_rate, bn_size, drop_rate)
            self.features.add_module(f"denseblock{index}", block)
            width += num_layers * growth_rate
            if index < len(block_config):
                out_chs = int(math.floor(width * compression))
                self.features.add_module(f"transition{index}", transition(width, out_chs))
                width = out_chs
        self.features.add_module("norm5", nn.BatchNorm2d(width))
        self.stage_names = tuple(f"features.denseblock{i}" for i in range(1, len(block_config) + 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)
        self.num_features = width

        # torchvision's (and the reference Torch code's) initialisation.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, 224, 224], densenet121
        # One pass through `features`; its children in order, with densenet121's shapes:
        # conv0/norm0/relu0 [B, 64, 112, 112] -> pool0 [B, 64, 56, 56]
        # denseblock1 [B, 256, 56, 56] -> transition1 [B, 128, 28, 28]
        # denseblock2 [B, 512, 28, 28] -> transition2 [B, 256, 14, 14]
        # denseblock3 [B, 1024, 14, 14] -> transition3 [B, 512, 7, 7]
        # denseblock4 [B, 1024, 7, 7] -> norm5 [B, 1024, 7, 7]
        x = self.features(x)
        return F.relu(x, inplace=True)  # [B, 1024, 7, 7]; the blocks are pre-activation, so the last ReLU is here

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # [B, 1024]
        return x if pre_logits else self.classifier(x)  # [B, num_classes]


_IMAGENET = dict(
    family="DenseNet", paper=HUANG_2017, year=2017, input_size=(3, 224, 224), key_idea="concatenated features"
)


@register_model(twin="densenet121", **_IMAGENET)
def densenet121(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> DenseNet:
    """DenseNet-121 (Huang et al. 2017, Table 1): k=32, blocks of 6/12/24/16 layers, a 64-channel stem."""
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(twin="densenet169", **_IMAGENET)
def densenet169(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> DenseNet:
    """DenseNet-169 (Huang et al. 2017, Table 1): k=32, blocks of 6/12/32/32 layers, a 64-channel stem."""
    return DenseNet(32, (6, 12, 32, 32), 64, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(twin="densenet201", **_IMAGENET)
def densenet201(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> DenseNet:
    """DenseNet-201 (Huang et al. 2017, Table 1): k=32, blocks of 6/12/48/32 layers, a 64-channel stem."""
    return DenseNet(32, (6, 12, 48, 32), 64, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(
    family="DenseNet", paper=HUANG_2017, year=2017, input_size=(3, 32, 32), key_idea="concatenated features"
)
def densenet_bc_100_12(num_classes: int = 10, in_chans: int = 3, small_input: bool = True, **kwargs) -> DenseNet:
    """DenseNet-BC (L=100, k=12), the paper's CIFAR network (Huang et al. 2017, Table 2, 0.8M parameters).

    Depth 100 = 3 blocks x 16 layers x 2 convs + stem conv + 2 transition convs + classifier. The stem is a bare
    3x3 conv to 2k = 24 channels at full resolution (no BN-ReLU, as in the authors' code); transitions keep half
    the channels (compression 0.5). 769,162 parameters at 3 input channels and 10 classes.
    """
    depth, growth_rate = 100, 12
    layers_per_block = (depth - 4) // 6  # each bottleneck layer holds 2 convs
    return DenseNet(
        growth_rate,
        (layers_per_block,) * 3,
        2 * growth_rate,
        compression=0.5,
        num_classes=num_classes,
        in_chans=in_chans,
        small_input=small_input,
        stem_norm=False,
        **kwargs,
    )
