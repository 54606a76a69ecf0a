"""Where the model looked: Grad-CAM and saliency maps with captum, at input resolution and scaled to [0, 1].

    maps = attribution("runs/simple_resnet-...", ["shoe.png"], method="gradcam")   # [1, 28, 28]

Grad-CAM (Selvaraju et al. 2017) weights the last stage's channels by the mean gradient of the target logit and
keeps the positive part; the last stage comes from the uniform interface (`stages()`), so no family needs a case
of its own. Saliency (Simonyan et al. 2014) is the largest absolute input gradient over the colour channels.
Each image's map is divided by its own maximum: the maps show where, not how much.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.visualization.activations import eval_mode, resolve_layers, stage_names
from cnnlab.visualization.errors import TargetOutOfRangeError
from cnnlab.visualization.loading import Subject, as_subject, prepare_images

METHODS = ("gradcam", "saliency")
Target = int | Sequence[int] | torch.Tensor | None


@torch.no_grad()
def probabilities(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Softmax outputs [N, num_classes] in eval mode."""
    with eval_mode(model):
        return torch.softmax(model(inputs).float(), dim=1)


def resolve_targets(target: Target, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One class index per image: the predicted class when `target` is None, else `target` (one or one per image)."""
    if target is None:
        return predicted
    targets = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if len(targets) == 1:
        targets = targets.expand(len(predicted))
    if len(targets) != len(predicted):
        raise CnnlabError(f"{len(targets)} targets for {len(predicted)} images: give one, or one per image")
    bad = [int(t) for t in targets if not 0 <= int(t) < num_classes]
    if bad:
        raise TargetOutOfRangeError(
            f"--target {bad[0]} is out of range: the model has {num_classes} classes, 0 to {num_classes - 1}"
        )
    return targets.clone()


def scale_per_image(maps: torch.Tensor) -> torch.Tensor:
    """[N, H, W] non-negative maps divided by each one's maximum (an all-zero map stays zero)."""
    peak = maps.flatten(1).amax(dim=1).clamp_min(torch.finfo(maps.dtype).tiny)
    return (maps / peak[:, None, None]).clamp(0.0, 1.0)


def captum_attr():
    """captum.attr, loaded without tqdm's warning: captum imports tqdm.auto, which in a notebook without ipywidgets
    warns that it falls back to the text bar (no captum bar is ever shown here)."""
    import warnings

    from tqdm import TqdmWarning  # a dependency of captum's

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        import captum.attr
    return captum.attr


def gradcam(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, layer: str | None = None) -> torch.Tensor:
    """Grad-CAM of `layer` (None: the last stage), upsampled bilinearly to the input's size: [N, H, W] in [0, 1]."""
    attr = captum_attr()

    name = layer or stage_names(model)[-1]
    module = resolve_layers(model, [name])[name]
    with eval_mode(model):
        cam = attr.LayerGradCam(model, module).attribute(inputs, target=targets, relu_attributions=True)
    if cam.ndim != 4:
        raise CnnlabError(f"layer '{name}' of {type(model).__name__} outputs {cam.ndim - 1}-d features, not maps")
    size = tuple(inputs.shape[-2:])
    upsampled = attr.LayerAttribution.interpolate(cam.detach().float(), size, interpolate_mode="bilinear")
    return scale_per_image(upsampled[:, 0].clamp_min(0.0))  # bilinear keeps it >= 0 up to rounding


def saliency(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """|d logit / d pixel|, the largest over the channels: [N, H, W] in [0, 1]."""
    with eval_mode(model):
        grads = captum_attr().Saliency(model).attribute(inputs, target=targets, abs=True)
    return scale_per_image(grads.detach().float().amax(dim=1))


def attribute(
    model: nn.Module, inputs: torch.Tensor, method: str, targets: torch.Tensor, layer: str | None = None
) -> torch.Tensor:
    """The array core of `attribution`, on an already preprocessed batch (`layer`: Grad-CAM's, None the last stage)."""
    if method not in METHODS:
        raise CnnlabError(f"unknown attribution method '{method}'; choose one of: {', '.join(METHODS)}")
    inputs = inputs.detach().clone().requires_grad_(True)
    if method == "gradcam":
        return gradcam(model, inputs, targets, layer)
    return saliency(model, inputs, targets)


def attribution(
    source: str | nn.Module | Subject, images, method: str = "gradcam", target: Target = None, layer: str | None = None
) -> torch.Tensor:
    """Grad-CAM or saliency maps [N, H, W] at the input's resolution, each scaled to [0, 1].

    `images`: files, PIL images or a uint8 tensor [N, C, H, W], preprocessed as the run's data was. `target`: the
    class to explain (one index, or one per image); None explains each image's predicted class. `layer`: the layer
    Grad-CAM weighs (its output must be maps); None, the last stage."""
    if method not in METHODS:
        raise CnnlabError(f"unknown attribution method '{method}'; choose one of: {', '.join(METHODS)}")
    subject = as_subject(source)
    inputs = prepare_images(subject, images).inputs
    probs = probabilities(subject.model, inputs)
    targets = resolve_targets(target, probs.argmax(dim=1), probs.shape[1])
    return attribute(subject.model, inputs, method, targets, layer)
