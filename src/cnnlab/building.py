"""A run's model rebuilt from its recipe: the one builder training, evaluation, predict and export share.

It sits below training and inference, so it takes any object with the recipe's three model fields (a
`TrainConfig`, whose home is the engine, satisfies `ModelRecipe`) and imports neither of them.
"""

from __future__ import annotations

from typing import Protocol

from torch import nn

from cnnlab.registry import create_model, model_info


class ModelRecipe(Protocol):
    """The fields of a run's recipe that decide its network (`cnnlab.engine.config.TrainConfig` has them)."""

    model: str  # a registered model name
    model_kwargs: dict  # extra builder arguments
    small_input: bool | None  # the CIFAR-style stem; None: decided by `wants_small_input`


def wants_small_input(model: str, image_size: int) -> bool:
    """ImageNet-style models (default input >= 64 px) get the CIFAR-style stem on small images, so their early
    strides do not shrink a 28x28 image to nothing."""
    return model_info(model).input_size[1] >= 64 and image_size < 64


def build_model(config: ModelRecipe, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """A saved run's model, as its recipe says (`config.small_input` None: the default stem)."""
    kwargs = builder_kwargs(config.model_kwargs, bool(config.small_input))
    return create_model(config.model, num_classes=num_classes, in_chans=in_chans, input_size=image_size, **kwargs)


def build_new_model(config: ModelRecipe, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """A new run's model: `config.small_input` None is decided here (`wants_small_input`) and recorded in
    `config`, so that the run's config.json saves the stem it trains with. One call, so that the model's name goes
    down to the registry once (scripts/model_name_path.py counts the climbs back)."""
    if config.small_input is None:
        config.small_input = wants_small_input(config.model, image_size)
    kwargs = builder_kwargs(config.model_kwargs, config.small_input)
    return create_model(config.model, num_classes=num_classes, in_chans=in_chans, input_size=image_size, **kwargs)


def builder_kwargs(model_kwargs: dict, small_input: bool) -> dict:
    return {**model_kwargs, "small_input": True} if small_input else dict(model_kwargs)
