"""ResNet and its descendants: identity shortcuts make very deep networks trainable (He et al. 2015).

One generic `ResNet` (stem, stages of residual blocks, global average pool, linear) builds every network in
this file; the named builders only choose the block, the depth per stage and the widths:

- ImageNet ResNet-18/34/50/101/152, ResNeXt-50/101 and Wide ResNet-50-2, equal to torchvision's. Like
  torchvision these are ResNet "v1.5": a Bottleneck that halves the side strides its 3x3 conv, where the paper
  strides the first 1x1 (slightly more accurate, a little slower). `small_input=True` swaps the 7x7/2 stem and
  its max-pool for a 3x3/1 conv, for 28-32 pixel images.
- He et al.'s CIFAR networks (§4.2): ResNet-20 ... ResNet-1202 with shortcut option A (zero-padding, no
  parameters) or B (projection), and their plain twins (the same layers without the skip).
- The pre-activation ResNet (He et al. 2016), Wide ResNets (Zagoruyko & Komodakis 2016) and ResNeXt-29
  (Xie et al. 2017) for CIFAR.

Attribute names mirror torchvision's (conv1, bn1, layer1.., fc; blocks' conv/bn/downsample), so its checkpoints
load with `load_state_dict` directly and `adapt_state_dict` stays the identity.

`droppable_blocks` and `drop_block` support lesion experiments (Veit et al. 2016): a residual block whose skip
is the plain identity can be replaced by `nn.Identity()` and the network still runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models._registry import register_model
from cnnlab.models.base import ImageClassifier
from cnnlab.models.blocks import BasicBlock, Bottleneck, make_stage

HE_2015 = "He, Zhang, Ren & Sun, Deep Residual Learning for Image Recognition, CVPR 2016, arXiv:1512.03385"
HE_2016 = "He, Zhang, Ren & Sun, Identity Mappings in Deep Residual Networks, ECCV 2016, arXiv:1603.05027"
ZAGORUYKO_2016 = "Zagoruyko & Komodakis, Wide Residual Networks, BMVC 2016, arXiv:1605.07146"
XIE_2017 = (
    "Xie, Girshick, Dollar, Tu & He, Aggregated Residual Transformations for Deep Neural Networks, "
    "CVPR 2017, arXiv:1611.05431"
)

SHORTCUTS = ("A", "B", "none")


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A: subsample by `stride` and append `extra_chs` zero channels. No parameters, so a
    ResNet with it has exactly as many as its plain twin."""

    def __init__(self, extra_chs: int, stride: int) -> None:
        super().__init__()
        self.extra_chs = extra_chs
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, H, W]
        x = x[:, :, :: self.stride, :: self.stride]  # [B, C, ceil(H/s), ceil(W/s)], the conv path's size
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_chs))  # [B, C + extra_chs, ...]

    def extra_repr(self) -> str:
        return f"extra_chs={self.extra_chs}, stride={self.stride}"


class CifarBasicBlock(BasicBlock):
    """BasicBlock with He et al.'s CIFAR shortcut options (§4.2).

    "A": the identity, zero-padded and subsampled where the shape changes (the paper's CIFAR default).
    "B": the identity, projected by a 1x1 conv + BN where the shape changes (BasicBlock's own behaviour).
    "none": no skip at all, the block of the paper's plain networks.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, shortcut: str = "A") -> None:
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        super().__init__(in_chs, out_chs, stride)
        self.has_skip = shortcut != "none"
        if not self.has_skip:
            self.downsample = None
        elif shortcut == "A" and self.downsample is not None:
            self.downsample = ZeroPadShortcut(out_chs - in_chs, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.has_skip:
            return super().forward(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))  # BasicBlock's layers without the "+ shortcut"


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, then the add, with nothing after it (He et al. 2016, Fig. 1b):
    the skip path stays a pure identity from block to block.

    A shape change projects the pre-activated input with a bare 1x1 conv (no BN: the next block normalises
    the sum). `dropout` between the convs gives Zagoruyko & Komodakis' wide-dropout block.
    """

    expansion = 1
    pre_activation = True  # tells ResNet to drop the stem's BN-ReLU and add one before the pool
    has_skip = True

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        changes_shape = stride != 1 or in_chs != out_chs
        self.downsample = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False) if changes_shape else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + shortcut


