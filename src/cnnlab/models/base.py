"""The one interface every cnnlab model has, so the trainer never special-cases a family.

    features = model.forward_features(x)   # [B, C, h, w] (or [B, D] for flatten-style nets)
    logits = model.forward_head(features)  # [B, num_classes]
    model.reset_classifier(5)              # a new, freshly initialised final linear layer
    model.stages()                         # the modules whose outputs are the feature pyramid

A subclass builds its layers, then names where its final linear layer lives (`classifier_path`, a dotted
attribute path such as "fc" or "classifier.6", chosen to mirror torchvision's parameter names) and which
attributes are its stages (`stage_names`).
"""

from __future__ import annotations

import torch
from torch import nn


class ImageClassifier(nn.Module):
    classifier_path: str = "fc"  # dotted path of the final nn.Linear
    stage_names: tuple[str, ...] = ()  # attributes whose outputs are the feature maps, shallow to deep

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.get_submodule(self.classifier_path)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer by a new one with `num_classes` outputs (e.g. for transfer)."""
        old = self.get_classifier()
        parent_path, _, attr = self.classifier_path.rpartition(".")
        parent = self.get_submodule(parent_path) if parent_path else self
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        setattr(parent, attr, new.to(device=old.weight.device, dtype=old.weight.dtype))
        self.num_classes = num_classes

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map a torchvision checkpoint's keys onto this model's. The identity for families whose parameter
        names mirror torchvision's; a family whose names differ overrides it (and says so in its file)."""
        return state_dict

    def stages(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self.stage_names]
