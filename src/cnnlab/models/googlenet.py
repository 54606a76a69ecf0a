"""GoogLeNet (Inception v1): parallel 1x1, 3x3, 5x5 and pooling branches, concatenated (Szegedy et al. 2014).

An Inception module runs four branches on the same input and stacks their outputs along the channels:
1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max-pool -> 1x1. The 1x1 convs in front of the 3x3 and 5x5 shrink the
channels first (NiN's idea), so nine such modules fit in a 22-layer network of a few million parameters.
Two auxiliary classifiers, on the outputs of 4a and 4d, add gradient in the middle of the network during
training; their losses are weighted by `AUX_LOSS_WEIGHT` = 0.3 and they are ignored at test time.

One `InceptionModule` and one `GoogLeNet` class build both variants:

- `googlenet`: the paper's network. The third branch is 1x1 -> 5x5; no BatchNorm (it came in 2015), so
  every conv has a bias; local response normalisation after the first max-pool and after conv3; a 3x3
  stride-2 max-pool before the 5a module; dropout 0.4 before the classifier. Weights start as in the authors'
  Caffe model (Xavier, conv biases 0.2). 6,998,552 parameters with the auxiliary heads left out, 13,378,280
  with them. The paper's Table 1 column sums to about 6.8M (6,797.7K, rounded per layer, no biases);
  counted exactly, the same layers hold 6,990,272 weights without biases. Against torchvision's 6,624,904:
  +380,928 from the nine 5x5 convs (25 - 9 = 16 more weights per channel pair) and -7,280 from one bias
  per conv channel instead of BN's two. `batch_norm=True` gives a variant with BN after every conv, which
  trains more easily.
- `googlenet_tv`: torchvision's `googlenet`: the third branch is 1x1 -> 3x3 (a bug kept for weight
  compatibility, pytorch/vision issue 906), BN (eps 1e-3) after every bias-free conv as its BasicConv2d, no
  LRN, a 2x2 stride-2 max-pool before 5a, dropout 0.2. 6,624,904 parameters without the auxiliary heads
  (torchvision's `googlenet(weights=None, aux_logits=False)`), 13,004,888 with `aux_logits=True`.

Parameter names mirror torchvision's (conv1.conv, inception3a.branch2.1.bn, aux1.fc2, fc ...), so its
checkpoints load unchanged. Its ImageNet weights were ported from Caffe and expect `transform_input=True`,
which torchvision sets whenever it loads them.

Outputs: in eval mode, or with `aux_logits=False`, the model returns the logits [B, num_classes]; in train mode
with the auxiliary heads it returns `GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`, a NamedTuple (so
`isinstance(out, tuple)`) in torchvision's order. The training loss is
`cross_entropy(logits) + AUX_LOSS_WEIGHT * (cross_entropy(aux_logits1) + cross_entropy(aux_logits2))`.
The auxiliary heads pool to 4x4 adaptively; at 224 pixels (14x14 maps) this equals the paper's 5x5 stride-3
average pool in output size but averages 4x4 windows, and it lets any input size work.

small_input=True replaces the 7x7 stride-2 stem with a 3x3 stride-1 conv and drops the first max-pool, for
28-32 pixel images (32 -> 16 -> 8 -> 4 through the remaining pools).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._registry import register_model
from cnnlab.models.base import ImageClassifier

SZEGEDY_2014 = (
    "Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke & Rabinovich, Going Deeper with "
    "Convolutions, CVPR 2015, arXiv:1409.4842"
)
AUX_LOSS_WEIGHT = 0.3  # the paper's weight for each auxiliary classifier's loss


class GoogLeNetOutputs(NamedTuple):
    """Train-mode outputs with the auxiliary heads: main logits, then the heads on 4d and on 4a."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor
    aux_logits1: torch.Tensor


