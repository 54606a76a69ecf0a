"""Feature maps: the outputs of a model's stages (or any named layers) for a batch of images, via forward hooks.

    maps = feature_maps("runs/simple_resnet-...", ["shoe.png"])      # {"stem": [1, 32, 28, 28], "layer1": ...}
    maps = feature_maps(model, images, layers=["layer1.0.conv1"])

The stages are the uniform interface's `stages()` (models/base.py), so every family works the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from cnnlab.errors import closest
from cnnlab.visualization.errors import UnknownLayerError
from cnnlab.visualization.loading import Subject, as_subject, prepare_images

MAX_LISTED = 40  # a longer list of valid layer names would not fit one readable error line


def stage_names(model: nn.Module) -> list[str]:
    """The dotted names of the model's stages, shallow to deep. A network that names none (your own, a spec)
    gets its conv layers instead, so feature maps and Grad-CAM (the last one) work on any CNN."""
    names = list(getattr(model, "stage_names", ()))
    if not names:
        names = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if not names:
        raise UnknownLayerError(f"{type(model).__name__} has no stages and no conv layer; pass layers by name")
    return names


def resolve_layers(model: nn.Module, layers: Sequence[str] | None) -> dict[str, nn.Module]:
    """{name: module} for `layers`, or for the stages when None; an unknown name lists the valid ones."""
    modules = dict(model.named_modules())
    names = stage_names(model) if not layers else list(layers)
    for name in names:
        if name not in modules or not name:
            raise unknown_layer(model, name)
    return {name: modules[name] for name in names}


def unknown_layer(model: nn.Module, name: str) -> UnknownLayerError:
    valid = [n for n, _ in model.named_modules() if n]
    label = getattr(model, "model_name", None) or type(model).__name__
    stages = ", ".join(getattr(model, "stage_names", ())) or "none"
    if len(valid) <= MAX_LISTED:
        listed = ", ".join(valid)
        return UnknownLayerError(f"{label} has no layer '{name}'; its layers are: {listed} (stages: {stages})")
    hints = closest(name, valid, n=5)
    did_you_mean = f"did you mean: {', '.join(hints)}? " if hints else ""
    return UnknownLayerError(
        f"{label} has no layer '{name}'; {did_you_mean}its stages are: {stages} "
        f"(`cnnlab summary {label}` lists all {len(valid)} layers)"
    )


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode for the block, its train/eval flags restored after."""
    flags = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags.items():
            module.training = training


def first_tensor(output) -> torch.Tensor | None:
    return next((t for t in tree_leaves(output) if isinstance(t, torch.Tensor)), None)


@torch.no_grad()
def capture(model: nn.Module, inputs: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """One forward pass; {layer name: its output} in the order asked for. A layer called twice keeps its last
    output. Outputs are copied, so an in-place op after the layer (ReLU(inplace=True)) cannot change them."""
    targets = resolve_layers(model, layers)
    outputs: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def keep(module, args, output):
            tensor = first_tensor(output)
            if tensor is not None:
                outputs[name] = tensor.detach().float().clone()

        return keep

    handles = [module.register_forward_hook(hook(name)) for name, module in targets.items()]
    try:
        with eval_mode(model):
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    never_ran = [name for name in targets if name not in outputs]
    if never_ran:  # e.g. GoogLeNet's auxiliary heads, which run in training only
        raise UnknownLayerError(f"layer(s) {', '.join(never_ran)} of {type(model).__name__} do not run in eval mode")
    return {name: outputs[name] for name in targets}


def feature_maps(
    source: str | nn.Module | Subject, images, layers: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """{stage or layer name: its output [N, C, h, w]} for `images` (files, PIL images or a uint8 tensor
    [N, C, H, W]), preprocessed as the run's data was. `source` is a run directory or a model."""
    subject = as_subject(source)
    return capture(subject.model, prepare_images(subject, images).inputs, layers)


def strongest_channels(maps: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the `k` channels with the largest mean activation of one image's maps [C, h, w], strongest first."""
    means = maps.reshape(maps.shape[0], -1).mean(dim=1)
    return means.topk(min(k, len(means))).indices
