"""SqueezeNet: AlexNet-level accuracy from 1.2M parameters with Fire modules (Iandola et al. 2016).

A Fire module squeezes the channels with 1x1 convs, then expands them again with 1x1 and 3x3 convs side by
side, whose outputs are concatenated: most filters are 1x1, and the 3x3s see few input channels. There are no
fully connected layers: a final 1x1 conv makes one map per class and a global average pool reads them out.

Parameter names mirror torchvision's (features.N, classifier.1, Fire's squeeze/expand1x1/expand3x3), so its
checkpoints load unchanged: squeezenet1_0 has 1,248,424 parameters, squeezenet1_1 1,235,496 (2.4x fewer
operations at the same accuracy, from the authors' repository).

The uniform interface, adapted: the classifier is that final 1x1 conv (`classifier_path = "classifier.1"`),
not an nn.Linear, so `get_classifier` returns a Conv2d and `reset_classifier(n)` swaps in a fresh 512 -> n
1x1 conv, initialised as torchvision initialises it. `forward_head(x, pre_logits=True)` returns the globally
pooled features [B, 512]; the logits are not a linear map of them, since the class maps pass a ReLU before
they are pooled.

small_input=True replaces the stem with a 3x3 stride-1 conv and drops the first max-pool, for 28-32 pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._registry import register_model
from cnnlab.models.base import ImageClassifier
from cnnlab.models.blocks import pool_stage_names

IANDOLA_2016 = (
    "Iandola, Han, Moskewicz, Ashraf, Dally & Keutzer, SqueezeNet: AlexNet-level accuracy with 50x fewer "
    "parameters and <0.5MB model size, arXiv 2016, arXiv:1602.07360"
)


class Fire(nn.Module):
    """squeeze 1x1 (in -> squeeze_chs) -> [expand 1x1 || expand 3x3] concatenated, ReLU after each conv."""

    def __init__(self, in_chs: int, squeeze_chs: int, expand1x1_chs: int, expand3x3_chs: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_chs, squeeze_chs, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_chs, expand1x1_chs, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_chs, expand3x3_chs, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, in_chs, H, W]
        x = self.squeeze_activation(self.squeeze(x))  # [B, squeeze_chs, H, W]
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )  # [B, expand1x1_chs + expand3x3_chs, H, W]


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


# Per version: the stem conv (width, kernel) and the layers after the stem's pool, "M" a max-pool and each
# tuple a Fire module's (squeeze, expand 1x1, expand 3x3); a Fire's input is the previous one's output.
SQUEEZENET_CONFIGS: dict[str, tuple[tuple[int, int], list[tuple[int, int, int] | str]]] = {
    # v1.0, the paper's Table 1: fire2-4, pool, fire5-8, pool, fire9.
    "1_0": ((96, 7), [(16, 64, 64), (16, 64, 64), (32, 128, 128), "M",
                      (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256), "M", (64, 256, 256)]),
    # v1.1: a 3x3 stem with 64 filters and the pools moved earlier, so most Fires run at lower resolution.
    "1_1": ((64, 3), [(16, 64, 64), (16, 64, 64), "M", (32, 128, 128), (32, 128, 128), "M",
                      (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)]),
}  # fmt: skip


class SqueezeNet(ImageClassifier):
    """stem conv -> pool -> Fire modules and pools -> dropout -> 1x1 conv to class maps -> ReLU -> global pool."""

    classifier_path = "classifier.1"

    def __init__(
        self,
        version: str = "1_0",
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
        small_input: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        (stem_width, stem_kernel), layout = SQUEEZENET_CONFIGS[version]
        if small_input:
            stem: nn.Module = nn.Conv2d(in_chans, stem_width, 3, padding=1)
            layers: list[nn.Module] = [stem, nn.ReLU(inplace=True), nn.Identity()]
        else:
            layers = [nn.Conv2d(in_chans, stem_width, stem_kernel, stride=2), nn.ReLU(inplace=True), _pool()]
        width = stem_width
        for item in layout:
            if item == "M":
                layers.append(_pool())
            else:
                layers.append(Fire(width, *item))
                width = item[1] + item[2]
        self.features = nn.Sequential(*layers)
        self.stage_names = pool_stage_names(self.features)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), self._class_maps(width, num_classes), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
        )
        self.num_features = width

        for module in self.features.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    @staticmethod
    def _class_maps(in_chs: int, num_classes: int) -> nn.Conv2d:
        conv = nn.Conv2d(in_chs, num_classes, 1)
        nn.init.normal_(conv.weight, 0.0, 0.01)  # small, so the initial class maps are near zero
        nn.init.zeros_(conv.bias)
        return conv

    def get_classifier(self) -> nn.Conv2d:
        return self.classifier[1]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final 1x1 conv by a new one with `num_classes` output maps."""
        old = self.classifier[1]
        self.classifier[1] = self._class_maps(old.in_channels, num_classes).to(old.weight.device, old.weight.dtype)
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, 224, 224]
        # 1_0: conv1 [B, 96, 109, 109] -> pool 54 -> fire2-4 [B, 256, 54, 54] -> pool 27 -> fire5-8 [B, 512, 27, 27]
        #      -> pool 13 -> fire9 [B, 512, 13, 13]. 1_1: conv1 [B, 64, 111, 111] -> pool 55 -> ... -> [B, 512, 13, 13]
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return torch.flatten(self.classifier[3](x), 1)  # [B, 512], the globally pooled features
        return torch.flatten(self.classifier(x), 1)  # class maps [B, num_classes, 13, 13] pooled: [B, num_classes]


_FAMILY = dict(family="SqueezeNet", paper=IANDOLA_2016, year=2016, input_size=(3, 224, 224))


@register_model(key_idea="Fire modules: 1x1 squeeze, then 1x1 and 3x3 expand", twin="squeezenet1_0", **_FAMILY)
def squeezenet1_0(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> SqueezeNet:
    """SqueezeNet v1.0 (Iandola et al., arXiv:1602.07360), as in the paper's Table 1: 1,248,424 parameters."""
    return SqueezeNet("1_0", num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(key_idea="SqueezeNet with a 3x3 stem and earlier pools: 2.4x cheaper", twin="squeezenet1_1", **_FAMILY)
def squeezenet1_1(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> SqueezeNet:
    """SqueezeNet v1.1 (Iandola et al., arXiv:1602.07360; the authors' repository): 1,235,496 parameters."""
    return SqueezeNet("1_1", num_classes=num_classes, in_chans=in_chans, **kwargs)