class BasicConv2d(nn.Module):
    """conv -> BatchNorm (eps 1e-3) -> ReLU, or conv (with bias) -> ReLU when `batch_norm` is False.

    Not blocks.conv_norm_act: torchvision names these layers conv/bn and uses BN eps 1e-3 (from TensorFlow)."""

    def __init__(
        self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, padding: int = 0, batch_norm: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(out_chs, eps=0.001) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionModule(nn.Module):
    """Four parallel branches, concatenated: 1x1 | 1x1 -> 3x3 | 1x1 -> kxk | 3x3 max-pool -> 1x1.

    The arguments follow the paper's Table 1 columns. branch3_kernel: 5 in the paper, 3 in torchvision.
    Every branch keeps the side, so the output is [B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W].
    """

    def __init__(
        self,
        in_chs: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        branch3_kernel: int = 5,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        bn = batch_norm
        self.branch1 = BasicConv2d(in_chs, ch1x1, 1, batch_norm=bn)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_chs, ch3x3red, 1, batch_norm=bn), BasicConv2d(ch3x3red, ch3x3, 3, padding=1, batch_norm=bn)
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_chs, ch5x5red, 1, batch_norm=bn),
            BasicConv2d(ch5x5red, ch5x5, branch3_kernel, padding=branch3_kernel // 2, batch_norm=bn),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), BasicConv2d(in_chs, pool_proj, 1, batch_norm=bn)
        )
        self.out_chs = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, in_chs, H, W]
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, 1)  # [B, out_chs, H, W]


class InceptionAux(nn.Module):
    """Auxiliary classifier: average pool to 4x4 -> 1x1 conv (128) -> fc 1024 -> dropout 0.7 -> fc."""

    def __init__(self, in_chs: int, num_classes: int, batch_norm: bool = False, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_chs, 128, 1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 512 or 528, 14, 14]
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))  # [B, 128, 4, 4]
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)  # [B, 1024]
        return self.fc2(self.dropout(x))  # [B, num_classes]