class ResNet(ImageClassifier):
    """stem -> stages -> (final BN-ReLU for pre-activation blocks) -> global average pool -> linear.

    block: BasicBlock, Bottleneck, CifarBasicBlock or PreActBasicBlock. layers: blocks per stage. planes:
    each stage's width before the block's expansion. The first stage keeps the resolution; each later one
    halves it with stride 2. small_input: a 3x3 stride-1 stem without max-pool, for 28-32 pixel images;
    otherwise the ImageNet stem (7x7 stride 2 conv, then a 3x3 stride 2 max-pool) that divides the side by 4.
    Pre-activation blocks normalise their own input, so with them the stem is the bare conv.
    zero_init_residual: start each post-activation block's last BN at zero, so every residual block begins as
    the identity (Goyal et al. 2017), as torchvision's option of the same name.
    """

    classifier_path = "fc"

    def __init__(
        self,
        block: type[nn.Module],
        layers: list[int],
        planes: list[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        stem_width: int = 64,
        small_input: bool = False,
        bias: bool = False,  # conv biases, as some tutorials write them; redundant before BN
        zero_init_residual: bool = False,
        **block_kwargs,
    ) -> None:
        super().__init__(num_classes, in_chans)
        pre_activation = getattr(block, "pre_activation", False)
        kernel, stride = (3, 1) if small_input else (7, 2)
        self.conv1 = nn.Conv2d(in_chans, stem_width, kernel, stride=stride, padding=kernel // 2, bias=bias)
        self.bn1 = nn.Identity() if pre_activation else nn.BatchNorm2d(stem_width)
        self.relu = nn.Identity() if pre_activation else nn.ReLU(inplace=True)
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
        # Pre-activation blocks leave their sum un-normalised; the last one still needs a BN-ReLU before pooling.
        self.final_norm = (
            nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True)) if pre_activation else nn.Identity()
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)
        self.num_features = width
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # He et al.'s initialisation (fan-out, as torchvision); BN starts at weight 1, bias 0 by default.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.zeros_(module.bn3.weight)
                elif isinstance(module, BasicBlock) and has_skip(module):  # a plain block would go dead
                    nn.init.zeros_(module.bn2.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, 224, 224]
        x = self.relu(self.bn1(self.conv1(x)))  # [B, 64, 112, 112] (small_input: [B, stem_width, H, W])
        x = self.maxpool(x)  # [B, 64, 56, 56]
        for stage in self.stages():
            x = stage(x)  # side halves after the first stage: 56 -> 28 -> 14 -> 7
        return self.final_norm(x)  # [B, 512 * expansion, 7, 7] (CIFAR nets: [B, 64 * width, 8, 8])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # [B, C]
        return x if pre_logits else self.fc(x)  # [B, num_classes]


# ---------------------------------------------------------------------------------------------------------
# Lesion helpers: which blocks can be removed without breaking the shapes.


def has_skip(block: nn.Module) -> bool:
    """Whether a residual block adds a shortcut to its output (False for the plain nets' blocks)."""
    return bool(getattr(block, "has_skip", isinstance(block, (BasicBlock, Bottleneck))))


def droppable_blocks(model: ResNet) -> list[tuple[str, int]]:
    """(stage name, index) of every block whose skip is the plain identity (stride 1, same width): replacing it
    by nn.Identity() keeps every shape, so the network still runs without it."""
    return [
        (name, index)
        for name, stage in zip(model.stage_names, model.stages())
        for index, block in enumerate(stage)
        if has_skip(block) and block.downsample is None
    ]


def drop_block(model: ResNet, stage_name: str, index: int) -> nn.Module:
    """Replace block `index` of stage `stage_name` by nn.Identity() in place; return the removed block."""
    if (stage_name, index) not in droppable_blocks(model):
        raise CnnlabError(
            f"block {index} of {stage_name} cannot be dropped: only residual blocks with an identity skip "
            f"(stride 1, same width) can; droppable: {droppable_blocks(model)}"
        )
    stage = model.get_submodule(stage_name)
    removed = stage[index]
    stage[index] = nn.Identity()
    return removed


