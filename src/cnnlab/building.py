"""A run's model rebuilt from its config: the one builder training, evaluation, predict and export share."""

from __future__ import annotations

from torch import nn

from cnnlab.registry import create_model, model_info
from cnnlab.training.config import TrainConfig


def wants_small_input(model: str, image_size: int) -> bool:
    """ImageNet-style models (default input >= 64 px) get the CIFAR-style stem on small images, so their early
    strides do not shrink a 28x28 image to nothing."""
    return model_info(model).input_size[1] >= 64 and image_size < 64


def build_model(config: TrainConfig, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """The run's model; `config.small_input` must be resolved (True/False) already."""
    kwargs = dict(config.model_kwargs)
    if config.small_input:
        kwargs["small_input"] = True
    return create_model(config.model, num_classes=num_classes, in_chans=in_chans, input_size=image_size, **kwargs)
