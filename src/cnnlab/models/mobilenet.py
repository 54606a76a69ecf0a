"""MobileNet v1, v2 and v3: cheap convolutions for phones (Howard et al. 2017; Sandler et al. 2018; Howard et al. 2019).

v1 factorises each 3x3 conv into a depthwise 3x3 conv (one filter per channel) and a pointwise 1x1 conv that
mixes channels, about 8-9x fewer multiply-adds. v2 turns this into the inverted residual: expand with 1x1,
filter depthwise, project linearly back to a narrow bottleneck, and add the input. v3 adds squeeze-excite,
hardswish and a searched layout.

All three share `MobileNet`, the flat layout torchvision uses (`features` Sequential -> global average pool ->
`classifier` Sequential), and v2/v3 share one block, `blocks.InvertedResidual`, with EfficientNet. Parameter
names mirror torchvision's for v3. torchvision's v2 block names its layers `conv` and splits the projection into
a bare conv and a BN (`conv.2`, `conv.3`) where ours reads `block.2.0`, `block.2.1`; `MobileNetV2` therefore
overrides `adapt_state_dict` to map those keys (keys already in our layout pass through unchanged).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from cnnlab.models._registry import register_model
from cnnlab.models.base import ImageClassifier
from cnnlab.models.blocks import InvertedResidual, conv_norm_act, make_divisible

HOWARD_2017 = (
    "Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto & Adam, MobileNets: Efficient Convolutional Neural "
    "Networks for Mobile Vision Applications, arXiv 2017, arXiv:1704.04861"
)
SANDLER_2018 = (
    "Sandler, Howard, Zhu, Zhmoginov & Chen, MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018, "
    "arXiv:1801.04381"
)
HOWARD_2019 = (
    "Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le & Adam, Searching for MobileNetV3, "
    "ICCV 2019, arXiv:1905.02244"
)


class MobileNet(ImageClassifier):
    """The layout shared by the mobile families: `features` (stem, blocks, last conv; one flat Sequential as in
    torchvision) -> global average pool -> `classifier` Sequential whose last layer is the final linear.

    Subclasses build the feature layers (opened by `stem`) and the classifier, hand them to `_assemble` as
    (layer, stride) pairs, and set `num_features` (the channels `forward_features` returns). The stages are
    the last module at each resolution (dotted names such as "features.3"), so their outputs form the feature
    pyramid at strides 2, 4, 8, 16 and 32. `stages()` resolves the dotted names with get_submodule.
    """

    classifier_path = "classifier.1"  # dropout, linear (v1, v2, EfficientNet); v3's two-layer head overrides it

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, 224, 224]
        return self.features(x)  # [B, num_features, 7, 7] (side / 32; small_input: side / 16)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # [B, num_features]
        if pre_logits:
            return self.classifier[:-1](x)  # [B, width of the final linear's input]
        return self.classifier(x)  # [B, num_classes]

    def _assemble(
        self, layers: Sequence[tuple[nn.Module, int]], classifier: nn.Sequential, linear_init: str = "normal"
    ) -> None:
        """Set features (from `layers`, (module, stride) pairs in order), pool and classifier; name the stages;
        initialise the weights as torchvision does. linear_init: "normal" (std 0.01, the MobileNets) or
        "uniform" (+-1/sqrt(out_features), EfficientNet)."""
        self.features = nn.Sequential(*(layer for layer, _ in layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier
        last_at_reduction: dict[int, int] = {}
        reduction = 1
        for index, (_, stride) in enumerate(layers):
            reduction *= stride
            last_at_reduction[reduction] = index
        self.stage_names = tuple(f"features.{i}" for i in last_at_reduction.values())
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                if linear_init == "uniform":
                    bound = module.out_features**-0.5
                    nn.init.uniform_(module.weight, -bound, bound)
                else:
                    nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def _set_batchnorm(self, eps: float, momentum: float) -> None:
        """Use TensorFlow's BN settings (eps 1e-3, momentum 0.01), as the ports of TF-trained models do;
        blocks.conv_norm_act builds PyTorch's defaults (1e-5, 0.1)."""
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps, module.momentum = eps, momentum


def stem(
    in_chans: int, out_chs: int, small_input: bool, activation: type[nn.Module] = nn.ReLU
) -> tuple[nn.Sequential, int]:
    """The 3x3 conv-BN-activation that opens every mobile network, and its stride: 2, or 1 with small_input
    (28-32 pixel images, whose side then shrinks 16x rather than 32x)."""
    stride = 1 if small_input else 2
    return conv_norm_act(in_chans, out_chs, 3, stride, activation=activation), stride


# ---------------------------------------------------------------------------------------------- MobileNet v1