# ---------------------------------------------------------------------------------------------------------
# The tutorials' networks.

_RESNET = dict(family="ResNet", paper=HE_2015, year=2015, key_idea="skip connections")


@register_model(input_size=(1, 28, 28), **_RESNET)
def simple_resnet(num_classes: int = 10, in_chans: int = 1, **kwargs) -> ResNet:
    """The tutorials' SimpleResNet: a 32-channel conv-BN-ReLU stem and three 32-channel residual blocks
    written with conv biases, then global average pooling and a 32 -> 10 linear layer."""
    return ResNet(BasicBlock, [3], [32], num_classes, in_chans, stem_width=32, small_input=True, bias=True, **kwargs)


@register_model(input_size=(3, 32, 32), **_RESNET)
def tiny_resnet(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """The tutorials' TinyResNet: a 3x3 stem to 32, then BasicBlock stages 32/64/128/256 with 2 blocks each."""
    return ResNet(
        BasicBlock, [2, 2, 2, 2], [32, 64, 128, 256], num_classes, in_chans, stem_width=32, small_input=True, **kwargs
    )


@register_model(input_size=(3, 32, 32), **_RESNET)
def mini_resnet(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """The tutorials' MiniResNet: a 64-channel prep block, then BasicBlock stages 64/128/256 with 2 blocks each."""
    return ResNet(
        BasicBlock, [2, 2, 2], [64, 128, 256], num_classes, in_chans, stem_width=64, small_input=True, **kwargs
    )


# ---------------------------------------------------------------------------------------------------------
# ImageNet models, equal to torchvision's (v1.5 stride placement).

_IMAGENET_PLANES = [64, 128, 256, 512]
_RESNEXT = dict(family="ResNeXt", paper=XIE_2017, year=2016, key_idea="cardinality: many grouped-conv paths per block")
_WIDE = dict(family="Wide ResNet", paper=ZAGORUYKO_2016, year=2016, key_idea="wider, shallower residual blocks")


@register_model(input_size=(3, 224, 224), twin="resnet18", **_RESNET)
def resnet18(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """ResNet-18 (He et al. 2015, arXiv:1512.03385, Table 1): BasicBlock, [2, 2, 2, 2]."""
    return ResNet(BasicBlock, [2, 2, 2, 2], _IMAGENET_PLANES, num_classes, in_chans, small_input=small_input, **kwargs)


@register_model(input_size=(3, 224, 224), twin="resnet34", **_RESNET)
def resnet34(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """ResNet-34 (He et al. 2015, arXiv:1512.03385, Table 1): BasicBlock, [3, 4, 6, 3]."""
    return ResNet(BasicBlock, [3, 4, 6, 3], _IMAGENET_PLANES, num_classes, in_chans, small_input=small_input, **kwargs)


# He et al.'s ImageNet plain networks (Table 2, Fig. 4): ResNet-18/34's layers with every shortcut removed,
# projections included, so each has its twin's count minus the three 1x1 projection convs and their BNs.
# The block is CifarBasicBlock with shortcut="none": BasicBlock's conv-BN pairs, no skip.
_PLAIN_IMAGENET = dict(
    _RESNET, input_size=(3, 224, 224), key_idea="the baseline without skips: training error grows with depth"
)


@register_model(**_PLAIN_IMAGENET)
def plain18(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """Plain-18 (He et al. 2015, arXiv:1512.03385, Table 2): ResNet-18 without any shortcut."""
    return ResNet(
        CifarBasicBlock,
        [2, 2, 2, 2],
        _IMAGENET_PLANES,
        num_classes,
        in_chans,
        small_input=small_input,
        shortcut="none",
        **kwargs,
    )


@register_model(**_PLAIN_IMAGENET)
def plain34(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """Plain-34 (He et al. 2015, arXiv:1512.03385, Table 2 and Fig. 4): ResNet-34 without any shortcut."""
    return ResNet(
        CifarBasicBlock,
        [3, 4, 6, 3],
        _IMAGENET_PLANES,
        num_classes,
        in_chans,
        small_input=small_input,
        shortcut="none",
        **kwargs,
    )


@register_model(input_size=(3, 224, 224), twin="resnet50", **_RESNET)
def resnet50(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """ResNet-50 v1.5 (He et al. 2015, arXiv:1512.03385, Table 1): Bottleneck, [3, 4, 6, 3]."""
    return ResNet(Bottleneck, [3, 4, 6, 3], _IMAGENET_PLANES, num_classes, in_chans, small_input=small_input, **kwargs)


@register_model(input_size=(3, 224, 224), twin="resnet101", **_RESNET)
def resnet101(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """ResNet-101 v1.5 (He et al. 2015, arXiv:1512.03385, Table 1): Bottleneck, [3, 4, 23, 3]."""
    return ResNet(Bottleneck, [3, 4, 23, 3], _IMAGENET_PLANES, num_classes, in_chans, small_input=small_input, **kwargs)


@register_model(input_size=(3, 224, 224), twin="resnet152", **_RESNET)
def resnet152(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """ResNet-152 v1.5 (He et al. 2015, arXiv:1512.03385, Table 1): Bottleneck, [3, 8, 36, 3]."""
    return ResNet(Bottleneck, [3, 8, 36, 3], _IMAGENET_PLANES, num_classes, in_chans, small_input=small_input, **kwargs)


@register_model(input_size=(3, 224, 224), twin="resnext50_32x4d", **_RESNEXT)
def resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """ResNeXt-50 32x4d (Xie et al. 2017, arXiv:1611.05431, Table 1): ResNet-50 whose 3x3 convs have 32 groups
    of width 4 in the first stage (128 channels), doubling per stage."""
    return ResNet(
        Bottleneck,
        [3, 4, 6, 3],
        _IMAGENET_PLANES,
        num_classes,
        in_chans,
        small_input=small_input,
        groups=32,
        base_width=4,
        **kwargs,
    )


@register_model(input_size=(3, 224, 224), twin="resnext101_32x8d", **_RESNEXT)
def resnext101_32x8d(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """ResNeXt-101 32x8d (Xie et al. 2017, arXiv:1611.05431): ResNet-101 with 32 groups of width 8 (256 channels
    in the first stage's 3x3 convs)."""
    return ResNet(
        Bottleneck,
        [3, 4, 23, 3],
        _IMAGENET_PLANES,
        num_classes,
        in_chans,
        small_input=small_input,
        groups=32,
        base_width=8,
        **kwargs,
    )


@register_model(input_size=(3, 224, 224), twin="wide_resnet50_2", **_WIDE)
def wide_resnet50_2(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False, **kwargs) -> ResNet:
    """Wide ResNet-50-2 (Zagoruyko & Komodakis 2016, arXiv:1605.07146, ImageNet section): ResNet-50 whose
    Bottleneck inner widths are doubled (128 ... 1024); the outputs stay 256 ... 2048."""
    return ResNet(
        Bottleneck,
        [3, 4, 6, 3],
        _IMAGENET_PLANES,
        num_classes,
        in_chans,
        small_input=small_input,
        base_width=128,
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------------------
# He et al.'s CIFAR networks (§4.2): 6n+2 layers, stages of 16/32/64 filters on 32/16/8 pixel maps.


def cifar_resnet(
    depth: int = 20,
    shortcut: str = "A",
    residual: bool = True,
    num_classes: int = 10,
    in_chans: int = 3,
    **kwargs,
) -> ResNet:
    """He et al.'s CIFAR-10 ResNet (arXiv:1512.03385, §4.2): a 3x3 conv to 16 channels, three stages of
    n = (depth - 2) / 6 BasicBlocks at 16/32/64 channels, global average pool, linear.

    shortcut: "A" zero-pads where the shape changes (the paper's default, no extra parameters), "B" projects
    there. residual=False (or shortcut="none") removes every skip: the paper's plain network of that depth.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise CnnlabError(f"a CIFAR ResNet has 6n+2 layers (8, 14, 20, 32, 44, 56, 110, ...), got depth {depth!r}")
    if shortcut not in SHORTCUTS:
        raise CnnlabError(f"unknown shortcut {shortcut!r}; choose one of: {', '.join(SHORTCUTS)}")
    n = (depth - 2) // 6
    return ResNet(
        CifarBasicBlock,
        [n, n, n],
        [16, 32, 64],
        num_classes,
        in_chans,
        stem_width=16,
        small_input=True,
        shortcut=shortcut if residual else "none",
        **kwargs,
    )


_CIFAR_RESNET = dict(_RESNET, input_size=(3, 32, 32))
_PLAIN = dict(_CIFAR_RESNET, key_idea="the baseline without skips: training error grows with depth")


@register_model(**_CIFAR_RESNET)
def resnet20(num_classes: int = 10, in_chans: int = 3, shortcut: str = "A", **kwargs) -> ResNet:
    """ResNet-20 for CIFAR-10 (He et al. 2015, arXiv:1512.03385, §4.2, n = 3): 0.27M parameters."""
    return cifar_resnet(20, shortcut, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**_CIFAR_RESNET)
def resnet32(num_classes: int = 10, in_chans: int = 3, shortcut: str = "A", **kwargs) -> ResNet:
    """ResNet-32 for CIFAR-10 (He et al. 2015, arXiv:1512.03385, §4.2, n = 5): 0.46M parameters."""
    return cifar_resnet(32, shortcut, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**_CIFAR_RESNET)
def resnet44(num_classes: int = 10, in_chans: int = 3, shortcut: str = "A", **kwargs) -> ResNet:
    """ResNet-44 for CIFAR-10 (He et al. 2015, arXiv:1512.03385, §4.2, n = 7): 0.66M parameters."""
    return cifar_resnet(44, shortcut, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**_CIFAR_RESNET)
def resnet56(num_classes: int = 10, in_chans: int = 3, shortcut: str = "A", **kwargs) -> ResNet:
    """ResNet-56 for CIFAR-10 (He et al. 2015, arXiv:1512.03385, §4.2, n = 9): 0.85M parameters."""
    return cifar_resnet(56, shortcut, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**_CIFAR_RESNET)
def resnet110(num_classes: int = 10, in_chans: int = 3, shortcut: str = "A", **kwargs) -> ResNet:
    """ResNet-110 for CIFAR-10 (He et al. 2015, arXiv:1512.03385, §4.2, n = 18): 1.7M parameters."""
    return cifar_resnet(110, shortcut, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**_CIFAR_RESNET)
def resnet1202(
    num_classes: int = 10, in_chans: int = 3, shortcut: str = "A", zero_init_residual: bool = True, **kwargs
) -> ResNet:
    """ResNet-1202 for CIFAR-10 (He et al. 2015, arXiv:1512.03385, §4.2, n = 200): 19.4M parameters.

    Unlike the paper, each block's last BN starts at zero by default (timm's default too): with He init every
    one of the 600 blocks roughly doubles the signal's variance, so a fresh model in eval mode (BN statistics
    still at 0/1) overflows float32 to NaN. Training-mode BN is unaffected; pass False for the paper's init.
    """
    return cifar_resnet(
        1202, shortcut, num_classes=num_classes, in_chans=in_chans, zero_init_residual=zero_init_residual, **kwargs
    )


@register_model(**_PLAIN)
def plain20(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Plain-20 (He et al. 2015, arXiv:1512.03385, §4.2, Fig. 6): ResNet-20 without its skips."""
    return cifar_resnet(20, residual=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**_PLAIN)
def plain32(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Plain-32 (He et al. 2015, arXiv:1512.03385, §4.2, Fig. 6): ResNet-32 without its skips."""
    return cifar_resnet(32, residual=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**_PLAIN)
def plain44(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Plain-44 (He et al. 2015, arXiv:1512.03385, §4.2, Fig. 6): ResNet-44 without its skips."""
    return cifar_resnet(44, residual=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**_PLAIN)
def plain56(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Plain-56 (He et al. 2015, arXiv:1512.03385, §4.2, Fig. 6): ResNet-56 without its skips."""
    return cifar_resnet(56, residual=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**_PLAIN)
def plain110(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Plain-110 (He et al. 2015, arXiv:1512.03385, §4.2, Fig. 6): ResNet-110 without its skips."""
    return cifar_resnet(110, residual=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Pre-activation, wide and aggregated (ResNeXt) residual networks for CIFAR.


@register_model(
    family="PreAct ResNet",
    paper=HE_2016,
    year=2016,
    input_size=(3, 32, 32),
    key_idea="BN-ReLU before each conv keeps the skip path a pure identity",
)
def preact_resnet18(num_classes: int = 10, in_chans: int = 3, small_input: bool = True, **kwargs) -> ResNet:
    """Pre-activation ResNet-18 (He et al. 2016, arXiv:1603.05027): ResNet-18's layout with BN-ReLU-conv
    blocks and a final BN-ReLU before pooling; a 3x3 stem for CIFAR (small_input=False: the ImageNet stem)."""
    return ResNet(
        PreActBasicBlock, [2, 2, 2, 2], _IMAGENET_PLANES, num_classes, in_chans, small_input=small_input, **kwargs
    )


def wide_resnet(
    depth: int = 28, widen_factor: int = 10, dropout: float = 0.0, num_classes: int = 10, in_chans: int = 3, **kwargs
) -> ResNet:
    """WRN-depth-k (Zagoruyko & Komodakis 2016, arXiv:1605.07146, Table 1): a 3x3 conv to 16 channels, three
    stages of n = (depth - 4) / 6 pre-activation wide blocks at 16k/32k/64k channels on 32/16/8 pixel maps,
    BN-ReLU, global average pool, linear. `dropout` sits between each block's two convs (the paper uses 0.3)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise CnnlabError(f"a Wide ResNet has 6n+4 layers (10, 16, 22, 28, 40, ...), got depth {depth!r}")
    if widen_factor < 1:
        raise CnnlabError(f"widen_factor must be at least 1, got {widen_factor}")
    n = (depth - 4) // 6
    widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
    return ResNet(
        PreActBasicBlock,
        [n, n, n],
        widths,
        num_classes,
        in_chans,
        stem_width=16,
        small_input=True,
        dropout=dropout,
        **kwargs,
    )


_WRN_CIFAR = dict(_WIDE, input_size=(3, 32, 32))


@register_model(**_WRN_CIFAR)
def wrn28_10(num_classes: int = 10, in_chans: int = 3, dropout: float = 0.0, **kwargs) -> ResNet:
    """WRN-28-10 (Zagoruyko & Komodakis 2016, arXiv:1605.07146): n = 4 blocks per stage, widths 160/320/640,
    36.5M parameters."""
    return wide_resnet(28, 10, dropout, num_classes, in_chans, **kwargs)


@register_model(**_WRN_CIFAR)
def wrn40_4(num_classes: int = 10, in_chans: int = 3, dropout: float = 0.0, **kwargs) -> ResNet:
    """WRN-40-4 (Zagoruyko & Komodakis 2016, arXiv:1605.07146): n = 6 blocks per stage, widths 64/128/256,
    8.9M parameters."""
    return wide_resnet(40, 4, dropout, num_classes, in_chans, **kwargs)


@register_model(input_size=(3, 32, 32), **_RESNEXT)
def resnext29_8x64d(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNeXt-29 8x64d for CIFAR (Xie et al. 2017, arXiv:1611.05431, §5.3): a 3x3 conv to 64, three stages of
    3 Bottlenecks with outputs 256/512/1024 and 8 groups of width 64/128/256 in their 3x3 convs, 34.4M
    parameters."""
    return ResNet(
        Bottleneck,
        [3, 3, 3],
        [64, 128, 256],
        num_classes,
        in_chans,
        stem_width=64,
        small_input=True,
        groups=8,
        base_width=64,
        **kwargs,
    )
