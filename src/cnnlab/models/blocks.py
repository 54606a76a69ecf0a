"""Building blocks shared across families. Family files import from here rather than redefine them."""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never below 90% of `value` (MobileNet/EfficientNet rule)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_norm_act(
    in_chs: int,
    out_chs: int,
    kernel_size: int = 3,
    stride: int = 1,
    groups: int = 1,
    bias: bool = False,
    activation: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """conv (same padding) -> BatchNorm -> activation: the unit of VGG stacks, ResNet stems and mobile blocks.

    Indexed 0/1/2 like torchvision's Conv2dNormActivation, so checkpoints that use it load unchanged.
    `activation=None` leaves the output linear (MobileNetV2's projection conv).
    """
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_chs, out_chs, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, groups=groups, bias=bias
        ),
        nn.BatchNorm2d(out_chs),
    ]
    if activation is not None:
        layers.append(
            activation(inplace=True) if activation in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish) else activation()
        )
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al. 2018): pool to [B, C, 1, 1], squeeze to `squeeze_chs`, excite back to C,
    and rescale the input. Named fc1/fc2 (1x1 convs) like torchvision's SqueezeExcitation."""

    def __init__(
        self,
        chs: int,
        squeeze_chs: int,
        activation: type[nn.Module] = nn.ReLU,
        gate: type[nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(chs, squeeze_chs, 1)
        self.fc2 = nn.Conv2d(squeeze_chs, chs, 1)
        self.activation = activation()
        self.scale_activation = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))  # [B, C, 1, 1]
        return x * self.scale_activation(scale)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, zero a residual branch for a random subset of the
    batch's samples with probability `p`, scaling the survivors by 1/(1-p); the identity in eval."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep if keep > 0 else x * mask  # p = 1 drops every branch; 0/0 would be NaN

    def extra_repr(self) -> str:
        return f"p={self.p}"


def projection(in_chs: int, out_chs: int, stride: int) -> nn.Sequential:
    """The 1x1 conv + BN shortcut used when a residual block changes stride or width (He et al.'s option B)."""
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False), nn.BatchNorm2d(out_chs))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut, ReLU after the add (He et al. 2015, Fig. 2).

    The shortcut is the identity unless the stride or the channel count changes; then it is a 1x1 projection
    (`downsample`, named as in torchvision so its checkpoints load). `bias=True` keeps conv biases, as some
    tutorials write them; BN's shift makes them redundant, so the default is False.
    """

    expansion = 1

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = projection(in_chs, out_chs, stride) if stride != 1 or in_chs != out_chs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), plus a shortcut (He et al. 2015, Fig. 5).

    `out_chs` is the block's output width (4 x the inner width for the standard ResNet). The stride sits on
    the 3x3 conv, torchvision's "v1.5" placement; the paper strides the first 1x1. `groups` and `base_width`
    give ResNeXt and Wide ResNet inner widths: width = out_chs / 4 * base_width / 64 * groups.
    """

    expansion = 4

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        width = int(out_chs // self.expansion * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(in_chs, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_chs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chs)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = projection(in_chs, out_chs, stride) if stride != 1 or in_chs != out_chs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def make_stage(
    block: type[nn.Module], in_chs: int, out_chs: int, num_blocks: int, stride: int, **block_kwargs
) -> nn.Sequential:
    """`num_blocks` blocks; the first one carries the stride and the width change."""
    blocks = [block(in_chs, out_chs, stride, **block_kwargs)]
    blocks += [block(out_chs, out_chs, 1, **block_kwargs) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


class InvertedResidual(nn.Module):
    """The mobile inverted bottleneck (Sandler et al. 2018): 1x1 expand -> kxk depthwise (carries the stride)
    -> optional squeeze-excite -> linear 1x1 project, plus the input when the shape is kept.

    One block for MobileNetV2 (ReLU6, no SE), MobileNetV3's bneck (ReLU or hardswish, SE with a hardsigmoid
    gate) and EfficientNet's MBConv (SiLU, SE, stochastic depth on the residual branch via `drop_path`).
    The expand conv is left out when `mid_chs == in_chs`; `se_chs=0` leaves out the SE. Layers sit in `block`,
    indexed like torchvision's MobileNetV3 and EfficientNet blocks (its MobileNetV2 names differ; that family
    maps them).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        mid_chs: int | None = None,
        kernel_size: int = 3,
        activation: type[nn.Module] = nn.ReLU6,
        se_chs: int = 0,
        se_activation: type[nn.Module] = nn.ReLU,
        se_gate: type[nn.Module] = nn.Sigmoid,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        mid_chs = in_chs if mid_chs is None else mid_chs
        layers: list[nn.Module] = []
        if mid_chs != in_chs:
            layers.append(conv_norm_act(in_chs, mid_chs, 1, activation=activation))
        layers.append(conv_norm_act(mid_chs, mid_chs, kernel_size, stride, groups=mid_chs, activation=activation))
        if se_chs:
            layers.append(SqueezeExcite(mid_chs, se_chs, se_activation, se_gate))
        # No activation after the projection: a ReLU on the narrow bottleneck would destroy information.
        layers.append(conv_norm_act(mid_chs, out_chs, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_chs == out_chs
        self.drop_path = DropPath(drop_path) if self.use_residual else nn.Identity()
        self.stride = stride
        self.out_chs = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)  # [B, out_chs, H / stride, W / stride]
        return x + self.drop_path(out) if self.use_residual else out


def pool_stage_names(features: nn.Sequential, prefix: str = "features") -> tuple[str, ...]:
    """Dotted names of the last layer at each resolution of a flat conv stack whose only downsampling after
    the stem is max-pooling (AlexNet, VGG, SqueezeNet): the layer before each pool, then the last layer."""
    ends = [index - 1 for index, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d) and index > 0]
    ends.append(len(features) - 1)
    return tuple(f"{prefix}.{index}" for index in dict.fromkeys(ends))