def depthwise_separable(in_chs: int, out_chs: int, stride: int) -> nn.Sequential:
    """v1's unit: depthwise 3x3 conv-BN-ReLU (spatial filtering, per channel), then pointwise 1x1 conv-BN-ReLU
    (channel mixing). Indexed 0 (depthwise) and 1 (pointwise)."""
    return nn.Sequential(
        conv_norm_act(in_chs, in_chs, 3, stride, groups=in_chs),
        conv_norm_act(in_chs, out_chs, 1),
    )


# (output channels, stride) of the 13 depthwise separable layers, paper Table 1. The table marks the last
# depthwise layer "s2", but its input is already 7x7 and the pool after it is 7x7, so its stride is 1.
MOBILENET_V1_LAYERS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)  # fmt: skip


class MobileNetV1(MobileNet):
    """3x3 stride-2 conv to 32, then 13 depthwise separable layers to 1024, average pool, linear.

    width_mult: the paper's width multiplier alpha, applied to every layer's channels (rounded to multiples
    of 8). small_input: a stride-1 stem, for 28-32 pixel images (the side then shrinks 16x, not 32x).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.0,  # the paper uses none; small models overfit little
        small_input: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        width = make_divisible(32 * width_mult)
        layers = [stem(in_chans, width, small_input)]
        for channels, stride in MOBILENET_V1_LAYERS:
            out_chs = make_divisible(channels * width_mult)
            layers.append((depthwise_separable(width, out_chs, stride), stride))
            width = out_chs
        self.num_features = width
        self._assemble(layers, nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes)))


@register_model(
    family="MobileNet",
    paper=HOWARD_2017,
    year=2017,
    input_size=(3, 224, 224),
    key_idea="depthwise separable convolutions",
    twin=None,
)
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> MobileNetV1:
    """MobileNet v1 at width 1.0, 224x224 (Howard et al. 2017, Table 1): 4.2 million parameters (Table 8)."""
    return MobileNetV1(num_classes, in_chans, **kwargs)


# ---------------------------------------------------------------------------------------------- MobileNet v2

# (expansion t, output channels c, repeats n, first stride s), paper Table 2.
MOBILENET_V2_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)  # fmt: skip


# torchvision's v2 block keys, e.g. "features.2.conv.3.running_mean": block prefix, layer index, the rest.
_TORCHVISION_V2_KEY = re.compile(r"^(features\.\d+)\.conv\.(\d+)\.(.+)$")


class MobileNetV2(MobileNet):
    """3x3 stride-2 conv to 32, 17 inverted residual blocks (ReLU6, linear bottlenecks), 1x1 conv to 1280,
    average pool, dropout, linear. width_mult scales every width but the last conv's, which never shrinks."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        small_input: bool = False,
        setting: Sequence[tuple[int, int, int, int]] = MOBILENET_V2_SETTING,
    ) -> None:
        super().__init__(num_classes, in_chans)
        width = make_divisible(32 * width_mult)
        last_chs = make_divisible(1280 * max(1.0, width_mult))
        layers = [stem(in_chans, width, small_input, activation=nn.ReLU6)]
        for expansion, channels, repeats, first_stride in setting:
            out_chs = make_divisible(channels * width_mult)
            for index in range(repeats):
                stride = first_stride if index == 0 else 1
                mid_chs = int(round(width * expansion))
                layers.append((InvertedResidual(width, out_chs, stride, mid_chs, activation=nn.ReLU6), stride))
                width = out_chs
        layers.append((conv_norm_act(width, last_chs, 1, activation=nn.ReLU6), 1))
        self.num_features = last_chs
        self._assemble(layers, nn.Sequential(nn.Dropout(dropout), nn.Linear(last_chs, num_classes)))

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map torchvision's `features.N.conv.K...` keys onto `features.N.block...`.

        torchvision keeps the projection as two entries (a bare conv at index p, its BN at p + 1) where ours
        is one conv_norm_act at index p; the layers before it keep their index.
        """
        adapted: dict[str, torch.Tensor] = {}
        for key, value in state_dict.items():
            match = _TORCHVISION_V2_KEY.match(key)
            block = self._block_at(match.group(1)) if match else None
            if block is None:  # not a torchvision block key (or no such block here: load_state_dict reports it)
                adapted[key] = value
                continue
            prefix, index, rest = match.group(1), int(match.group(2)), match.group(3)
            projection = len(block.block) - 1
            if index < projection:
                adapted[f"{prefix}.block.{index}.{rest}"] = value
            else:  # the projection's conv (p) or BN (p + 1)
                adapted[f"{prefix}.block.{projection}.{index - projection}.{rest}"] = value
        return adapted

    def _block_at(self, path: str) -> InvertedResidual | None:
        try:
            module = self.get_submodule(path)
        except AttributeError:
            return None
        return module if isinstance(module, InvertedResidual) else None


@register_model(
    family="MobileNet",
    paper=SANDLER_2018,
    year=2018,
    input_size=(3, 224, 224),
    key_idea="inverted residuals with linear bottlenecks",
    twin="mobilenet_v2",
)
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> MobileNetV2:
    """MobileNet v2 at width 1.0 (Sandler et al. 2018, Table 2); torchvision's mobilenet_v2."""
    return MobileNetV2(num_classes, in_chans, **kwargs)