class GoogLeNet(ImageClassifier):
    """stem (conv1, pool, conv2 1x1, conv3 3x3, pool) -> 3a, 3b -> pool -> 4a..4e -> pool -> 5a, 5b -> GAP -> fc.

    The widths are the paper's Table 1. branch3_kernel, batch_norm, local_response_norm, maxpool4_kernel and
    dropout choose between the paper's network and torchvision's (see the module docstring). aux_logits: build
    the two auxiliary classifiers. transform_input: re-normalise ImageNet-normalised input the way
    torchvision's ported Caffe weights expect (3 channels only).
    """

    classifier_path = "fc"
    aux_loss_weight = AUX_LOSS_WEIGHT

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        branch3_kernel: int = 5,
        batch_norm: bool = False,
        local_response_norm: bool = True,
        maxpool4_kernel: int = 3,
        dropout: float = 0.4,
        aux_dropout: float = 0.7,
        transform_input: bool = False,
        small_input: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        bn = batch_norm

        def inception(*widths: int) -> InceptionModule:
            return InceptionModule(*widths, branch3_kernel=branch3_kernel, batch_norm=bn)

        def lrn() -> nn.Module:
            return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75) if local_response_norm else nn.Identity()

        if small_input:
            self.conv1 = BasicConv2d(in_chans, 64, 3, padding=1, batch_norm=bn)
            self.maxpool1 = nn.Identity()
        else:
            self.conv1 = BasicConv2d(in_chans, 64, 7, stride=2, padding=3, batch_norm=bn)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = lrn()
        self.conv2 = BasicConv2d(64, 64, 1, batch_norm=bn)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1, batch_norm=bn)
        self.lrn2 = lrn()
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        # (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
        self.inception3a = inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(maxpool4_kernel, stride=2, ceil_mode=True)
        self.inception5a = inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception(832, 384, 192, 384, 48, 128, 128)
        self.aux_logits = aux_logits
        self.aux1 = InceptionAux(512, num_classes, bn, aux_dropout) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, bn, aux_dropout) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self.num_features = 1024
        self.transform_input = transform_input
        # The last module at each resolution (conv1 shares its side with conv3 when small_input).
        self.stage_names = ("conv3", "inception3b", "inception4e", "inception5b")
        if not small_input:
            self.stage_names = ("conv1",) + self.stage_names

        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) and batch_norm:
                # torchvision's trunc_normal_(std=0.01, a=-2, b=2) cuts at 200 std, so it is this normal, 10x faster.
                nn.init.normal_(module.weight, 0.0, 0.01)
            elif isinstance(module, (nn.Conv2d, nn.Linear)):  # the Caffe reference model's (bvlc_googlenet)
                nn.init.xavier_uniform_(module.weight)
                nn.init.constant_(module.bias, 0.2 if isinstance(module, nn.Conv2d) else 0.0)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        # From ImageNet mean/std normalisation to the (x - 0.5) / 0.5 scale of the ported weights.
        mean, std = x.new_tensor([0.485, 0.456, 0.406]), x.new_tensor([0.229, 0.224, 0.225])
        return x * (std / 0.5)[None, :, None, None] + ((mean - 0.5) / 0.5)[None, :, None, None]

    def _forward_features(
        self, x: torch.Tensor, with_aux: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        if self.transform_input:
            x = self._transform_input(x)  # x: [B, 3, 224, 224]
        x = self.maxpool1(self.conv1(x))  # [B, 64, 112, 112] -> [B, 64, 56, 56] (small_input: [B, 64, 32, 32] at 32)
        x = self.lrn1(x)
        x = self.conv3(self.conv2(x))  # [B, 64, 56, 56] -> [B, 192, 56, 56]
        x = self.maxpool2(self.lrn2(x))  # [B, 192, 28, 28]
        x = self.inception3b(self.inception3a(x))  # [B, 256, 28, 28] -> [B, 480, 28, 28]
        x = self.inception4a(self.maxpool3(x))  # [B, 480, 14, 14] -> [B, 512, 14, 14]
        aux1 = self.aux1(x) if with_aux else None  # [B, num_classes]
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # [B, 512, 14, 14] x 2 -> [B, 528, 14, 14]
        aux2 = self.aux2(x) if with_aux else None  # [B, num_classes]
        x = self.maxpool4(self.inception4e(x))  # [B, 832, 14, 14] -> [B, 832, 7, 7]
        x = self.inception5b(self.inception5a(x))  # [B, 832, 7, 7] -> [B, 1024, 7, 7]
        return x, aux1, aux2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward_features(x, with_aux=False)[0]  # [B, 1024, 7, 7]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))  # [B, 1024]
        return x if pre_logits else self.fc(x)  # [B, num_classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        with_aux = self.training and self.aux_logits
        try:
            features, aux1, aux2 = self._forward_features(x, with_aux)
        except (RuntimeError, ValueError) as error:
            self.explain_input_error(x, error)  # a too-small input becomes a one-line CnnlabError, as in the base
            raise
        logits = self.forward_head(features)
        return GoogLeNetOutputs(logits, aux2, aux1) if with_aux else logits

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """torchvision's published GoogLeNet file carries the auxiliary heads; a model built without them ignores
        those keys (as torchvision does). Every other key already mirrors torchvision's."""
        if self.aux_logits:
            return state_dict
        return {k: v for k, v in state_dict.items() if not k.startswith(("aux1.", "aux2."))}

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer, and the auxiliary heads' final layers, for `num_classes` classes."""
        super().reset_classifier(num_classes)
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                old = aux.fc2
                aux.fc2 = nn.Linear(old.in_features, num_classes).to(device=old.weight.device, dtype=old.weight.dtype)


_FAMILY = dict(family="GoogLeNet", paper=SZEGEDY_2014, year=2014, input_size=(3, 224, 224))


@register_model(key_idea="Inception modules: parallel 1x1/3x3/5x5/pool branches, 1x1 bottlenecks", **_FAMILY)
def googlenet(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> GoogLeNet:
    """GoogLeNet as in Szegedy et al. (arXiv:1409.4842): 5x5 third branches, LRN, no BatchNorm, auxiliary
    classifiers after 4a and 4d; 13,378,280 parameters with them, 6,998,552 with `aux_logits=False`."""
    return GoogLeNet(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(key_idea="torchvision's GoogLeNet: BN convs, 3x3 in the '5x5' branch", twin="googlenet", **_FAMILY)
def googlenet_tv(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> GoogLeNet:
    """torchvision's GoogLeNet (Szegedy et al., arXiv:1409.4842, with BatchNorm and the 3x3 of vision issue 906):
    6,624,904 parameters; `aux_logits=True` adds torchvision's two auxiliary heads (13,004,888 in all)."""
    kwargs = dict(aux_logits=False, branch3_kernel=3, batch_norm=True, local_response_norm=False,
                  maxpool4_kernel=2, dropout=0.2) | kwargs  # fmt: skip
    return GoogLeNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
