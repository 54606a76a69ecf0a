"""The model registry: `@register_model`, `list_models`, `model_info` and `create_model`, next to the models it
registers (as timm's `_registry.py`); `cnnlab.registry` re-exports it.

Each builder is a plain function that returns an `nn.Module`; the decorator records it together with the
metadata the docs and `cnnlab models` print (family, paper, year, default input, key idea).
"""

from __future__ import annotations

import fnmatch
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cnnlab.errors import CnnlabError, unknown_name_error


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str  # e.g. "ResNet"; models of one family live in one file
    paper: str  # authors, venue and year, with an arXiv id or DOI
    year: int  # year the architecture was published
    input_size: tuple[int, int, int]  # default input as (channels, height, width)
    key_idea: str  # the family's contribution in one line, as in the tutorials' evolution table
    builder: Callable[..., nn.Module]
    # True when the classifier's width depends on the input's height and width (flatten + linear heads such
    # as LeNet-5's); create_model then passes `input_size` (an int, the side in pixels) to the builder.
    sized_head: bool = False
    # The torchvision builder whose checkpoints this model loads with identical outputs (e.g. "resnet18"), or None.
    twin: str | None = None

    @property
    def default_num_classes(self) -> int:
        return 1000 if self.input_size[1] >= 224 else 10


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    paper: str,
    year: int,
    input_size: tuple[int, int, int],
    key_idea: str,
    sized_head: bool = False,
    twin: str | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under its function name, with the model's metadata.

    The registered builder also stamps the model it returns with its name (`model.model_name`), so that
    error messages say "resnet18" whether the model came from `create_model` or from calling `resnet18()`.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is registered twice")

        @functools.wraps(builder)
        def named_builder(*args, **kwargs) -> nn.Module:
            model = builder(*args, **kwargs)
            model.model_name = name
            return model

        _REGISTRY[name] = ModelInfo(name, family, paper, year, input_size, key_idea, named_builder, sized_head, twin)
        return named_builder

    return decorator


ENTRY_POINT_GROUP = "cnnlab.models"  # packages add models by naming a module here that runs @register_model
_plugins_loaded = False


def _ensure_loaded() -> None:
    # Importing the models package runs every family file's @register_model decorators; then the packages that
    # register models through the entry point group, once per process.
    import cnnlab.models  # noqa: F401

    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        load_plugins()


def load_plugins() -> list[str]:
    """Import every module named in the `cnnlab.models` entry point group (their `@register_model` decorators
    add the models); returns the entry points loaded. One that fails to load is skipped with a PluginLoadWarning
    naming it, so a broken package cannot take the zoo down."""
    import warnings
    from importlib.metadata import entry_points

    from cnnlab.errors import PluginLoadWarning

    loaded = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            point.load()
        except Exception as error:  # a third-party package's import: anything can go wrong in it
            warnings.warn(PluginLoadWarning(point.name, point.value, error), stacklevel=2)
            continue
        loaded.append(point.name)
    return loaded


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching an fnmatch pattern (e.g. "resnet*"), sorted."""
    _ensure_loaded()
    return sorted(name for name in _REGISTRY if fnmatch.fnmatchcase(name, pattern))


def model_info(name: str) -> ModelInfo:
    """The metadata of a registered model; an unknown name lists the closest ones."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise unknown_name_error("model", name, _REGISTRY)
    return _REGISTRY[name]


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    input_size: int | None = None,
    weights: str | os.PathLike | None = None,
    **kwargs,
) -> nn.Module:
    """Build a registered model.

    `num_classes` and `in_chans` default to the model's own defaults when None. `input_size` (the side of a
    square input in pixels) matters only to models whose head is sized by it (`ModelInfo.sized_head`, e.g.
    LeNet-5 at 28 or 32); for the others it is ignored, since a global pool makes them size-agnostic.
    `weights`: a local torchvision-style checkpoint (.pth/.pt state dict or .safetensors) to load, see
    `cnnlab.models.weights.load_weights`; another `in_chans` adapts its first conv, another `num_classes`
    keeps a fresh head. `head="linear"` or a layer spec: the whole classifier replaced
    (`ImageClassifier.replace_head`), as a fine-tuned run with `--head` records it in its model_kwargs.
    """
    info = model_info(name)
    if num_classes is not None:
        if int(num_classes) < 1:
            raise CnnlabError(f"num_classes must be at least 1, got {num_classes}")
        kwargs["num_classes"] = int(num_classes)
    if in_chans is not None:
        if int(in_chans) < 1:
            raise CnnlabError(f"in_chans must be at least 1, got {in_chans}")
        kwargs["in_chans"] = int(in_chans)
    if input_size is not None and info.sized_head:
        kwargs["input_size"] = int(input_size)
    head = kwargs.pop("head", None)  # a fine-tuned run's whole new classifier (ImageClassifier.replace_head)
    model = info.builder(**kwargs)
    if head is not None:
        model.replace_head(head)
    if weights is not None:
        from cnnlab.models.weights import load_weights

        load_weights(model, weights, model_name=name)
    return model


def min_input_size(name_or_model: str | nn.Module, **kwargs) -> int:
    """The smallest square side (in pixels) a model accepts, e.g. 63 for alexnet, 1 for resnet18.

    A name is built with `create_model(name, **kwargs)` on the meta device (no memory, no init, no
    arithmetic); either way the probe runs on meta tensors. See `cnnlab.models.base.min_input_size`.
    """
    from cnnlab.models.base import min_input_size as probe
    from cnnlab.models.meta import on_meta

    if isinstance(name_or_model, nn.Module):
        return probe(name_or_model)
    model_info(name_or_model)  # an unknown name fails here, with suggestions
    try:
        with on_meta():
            return probe(create_model(name_or_model, **kwargs))
    except CnnlabError:
        raise
    except Exception:  # a builder that needs real numbers (e.g. .item() while building)
        return probe(create_model(name_or_model, **kwargs))
