"""Building blocks shared across families. Family files import from here rather than redefine them."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, bias: bool = False) -> nn.Sequential:
    """conv (same padding) -> BatchNorm -> ReLU, the unit of VGG-style stacks and ResNet stems."""
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias),
        nn.BatchNorm2d(out_chs),
        nn.ReLU(inplace=True),
    )


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

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, groups: int = 1, base_width: int = 64
    ) -> None:
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


def make_stage(block: type[nn.Module], in_chs: int, out_chs: int, num_blocks: int, stride: int, **block_kwargs) -> nn.Sequential:
    """`num_blocks` blocks; the first one carries the stride and the width change."""
    blocks = [block(in_chs, out_chs, stride, **block_kwargs)]
    blocks += [block(out_chs, out_chs, 1, **block_kwargs) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)
