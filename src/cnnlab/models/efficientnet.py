"""EfficientNet: scale depth, width and resolution together (Tan & Le 2019).

A searched base network, B0 (MBConv blocks: MobileNetV2's inverted residual with squeeze-excite, SiLU and
stochastic depth), is grown by one compound coefficient phi: depth by alpha^phi, width by beta^phi and
resolution by gamma^phi, with alpha * beta^2 * gamma^2 ~= 2 so that each step about doubles the FLOPs. B1-B7
are GENERATED here from the B0 table and the paper's per-model (width, depth, resolution, dropout).

The block is `blocks.InvertedResidual`, shared with MobileNetV2/V3; the network reuses `mobilenet.MobileNet`'s
layout (features -> pool -> classifier). Parameter names mirror torchvision's efficientnet_b* (`features.S.I.block.K`)
so its checkpoints load unchanged; `adapt_state_dict` is the identity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from torch import nn

from cnnlab.errors import CnnlabError, unknown_name_error
from cnnlab.models._registry import register_model
from cnnlab.models.blocks import InvertedResidual, conv_norm_act, make_divisible
from cnnlab.models.mobilenet import MobileNet, stem

TAN_2019 = (
    "Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks, ICML 2019, arXiv:1905.11946"
)


class MBConvStage(NamedTuple):
    """One row of the paper's Table 1 (the B0 base network): a stage of MBConv blocks."""

    expansion: int  # MBConv1 or MBConv6
    kernel: int
    stride: int  # of the stage's first block
    in_chs: int
    out_chs: int
    repeats: int


EFFICIENTNET_B0_BASE: tuple[MBConvStage, ...] = (
    MBConvStage(1, 3, 1, 32, 16, 1),
    MBConvStage(6, 3, 2, 16, 24, 2),
    MBConvStage(6, 5, 2, 24, 40, 2),
    MBConvStage(6, 3, 2, 40, 80, 3),
    MBConvStage(6, 5, 1, 80, 112, 3),
    MBConvStage(6, 5, 2, 112, 192, 4),
    MBConvStage(6, 3, 1, 192, 320, 1),
)

# Per model: (width multiplier, depth multiplier, resolution, dropout). The paper derives them from phi with
# alpha=1.2, beta=1.1, gamma=1.15, then rounds; these are the published, rounded values.
_SCALING: dict[str, tuple[float, float, int, float]] = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}


def efficientnet_scaling(phi_or_name: int | str) -> dict[str, float]:
    """The compound-scaling coefficients of EfficientNet-B{phi}: dict(width=, depth=, resolution=, dropout=).

    Accepts 0-7, "b3" or "efficientnet_b3".
    """
    key = str(phi_or_name).lower().removeprefix("efficientnet_")
    key = key if key.startswith("b") else f"b{key}"
    if key not in _SCALING:
        raise unknown_name_error("EfficientNet scale", str(phi_or_name), [f"efficientnet_{k}" for k in _SCALING])
    width, depth, resolution, dropout = _SCALING[key]
    return dict(width=width, depth=depth, resolution=resolution, dropout=dropout)


