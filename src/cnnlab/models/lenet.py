"""LeNet-5 and the tutorials' "Section 1" CNN: flatten-and-FC networks whose head is sized by the input.

LeNet-5 (LeCun et al. 1998): two 5x5 conv + average-pool stages with tanh, then three fully connected layers.
At 1x32x32 (the paper's input) it has 61,706 parameters; at 1x28x28 (MNIST without padding) 44,426.
No torchvision twin, so parameter names follow the tutorials (conv1, conv2, fc1, fc2, fc3).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models._registry import register_model
from cnnlab.models.base import ImageClassifier

LECUN_1998 = (
    "LeCun, Bottou, Bengio & Haffner, Gradient-Based Learning Applied to Document Recognition, "
    "Proc. IEEE 1998, DOI 10.1109/5.726791"
)


def _side_after(input_size: int, stages: list[tuple[int, int]], name: str) -> int:
    """Spatial side after (kernel, stride) steps with no padding: floor((H - k) / s) + 1 per step."""
    side = input_size
    for kernel, stride in stages:
        side = (side - kernel) // stride + 1
    if side < 1:
        minimum = 1
        for kernel, stride in reversed(stages):  # invert each step, starting from a 1-pixel output
            minimum = (minimum - 1) * stride + kernel
        raise CnnlabError(f"{name} needs inputs of at least {minimum}x{minimum} pixels, got input_size {input_size}")
    return side


class LeNet5(ImageClassifier):
    classifier_path = "fc3"
    stage_names = ("conv1", "conv2")

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size: int = 32) -> None:
        super().__init__(num_classes, in_chans)
        self.conv1 = nn.Conv2d(in_chans, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.AvgPool2d(2, 2)
        side = _side_after(input_size, [(5, 1), (2, 2), (5, 1), (2, 2)], "lenet5")  # 32 -> 5, 28 -> 4
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 1, 28, 28]
        x = self.pool(torch.tanh(self.conv1(x)))  # [B, 6, 12, 12]
        x = self.pool(torch.tanh(self.conv2(x)))  # [B, 16, 4, 4]
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(x, 1)  # [B, 256]
        x = torch.tanh(self.fc1(x))  # [B, 120]
        x = torch.tanh(self.fc2(x))  # [B, 84]
        return x if pre_logits else self.fc3(x)  # [B, 10]


class SimpleCNN(ImageClassifier):
    """conv 3x3 (16) -> max-pool -> conv 3x3 (32) -> max-pool -> fc 128 -> fc, ReLU throughout."""

    classifier_path = "fc2"
    stage_names = ("conv1", "conv2")

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size: int = 28) -> None:
        super().__init__(num_classes, in_chans)
        self.conv1 = nn.Conv2d(in_chans, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.relu = nn.ReLU(inplace=True)
        side = _side_after(input_size, [(2, 2), (2, 2)], "simple_cnn")  # same-padded convs keep the side; 28 -> 7
        self.fc1 = nn.Linear(32 * side * side, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 1, 28, 28]
        x = self.pool(self.relu(self.conv1(x)))  # [B, 16, 14, 14]
        x = self.pool(self.relu(self.conv2(x)))  # [B, 32, 7, 7]
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.relu(self.fc1(torch.flatten(x, 1)))  # [B, 1568] -> [B, 128]
        return x if pre_logits else self.fc2(x)  # [B, 10]


@register_model(
    family="LeNet",
    paper=LECUN_1998,
    year=1998,
    input_size=(1, 32, 32),
    key_idea="conv + pool + FC, learned features end to end",
    sized_head=True,
)
def lenet5(num_classes: int = 10, in_chans: int = 1, **kwargs) -> LeNet5:
    """LeNet-5 with tanh and average pooling; `input_size` 32 (paper, 61,706 params) or 28 (44,426)."""
    return LeNet5(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(
    family="Tutorial CNN",
    paper=LECUN_1998,
    year=1998,
    input_size=(1, 28, 28),
    key_idea="modern LeNet: 3x3 convs, ReLU and max-pool",
    sized_head=True,
)
def simple_cnn(num_classes: int = 10, in_chans: int = 1, **kwargs) -> SimpleCNN:
    """The tutorials' "Section 1" CNN for 28x28 digits (206,922 params), a ReLU/max-pool LeNet descendant."""
    return SimpleCNN(num_classes=num_classes, in_chans=in_chans, **kwargs)
