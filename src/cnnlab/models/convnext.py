"""ConvNeXt: a ResNet modernised step by step toward a Swin Transformer's design, staying all-convolutional
(Liu et al. 2022).

The changes, each in the paper's ablation: a "patchify" stem (4x4 stride-4 conv, then LayerNorm); stage depths
3:3:9:3 (Swin's 1:1:3:1); downsampling as separate layers (LayerNorm, 2x2 stride-2 conv) between stages; blocks
that are a 7x7 depthwise conv -> LayerNorm -> 1x1 expand 4x -> GELU -> 1x1 project (an inverted bottleneck, one
norm and one activation per block); a learnable per-channel layer scale (init 1e-6) on the residual branch; and
stochastic depth whose drop probability rises linearly from 0 at the first block to `drop_path_rate` at the last.

LayerNorm comes in two layouts: the block's 1x1 convs are `nn.Linear` on channels-last [B, H, W, C] tensors, so
its norm is a plain `nn.LayerNorm`; the stem, downsampling layers and head work on [B, C, H, W] and use
`LayerNorm2d`, which normalises over the channel axis of a channels-first tensor.

Parameter names mirror torchvision's (features.0 stem, features.1/3/5/7 stages, features.2/4/6 downsampling,
blocks' block.0 dwconv / block.2 norm / block.3, block.5 linears / layer_scale, classifier.0 norm /
classifier.2 linear), so its checkpoints load without a mapping.

small_input=True swaps the 4x4 stride-4 patchify stem for a 2x2 stride-2 one (still non-overlapping patches):
a 32x32 image then gives 16x16 maps in the first stage and 2x2 in the last (28x28: 14 -> 7 -> 3 -> 1), instead
of 8x8 down to 1x1. A 1x1 stride-1 stem would keep 32x32 in the first stage at about 4x the compute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._registry import register_model
from cnnlab.models.base import ImageClassifier
from cnnlab.models.blocks import DropPath

LIU_2022 = "Liu, Mao, Wu, Feichtenhofer, Darrell & Xie, A ConvNet for the 2020s, CVPR 2022, arXiv:2201.03545"


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a channels-first [B, C, H, W] tensor (each pixel normalised on its own)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # [B, H, W, C]
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # [B, C, H, W]


class Permute(nn.Module):
    """Reorder a tensor's axes, e.g. (0, 2, 3, 1) for channels-first -> channels-last."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class ConvNeXtBlock(nn.Module):
    """x + drop_path(gamma * f(x)), f = 7x7 depthwise conv -> LN -> linear 4C -> GELU -> linear C.

    The two linears act on channels-last tensors (equal to 1x1 convs, and faster). `layer_scale` (gamma, one
    value per channel, init `layer_scale_init`) lets each block start near the identity.
    """

    def __init__(self, dim: int, layer_scale_init: float = 1e-6, drop_path: float = 0.0, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim),
            Permute((0, 2, 3, 1)),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(),
            nn.Linear(mlp_ratio * dim, dim),
            Permute((0, 3, 1, 2)),
        )
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), layer_scale_init))
        self.stochastic_depth = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, H, W]
        branch = self.layer_scale * self.block(x)  # [B, C, H, W]
        return x + self.stochastic_depth(branch)


class ConvNeXt(ImageClassifier):
    """patchify stem -> (stage -> downsample) * 3 -> stage -> global average pool -> LN -> linear.

    depths: blocks per stage. dims: each stage's width. drop_path_rate: the last block's stochastic-depth
    probability (earlier blocks get linearly less, the first 0). layer_scale_init: gamma's initial value.
    small_input: a 2x2 stride-2 patchify stem instead of 4x4 stride 4, for 28-32 pixel images.
    """

    classifier_path = "classifier.2"

    def __init__(
        self,
        depths: tuple[int, ...] = (3, 3, 9, 3),
        dims: tuple[int, ...] = (96, 192, 384, 768),
        drop_path_rate: float = 0.0,
        layer_scale_init: float = 1e-6,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        patch = 2 if small_input else 4
        stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], patch, stride=patch), LayerNorm2d(dims[0], eps=1e-6))
        layers: list[nn.Module] = [stem]
        total_blocks, block_index = sum(depths), 0
        for index, (depth, dim) in enumerate(zip(depths, dims)):
            stage = []
            for _ in range(depth):
                drop_path = drop_path_rate * block_index / max(total_blocks - 1, 1)
                stage.append(ConvNeXtBlock(dim, layer_scale_init, drop_path))
                block_index += 1
            layers.append(nn.Sequential(*stage))
            if index + 1 < len(dims):
                layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6), nn.Conv2d(dim, dims[index + 1], 2, stride=2)))
        self.features = nn.Sequential(*layers)
        # Stages sit at odd indices of `features`, between the stem and the downsampling layers.
        self.stage_names = tuple(f"features.{2 * i + 1}" for i in range(len(depths)))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1), nn.Linear(dims[-1], num_classes)
        )
        self.num_features = dims[-1]

        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, 224, 224], convnext_tiny
        # One pass through `features`; its children in order, with convnext_tiny's shapes:
        # 0 stem [B, 96, 56, 56] -> 1 stage [B, 96, 56, 56] -> 2 downsample [B, 192, 28, 28]
        # -> 3 stage [B, 192, 28, 28] -> 4 [B, 384, 14, 14] -> 5 [B, 384, 14, 14] -> 6 [B, 768, 7, 7] -> 7
        return self.features(x)  # [B, 768, 7, 7]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x)  # [B, 768, 1, 1]
        x = self.classifier[1](self.classifier[0](x))  # LayerNorm2d, flatten: [B, 768]
        return x if pre_logits else self.classifier[2](x)  # [B, num_classes]


_CONVNEXT = dict(
    family="ConvNeXt",
    paper=LIU_2022,
    year=2022,
    input_size=(3, 224, 224),
    key_idea="a ResNet modernised with Transformer design choices",
)


@register_model(twin="convnext_tiny", **_CONVNEXT)
def convnext_tiny(num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.1, **kwargs) -> ConvNeXt:
    """ConvNeXt-T (Liu et al. 2022, Sec. 3): depths 3/3/9/3, widths 96..768, stochastic depth 0.1."""
    return ConvNeXt(
        (3, 3, 9, 3), (96, 192, 384, 768), drop_path_rate, num_classes=num_classes, in_chans=in_chans, **kwargs
    )


@register_model(twin="convnext_small", **_CONVNEXT)
def convnext_small(num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.4, **kwargs) -> ConvNeXt:
    """ConvNeXt-S (Liu et al. 2022, Sec. 3): depths 3/3/27/3, widths 96..768, stochastic depth 0.4."""
    return ConvNeXt(
        (3, 3, 27, 3), (96, 192, 384, 768), drop_path_rate, num_classes=num_classes, in_chans=in_chans, **kwargs
    )


@register_model(twin="convnext_base", **_CONVNEXT)
def convnext_base(num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.5, **kwargs) -> ConvNeXt:
    """ConvNeXt-B (Liu et al. 2022, Sec. 3): depths 3/3/27/3, widths 128..1024, stochastic depth 0.5."""
    return ConvNeXt(
        (3, 3, 27, 3), (128, 256, 512, 1024), drop_path_rate, num_classes=num_classes, in_chans=in_chans, **kwargs
    )