class EfficientNet(MobileNet):
    """3x3 stride-2 conv (SiLU), the MBConv stages, 1x1 conv to 4x the last width, pool, dropout, linear.

    width_mult scales every width (rounded to multiples of 8), depth_mult every stage's repeats (rounded up).
    Each MBConv's SE squeezes to a quarter of the block's INPUT width; stochastic depth rises linearly from 0
    at the first block to `stochastic_depth` (exclusive) at the last. `features.S` is stage S (a Sequential of
    blocks), with the stem at 0 and the last conv after the stages, as in torchvision.
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        dropout: float = 0.2,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        stochastic_depth: float = 0.2,
        base: Sequence[MBConvStage] = EFFICIENTNET_B0_BASE,
        tf_batchnorm: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if not base:
            raise CnnlabError("an EfficientNet base network needs at least one MBConv stage")
        stages = [
            stage._replace(
                in_chs=make_divisible(stage.in_chs * width_mult),
                out_chs=make_divisible(stage.out_chs * width_mult),
                repeats=math.ceil(stage.repeats * depth_mult),
            )
            for stage in base
        ]
        total_blocks = sum(stage.repeats for stage in stages)
        layers = [stem(in_chans, stages[0].in_chs, small_input, activation=nn.SiLU)]
        block_index = 0
        for stage in stages:
            blocks = []
            width = stage.in_chs
            for repeat in range(stage.repeats):
                blocks.append(
                    InvertedResidual(
                        width,
                        stage.out_chs,
                        stage.stride if repeat == 0 else 1,
                        mid_chs=make_divisible(width * stage.expansion),
                        kernel_size=stage.kernel,
                        activation=nn.SiLU,
                        se_chs=max(1, width // 4),
                        se_activation=nn.SiLU,
                        drop_path=stochastic_depth * block_index / total_blocks,
                    )
                )
                width = stage.out_chs
                block_index += 1
            layers.append((nn.Sequential(*blocks), stage.stride))
        self.num_features = 4 * stages[-1].out_chs
        layers.append((conv_norm_act(stages[-1].out_chs, self.num_features, 1, activation=nn.SiLU), 1))
        classifier = nn.Sequential(nn.Dropout(dropout, inplace=True), nn.Linear(self.num_features, num_classes))
        self._assemble(layers, classifier, linear_init="uniform")
        if tf_batchnorm:
            self._set_batchnorm(eps=1e-3, momentum=0.01)


def efficientnet(
    width_mult: float,
    depth_mult: float,
    dropout: float,
    num_classes: int = 1000,
    in_chans: int = 3,
    **kwargs,
) -> EfficientNet:
    """EfficientNet at any compound scale (Tan & Le 2019): the B0 base table (or `base=`, e.g. a smaller one
    for an experiment) with widths times `width_mult` and repeats times `depth_mult`.

    With `s = efficientnet_scaling(3)`, `efficientnet(s["width"], s["depth"], s["dropout"])` is B3, to be
    trained at `s["resolution"]` pixels.
    """
    return EfficientNet(width_mult, depth_mult, dropout, num_classes, in_chans, **kwargs)


def _scaled(name: str, num_classes: int, in_chans: int, **kwargs) -> EfficientNet:
    scale = efficientnet_scaling(name)
    kwargs.setdefault("dropout", scale["dropout"])
    # B5-B7 in torchvision were ported from TensorFlow checkpoints and keep TF's BatchNorm eps and momentum.
    kwargs.setdefault("tf_batchnorm", name in ("b5", "b6", "b7"))
    return efficientnet(scale["width"], scale["depth"], num_classes=num_classes, in_chans=in_chans, **kwargs)


def _register(name: str):
    resolution = _SCALING[name][2]
    return register_model(
        family="EfficientNet",
        paper=TAN_2019,
        year=2019,
        input_size=(3, resolution, resolution),
        key_idea="compound scaling of depth, width and resolution",
        twin=f"efficientnet_{name}",
    )


@_register("b0")
def efficientnet_b0(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B0, the searched base network (Tan & Le 2019, Table 1); 224x224."""
    return _scaled("b0", num_classes, in_chans, **kwargs)


@_register("b1")
def efficientnet_b1(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B1 (Tan & Le 2019): width 1.0, depth 1.1, 240x240."""
    return _scaled("b1", num_classes, in_chans, **kwargs)


@_register("b2")
def efficientnet_b2(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B2 (Tan & Le 2019): width 1.1, depth 1.2, 260x260."""
    return _scaled("b2", num_classes, in_chans, **kwargs)


@_register("b3")
def efficientnet_b3(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B3 (Tan & Le 2019): width 1.2, depth 1.4, 300x300."""
    return _scaled("b3", num_classes, in_chans, **kwargs)


@_register("b4")
def efficientnet_b4(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B4 (Tan & Le 2019): width 1.4, depth 1.8, 380x380."""
    return _scaled("b4", num_classes, in_chans, **kwargs)


@_register("b5")
def efficientnet_b5(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B5 (Tan & Le 2019): width 1.6, depth 2.2, 456x456."""
    return _scaled("b5", num_classes, in_chans, **kwargs)


@_register("b6")
def efficientnet_b6(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B6 (Tan & Le 2019): width 1.8, depth 2.6, 528x528."""
    return _scaled("b6", num_classes, in_chans, **kwargs)


@_register("b7")
def efficientnet_b7(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B7 (Tan & Le 2019): width 2.0, depth 3.1, 600x600."""
    return _scaled("b7", num_classes, in_chans, **kwargs)
