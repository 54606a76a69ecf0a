"""VGG: depth from stacks of 3x3 convolutions (Simonyan & Zisserman 2014).

Two 3x3 convs see a 5x5 window with 18C^2 weights instead of 25C^2, and add a non-linearity in between.
`mini_vgg` is the tutorials' three-block CIFAR network with BatchNorm (conv biases kept, as written there).

`vgg11/13/16/19` and their `_bn` twins are built from one configuration table (`VGG_CONFIGS`, the paper's
A/B/D/E) by one `VGG` class. Parameter names mirror torchvision's (a flat `features.N` conv stack with
`classifier.N` after it), so torchvision checkpoints load unchanged. The `_bn` variants keep the conv biases,
as torchvision does (redundant before BN, but part of its checkpoints). small_input: see `VGG`.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._registry import register_model
from cnnlab.models.base import ImageClassifier
from cnnlab.models.blocks import conv_norm_act, pool_stage_names

SIMONYAN_2014 = (
    "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, "
    "ICLR 2015, arXiv:1409.1556"
)


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
    family="VGG",
    paper=SIMONYAN_2014,
    year=2014,
    input_size=(3, 32, 32),
    key_idea="3x3 stacks",
)
def mini_vgg(num_classes: int = 10, in_chans: int = 3, **kwargs) -> MiniVGG:
    """The tutorials' MiniVGG: three two-conv VGG blocks (32/64/128) with BatchNorm, GAP and one linear layer."""
    return MiniVGG(num_classes=num_classes, in_chans=in_chans, **kwargs)


# Channels of each 3x3 conv, "M" a 2x2 max-pool; the paper's configurations A, B, D and E (Table 1).
VGG_CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg_features(config: list[int | str], in_chans: int = 3, batch_norm: bool = False) -> nn.Sequential:
    """The conv stack as one flat Sequential (conv, [BN,] ReLU, ..., pool), indexed like torchvision's
    `features` so its checkpoints load unchanged."""
    layers: list[nn.Module] = []
    width = in_chans
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        elif batch_norm:
            layers.extend(conv_norm_act(width, item, 3, bias=True))  # unpacked: conv, BN, ReLU at the top level
        else:
            layers += [nn.Conv2d(width, item, 3, padding=1), nn.ReLU(inplace=True)]
        width = width if item == "M" else item
    return nn.Sequential(*layers)


class VGG(ImageClassifier):
    """3x3 conv stack -> adaptive average pool -> fc 4096 -> fc 4096 -> fc, ReLU and dropout in the head.

    small_input (28-32 pixel images): the last max-pool is left out (five would shrink 28 pixels to nothing;
    four give 2x2 at 32, 1x1 at 28), the pool is global and the hidden layers are 512 wide, the usual CIFAR
    VGG head, instead of torchvision's 7x7 pool into 25,088 -> 4096 (which at 32 pixels would copy one 1x1 map
    49 times into a 103M-weight layer).
    """

    classifier_path = "classifier.6"

    def __init__(
        self,
        config: list[int | str],
        num_classes: int = 1000,
        in_chans: int = 3,
        batch_norm: bool = False,
        dropout: float = 0.5,
        small_input: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if small_input:
            last_pool = len(config) - 1 - config[::-1].index("M")
            config = config[:last_pool] + config[last_pool + 1 :]
        self.features = vgg_features(config, in_chans, batch_norm)
        self.stage_names = pool_stage_names(self.features)
        width = [item for item in config if item != "M"][-1]  # 512
        pool_side, hidden = (1, 512) if small_input else (7, 4096)
        self.avgpool = nn.AdaptiveAvgPool2d(pool_side)
        self.classifier = nn.Sequential(
            nn.Linear(width * pool_side * pool_side, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )  # fmt: skip
        self.num_features = width

        # torchvision's initialisation (He normal for convs, N(0, 0.01) for the linears, zero biases).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, 224, 224]
        # Each block of 3x3 convs keeps the side and each pool halves it: 224 -> 112 -> 56 -> 28 -> 14 -> 7.
        return self.features(x)  # [B, 512, 7, 7] (small_input at 32: [B, 512, 2, 2])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # [B, 512 * 7 * 7] = [B, 25088] (small_input: [B, 512])
        x = self.classifier[:-1](x)  # [B, 4096] (small_input: [B, 512])
        return x if pre_logits else self.classifier[-1](x)  # [B, num_classes]


_VGG = dict(family="VGG", paper=SIMONYAN_2014, year=2014, input_size=(3, 224, 224), key_idea="3x3 stacks")


def _vgg(depth: int, batch_norm: bool, **kwargs) -> VGG:
    return VGG(VGG_CONFIGS[depth], batch_norm=batch_norm, **kwargs)


@register_model(twin="vgg11", **_VGG)
def vgg11(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-11, configuration A of Simonyan & Zisserman (ICLR 2015): 8 convs + 3 FC, 132,863,336 parameters."""
    return _vgg(11, False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(twin="vgg11_bn", **_VGG)
def vgg11_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-11 (Simonyan & Zisserman, ICLR 2015) with BatchNorm after every conv: 132,868,840 parameters."""
    return _vgg(11, True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(twin="vgg13", **_VGG)
def vgg13(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-13, configuration B of Simonyan & Zisserman (ICLR 2015): 10 convs + 3 FC."""
    return _vgg(13, False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(twin="vgg13_bn", **_VGG)
def vgg13_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-13 (Simonyan & Zisserman, ICLR 2015) with BatchNorm after every conv."""
    return _vgg(13, True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(twin="vgg16", **_VGG)
def vgg16(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-16, configuration D of Simonyan & Zisserman (ICLR 2015): 13 convs + 3 FC, 138,357,544 parameters."""
    return _vgg(16, False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(twin="vgg16_bn", **_VGG)
def vgg16_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-16 (Simonyan & Zisserman, ICLR 2015) with BatchNorm after every conv: 138,365,992 parameters."""
    return _vgg(16, True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(twin="vgg19", **_VGG)
def vgg19(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-19, configuration E of Simonyan & Zisserman (ICLR 2015): 16 convs + 3 FC, 143,667,240 parameters."""
    return _vgg(19, False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(twin="vgg19_bn", **_VGG)
def vgg19_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-19 (Simonyan & Zisserman, ICLR 2015) with BatchNorm after every conv."""
    return _vgg(19, True, num_classes=num_classes, in_chans=in_chans, **kwargs)