# ---------------------------------------------------------------------------------------------- MobileNet v3


class Bneck(NamedTuple):
    """One row of MobileNetV3's Tables 1-2: a bottleneck block."""

    kernel: int
    expanded: int  # "exp size"
    out: int  # "#out"
    se: bool
    hardswish: bool  # "NL": HS, else RE (ReLU)
    stride: int


# Input width of the first block is the stem's (16); the last conv has 6x the last block's width.
MOBILENET_V3_LARGE: tuple[Bneck, ...] = (
    Bneck(3, 16, 16, False, False, 1),
    Bneck(3, 64, 24, False, False, 2),
    Bneck(3, 72, 24, False, False, 1),
    Bneck(5, 72, 40, True, False, 2),
    Bneck(5, 120, 40, True, False, 1),
    Bneck(5, 120, 40, True, False, 1),
    Bneck(3, 240, 80, False, True, 2),
    Bneck(3, 200, 80, False, True, 1),
    Bneck(3, 184, 80, False, True, 1),
    Bneck(3, 184, 80, False, True, 1),
    Bneck(3, 480, 112, True, True, 1),
    Bneck(3, 672, 112, True, True, 1),
    Bneck(5, 672, 160, True, True, 2),
    Bneck(5, 960, 160, True, True, 1),
    Bneck(5, 960, 160, True, True, 1),
)
MOBILENET_V3_SMALL: tuple[Bneck, ...] = (
    Bneck(3, 16, 16, True, False, 2),
    Bneck(3, 72, 24, False, False, 2),
    Bneck(3, 88, 24, False, False, 1),
    Bneck(5, 96, 40, True, True, 2),
    Bneck(5, 240, 40, True, True, 1),
    Bneck(5, 240, 40, True, True, 1),
    Bneck(5, 120, 48, True, True, 1),
    Bneck(5, 144, 48, True, True, 1),
    Bneck(5, 288, 96, True, True, 2),
    Bneck(5, 576, 96, True, True, 1),
    Bneck(5, 576, 96, True, True, 1),
)


class MobileNetV3(MobileNet):
    """3x3 stride-2 conv to 16 (hardswish), the bneck blocks, 1x1 conv to 6x the last width, average pool,
    then a two-layer head: linear to `last_chs` (1280 large / 1024 small), hardswish, dropout, linear.

    SE squeezes each expanded width to a quarter (rounded to 8) and gates with hardsigmoid. BatchNorm uses
    eps 1e-3 and momentum 0.01, as torchvision's port does.
    """

    classifier_path = "classifier.3"

    def __init__(
        self,
        setting: Sequence[Bneck],
        last_chs: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        small_input: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)

        def scaled(channels: int) -> int:
            return make_divisible(channels * width_mult)

        width = scaled(16)
        layers = [stem(in_chans, width, small_input, activation=nn.Hardswish)]
        for row in setting:
            mid_chs, out_chs = scaled(row.expanded), scaled(row.out)
            block = InvertedResidual(
                width,
                out_chs,
                row.stride,
                mid_chs,
                row.kernel,
                activation=nn.Hardswish if row.hardswish else nn.ReLU,
                se_chs=make_divisible(mid_chs // 4) if row.se else 0,
                se_gate=nn.Hardsigmoid,
            )
            layers.append((block, row.stride))
            width = out_chs
        layers.append((conv_norm_act(width, 6 * width, 1, activation=nn.Hardswish), 1))
        self.num_features = 6 * width
        last_chs = scaled(last_chs)
        classifier = nn.Sequential(
            nn.Linear(self.num_features, last_chs),
            nn.Hardswish(inplace=True),
            nn.Dropout(dropout, inplace=True),
            nn.Linear(last_chs, num_classes),
        )
        self._assemble(layers, classifier)
        self._set_batchnorm(eps=1e-3, momentum=0.01)


_V3 = dict(
    family="MobileNet",
    paper=HOWARD_2019,
    year=2019,
    input_size=(3, 224, 224),
    key_idea="searched inverted residuals with squeeze-excite and hardswish",
)


@register_model(twin="mobilenet_v3_small", **_V3)
def mobilenet_v3_small(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> MobileNetV3:
    """MobileNetV3-Small (Howard et al. 2019, Table 2); torchvision's mobilenet_v3_small."""
    return MobileNetV3(MOBILENET_V3_SMALL, 1024, num_classes, in_chans, **kwargs)


@register_model(twin="mobilenet_v3_large", **_V3)
def mobilenet_v3_large(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> MobileNetV3:
    """MobileNetV3-Large (Howard et al. 2019, Table 1); torchvision's mobilenet_v3_large."""
    return MobileNetV3(MOBILENET_V3_LARGE, 1280, num_classes, in_chans, **kwargs)
