"""--dirac: conv filters that start as the identity (airbench's initialisation).

Every plain conv whose output has at least as many channels as its input, with an odd square kernel, gets its first
`in_channels` filters set by torch.nn.init.dirac_: filter i copies input channel i through the kernel's centre. A
conv that keeps its channel count thus starts as the identity map, and one that widens starts by passing its input
through beside its random new filters: a deep plain stack starts near the identity, as a residual one does.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def dirac_init(model: nn.Module) -> int:
    """Set the first in_channels filters of each eligible conv to the identity; returns how many convs changed."""
    changed = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and eligible(module):
            nn.init.dirac_(module.weight[: module.in_channels])
            changed += 1
    return changed


def eligible(conv: nn.Conv2d) -> bool:
    height, width = conv.kernel_size
    return conv.groups == 1 and conv.out_channels >= conv.in_channels and height == width and height % 2 == 1
