"""AlexNet: a deep ReLU network trained on GPUs wins ImageNet (Krizhevsky, Sutskever & Hinton 2012).

Five conv layers (11x11 stride 4, 5x5, then three 3x3), overlapping 3x3 stride-2 max-pooling, and three fully
connected layers with dropout. Two builders share one `AlexNet` class:

- `alexnet`: torchvision's single-GPU variant (64-192-384-256-256 channels, no LRN, 61,100,840 parameters).
  Parameter names mirror torchvision's (features.N, classifier.N), so its checkpoints load unchanged.
- `alexnet_paper`: the 2012 network, 96-256-384-384-256 channels with local response normalisation after
  conv1 and conv2. The paper split every layer across two GTX 580s; a GPU's conv2, conv4 and conv5 kernels
  see only the maps on that GPU, which is exactly a grouped convolution with groups=2, while conv3 and the
  fully connected layers read both halves (groups=1). conv1 is also split, but each half reads the whole
  image, so it is an ordinary 96-filter conv. This gives 60,965,224 parameters ("60 million" in the paper):
    conv1 96*3*11*11+96 = 34,944       conv2 256*48*5*5+256 = 307,456    conv3 384*256*3*3+384 = 885,120
    conv4 384*192*3*3+384 = 663,936    conv5 256*192*3*3+256 = 442,624
    fc6 9216*4096+4096 = 37,752,832    fc7 4096*4096+4096 = 16,781,312   fc8 4096*1000+1000 = 4,097,000
  The grouping saves 1,413,120 weights against the same layers ungrouped (62,378,344).

224 vs 227: the paper says 224x224 inputs, but an 11x11 stride-4 unpadded conv maps 224 to 54.25, not the
55x55 it reports; 227 gives (227 - 11) / 4 + 1 = 55, hence `alexnet_paper`'s 3x227x227 input. torchvision pads
conv1 by 2 instead, so 224 gives 55. Either way an adaptive average pool to 6x6 before the classifier (the
identity at the native size) lets both accept other sizes.

LRN: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2), the paper's constants. PyTorch (like Caffe) divides
alpha by the window size, so this normalises 5x more weakly than the paper's formula, which would be
alpha=5e-4 here; we keep the constants as the reference implementations write them.
Dropout (p=0.5) sits where each reference puts it: torchvision drops the inputs of fc6 and fc7, the paper the
outputs of fc6 and fc7. Both variants use PyTorch's default initialisation (the paper's N(0, 0.01) with unit
biases is known to stall without its exact schedule).

small_input=True replaces the stem with a 3x3 stride-1 conv and drops the first max-pool, for 28-32 pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._registry import register_model
from cnnlab.models.base import ImageClassifier
from cnnlab.models.blocks import pool_stage_names

KRIZHEVSKY_2012 = (
    "Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep Convolutional Neural Networks, "
    "NeurIPS 2012, DOI 10.1145/3065386"
)


class AlexNet(ImageClassifier):
    """conv1 -> pool -> conv2 -> pool -> conv3 -> conv4 -> conv5 -> pool -> fc6 -> fc7 -> fc8, ReLU throughout.

    widths: the five conv layers' channels. split_groups: the groups of conv2, conv4 and conv5 (2 reproduces
    the paper's two-GPU split). stem_padding: conv1's padding (torchvision 2, the paper 0 at 227 pixels).
    local_response_norm: LRN after the ReLUs of conv1 and conv2. dropout_after_fc: dropout on the outputs of
    fc6 and fc7 (the paper) instead of on their inputs (torchvision); the final linear is classifier.6 either way.
    """

    classifier_path = "classifier.6"

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        widths: tuple[int, int, int, int, int] = (64, 192, 384, 256, 256),
        split_groups: int = 1,
        stem_padding: int = 2,
        local_response_norm: bool = False,
        dropout: float = 0.5,
        dropout_after_fc: bool = False,
        small_input: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        c1, c2, c3, c4, c5 = widths

        def lrn() -> list[nn.Module]:
            return [nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)] if local_response_norm else []

        if small_input:
            stem, first_pool = nn.Conv2d(in_chans, c1, 3, padding=1), nn.Identity()
        else:
            stem, first_pool = nn.Conv2d(in_chans, c1, 11, stride=4, padding=stem_padding), nn.MaxPool2d(3, 2)
        self.features = nn.Sequential(
            stem, nn.ReLU(inplace=True), *lrn(), first_pool,
            nn.Conv2d(c1, c2, 5, padding=2, groups=split_groups), nn.ReLU(inplace=True), *lrn(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),  # reads both GPUs' maps
            nn.Conv2d(c3, c4, 3, padding=1, groups=split_groups), nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, padding=1, groups=split_groups), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )  # fmt: skip
        self.stage_names = pool_stage_names(self.features)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        fc6, fc7 = nn.Linear(c5 * 6 * 6, 4096), nn.Linear(4096, 4096)
        fc8 = nn.Linear(4096, num_classes)
        if dropout_after_fc:
            hidden = [fc6, nn.ReLU(inplace=True), nn.Dropout(dropout), fc7, nn.ReLU(inplace=True), nn.Dropout(dropout)]
        else:
            hidden = [nn.Dropout(dropout), fc6, nn.ReLU(inplace=True), nn.Dropout(dropout), fc7, nn.ReLU(inplace=True)]
        self.classifier = nn.Sequential(*hidden, fc8)
        self.num_features = c5

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, 224, 224] (alexnet)
        # conv1 [B, 64, 55, 55] -> pool [B, 64, 27, 27] -> conv2 [B, 192, 27, 27] -> pool [B, 192, 13, 13]
        # -> conv3..conv5 [B, 256, 13, 13] -> pool [B, 256, 6, 6]; alexnet_paper at 227 has the same sides.
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # [B, 256 * 6 * 6] = [B, 9216]
        x = self.classifier[:-1](x)  # fc6, fc7: [B, 4096]
        return x if pre_logits else self.classifier[-1](x)  # [B, num_classes]


_FAMILY = dict(family="AlexNet", paper=KRIZHEVSKY_2012, year=2012)


@register_model(
    input_size=(3, 224, 224),
    key_idea="deep ReLU CNN trained on GPUs, dropout, overlapping max-pool",
    twin="alexnet",
    **_FAMILY,
)
def alexnet(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> AlexNet:
    """torchvision's AlexNet (Krizhevsky et al., NeurIPS 2012; the single-GPU "one weird trick" widths
    64-192-384-256-256, no LRN): 61,100,840 parameters."""
    return AlexNet(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(
    input_size=(3, 227, 227),
    key_idea="the 2012 two-GPU network: grouped convs, LRN, overlapping max-pool",
    **_FAMILY,
)
def alexnet_paper(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> AlexNet:
    """The network of Krizhevsky et al. (NeurIPS 2012) as published: 96-256-384-384-256 channels, LRN after
    conv1 and conv2, the two-GPU split as groups=2 in conv2/conv4/conv5, 227x227 input; 60,965,224 parameters."""
    kwargs = dict(widths=(96, 256, 384, 384, 256), split_groups=2, stem_padding=0, local_response_norm=True,
                  dropout_after_fc=True) | kwargs  # fmt: skip
    return AlexNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
