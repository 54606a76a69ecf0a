"""What a visualisation looks at: a model with its class names and preprocessing, and images made ready for it.

    subject = as_subject("runs/simple_resnet-fashion-mnist-...")   # a run directory, a model, or imagenet_subject()
    batch = prepare_images(subject, ["shoe.png"])                 # pixels uint8 [N, C, H, W] and inputs float32

A run's images are resized to its side and normalised with its dataset's mean and std, exactly as `predict` does;
an ImageNet checkpoint's go through torchvision's resize and centre crop for those weights. `pixels` is what the
model sees before normalisation, for drawing next to the maps.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnlab.data import normalize
from cnnlab.errors import CnnlabError
from cnnlab.inference.prediction import LoadedRun, load_run, open_image
from cnnlab.visualization.errors import ChannelMismatchError

ImageInput = str | os.PathLike | Image.Image


@dataclass
class Subject:
    """A model in eval mode with what it takes to feed it and to label its outputs."""

    model: nn.Module
    name: str  # the model's name, for titles
    in_chans: int
    classes: list[str] | None = None  # None: outputs are labelled by index
    image_size: int | None = None  # the side images are resized to; None keeps their size
    mean: tuple[float, ...] | None = None  # None: pixels / 255, not normalised
    std: tuple[float, ...] | None = None
    imagenet_transform: object | None = None  # torchvision's ImageClassification preset of ImageNet weights
    run: LoadedRun | None = None


@dataclass
class Batch:
    pixels: torch.Tensor  # uint8 [N, C, H, W], resized (and cropped) as the model sees them
    inputs: torch.Tensor  # float32 [N, C, H, W], normalised
    names: list[str]  # one file-name-safe label per image (the file's stem, "test123", "image0")
    labels: list[int | None] = field(default_factory=list)  # the true classes where known


def load_model(run_dir: str | os.PathLike) -> nn.Module:
    """The trained model of a run directory, with its final weights, in eval mode."""
    return load_run(run_dir).model


def run_subject(run_dir: str | os.PathLike) -> Subject:
    run = load_run(run_dir)
    data = run.data
    return Subject(
        run.model,
        run.config.model,
        data["in_chans"],
        list(data["classes"]),
        data["image_size"],
        tuple(data["mean"]),
        tuple(data["std"]),
        run=run,
    )


def imagenet_subject(model_name: str, weights: str | os.PathLike) -> Subject:
    """A torchvision ImageNet checkpoint, preprocessed as `cnnlab predict --model --weights` does it."""
    from cnnlab.imagenet import imagenet_classes, imagenet_weights_entry, load_imagenet_model

    transform = imagenet_weights_entry(model_name, weights).transforms()
    model = load_imagenet_model(model_name, weights)
    return Subject(
        model,
        model_name,
        3,
        list(imagenet_classes()),
        None,
        tuple(transform.mean),
        tuple(transform.std),
        imagenet_transform=transform,
    )


def own_subject(model: str, weights: str | os.PathLike | None, first_image: ImageInput) -> Subject:
    """Your own network (a layer spec or `file.py:Name`) as `visualize --model` names it: built for the first
    image's channels (grey: 1, else 3) and size, with its own class count, then loaded from `weights` (a state
    dict, safetensors or a weights-only torch file) or left at its random initialisation, to look inside before
    training. Images are kept at their size, pixels / 255, as for a module."""
    from cnnlab.building import build_own, model_label
    from cnnlab.models.weights import read_state_dict

    width, height = open_image(first_image, 3).size  # a missing or unreadable image: its one-line error
    with Image.open(first_image) as probe:
        in_chans = 1 if probe.mode in ("1", "L", "I", "I;16", "F") else 3
    net = build_own(model, None, (in_chans, height, width))
    if weights is not None:
        try:
            net.load_state_dict(read_state_dict(weights))
        except RuntimeError as error:  # names, or shapes, that differ from the network's
            first = str(error).strip().splitlines()[0]
            raise CnnlabError(f"weights file {weights} does not fit {model_label(model)}: {first}") from None
    subject = as_subject(net)
    subject.name = model_label(model)
    return subject


def as_subject(source: str | os.PathLike | nn.Module | Subject) -> Subject:
    """A run directory, a model (its own channels, images kept at their size, pixels / 255) or a Subject."""
    if isinstance(source, Subject):
        return source
    if isinstance(source, nn.Module):
        in_chans = getattr(source, "in_chans", None) or _first_conv_in_channels(source)
        name = getattr(source, "model_name", None) or type(source).__name__
        return Subject(source.eval(), name, in_chans)
    return run_subject(source)


def _first_conv_in_channels(model: nn.Module) -> int:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise CnnlabError(f"{type(model).__name__} has no in_chans attribute and no Conv2d to read its channels from")
    return conv.in_channels


def prepare_images(subject: Subject, images: Sequence[ImageInput] | torch.Tensor) -> Batch:
    """Files, PIL images or a uint8 tensor [N, C, H, W] (as datasets store them) -> the model's batch."""
    if isinstance(images, torch.Tensor):
        pixels, names = _tensor_pixels(subject, images), [f"image{i}" for i in range(len(images))]
    else:
        if isinstance(images, (str, os.PathLike, Image.Image)):
            images = [images]
        if not images:
            raise CnnlabError("no images given: pass image files, or --from-test N for test images")
        pixels = [_pil_pixels(subject, image) for image in images]
        sizes = {tuple(p.shape) for p in pixels}
        if len(sizes) > 1:  # a bare model keeps each image's size, and a batch needs one
            raise CnnlabError(
                f"images of different sizes {sorted(sizes)} cannot share a batch for {subject.name}; "
                "resize them first or use a run directory, whose side they are resized to"
            )
        pixels, names = torch.stack(pixels), unique_names([_image_name(image, i) for i, image in enumerate(images)])
    return Batch(pixels, to_inputs(subject, pixels), names, [None] * len(pixels))


def to_inputs(subject: Subject, pixels: torch.Tensor) -> torch.Tensor:
    if subject.mean is None:
        return pixels.float() / 255.0
    return normalize(pixels, subject.mean, subject.std)


def _tensor_pixels(subject: Subject, images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8:
        raise CnnlabError(f"image tensors must be uint8 [N, C, H, W] as datasets store them, not {images.dtype}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise CnnlabError(f"image tensors must be [N, C, H, W], not of shape {list(images.shape)}")
    if images.shape[1] != subject.in_chans:
        raise ChannelMismatchError(
            f"the images have {images.shape[1]} channel(s) but {subject.name} takes {subject.in_chans}"
        )
    return _fit(subject, images.cpu())


def _pil_pixels(subject: Subject, image: ImageInput) -> torch.Tensor:
    """uint8 [C, H, W] with the model's channels: grey content becomes one channel or three equal ones, but a
    colour image is refused by a grey model (its colours would be silently dropped)."""
    if isinstance(image, Image.Image):
        what = getattr(image, "filename", "") or "a PIL image"
        rgb = image.convert("RGB")
    else:
        what = str(image)
        rgb = open_image(image, 3)  # the file checks and the 16-bit rescaling of `predict`
    rgb = _fit(subject, rgb)  # on the PIL image, as `predict` and torchvision's transforms resize files
    array = np.asarray(rgb, dtype=np.uint8)  # [H, W, 3]
    if subject.in_chans == 1:
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise ChannelMismatchError(
                f"image {what} is in colour but {subject.name} takes 1 grey channel; convert it to greyscale first"
            )
        array = array[..., :1]
    elif subject.in_chans != 3:
        raise ChannelMismatchError(f"image {what} has 3 channels but {subject.name} takes {subject.in_chans}")
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def _fit(subject: Subject, pixels: torch.Tensor | Image.Image) -> torch.Tensor | Image.Image:
    """Resize (and crop) a PIL image or uint8 pixels [N, C, H, W] the way the subject's training data was."""
    if subject.imagenet_transform is not None:
        import torchvision.transforms.functional as TF

        t = subject.imagenet_transform
        resized = TF.resize(pixels, list(t.resize_size), interpolation=t.interpolation, antialias=t.antialias)
        return TF.center_crop(resized, list(t.crop_size))
    side = subject.image_size
    if side is None:
        return pixels
    if isinstance(pixels, Image.Image):
        return pixels.resize((side, side), Image.BILINEAR)  # as `predict` resizes a file
    if tuple(pixels.shape[-2:]) == (side, side):
        return pixels
    # A tensor of another side: bilinear and antialiased, like PIL's resize of files.
    resized = F.interpolate(pixels.float(), size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


def _image_name(image: ImageInput, index: int) -> str:
    if isinstance(image, Image.Image):
        filename = getattr(image, "filename", "")
        return Path(filename).stem if filename else f"image{index}"
    return Path(image).stem


def unique_names(names: list[str]) -> list[str]:
    """File-name-safe names, a repeated one suffixed -2, -3..., so no picture overwrites another."""
    seen: dict[str, int] = {}
    result = []
    for name in names:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "image"
        seen[safe] = seen.get(safe, 0) + 1
        result.append(safe if seen[safe] == 1 else f"{safe}-{seen[safe]}")
    return result
