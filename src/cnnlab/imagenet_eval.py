"""Top-1 and top-5 accuracy of an ImageNet checkpoint on a labelled folder of photos, the tutorials' "evaluate a
pretrained ResNet-50 on a few hundred ImageNet validation images":

    cnnlab eval --model resnet50 --weights resnet50-0676ba61.pth --dataset imagefolder:val-subset

The folder holds one subfolder per class, named by the class's WordNet id (`n01440764`, as ImageNet's own
folders are) or by its name in `imagenet_classes.txt` ("tench"; case and underscores are ignored). Output i of a
torchvision ImageNet-1k checkpoint is the i-th of the sorted ILSVRC-2012 WordNet ids, shipped in
`imagenet_wnids.txt`. Each image gets the twin's torchvision preprocessing (`imagenet.imagenet_weights_entry`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from cnnlab.data.imagefolder import IMAGE_EXTENSIONS
from cnnlab.errors import CnnlabError
from cnnlab.imagenet import imagenet_classes, imagenet_weights_entry, load_imagenet_model

TOP_K = (1, 5)
BATCH_SIZE = 32


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 WordNet ids, index i being the checkpoint's output i (the same order as `imagenet_classes`)."""
    text = resources.files("cnnlab").joinpath("imagenet_wnids.txt").read_text(encoding="utf-8")
    return tuple(text.split())


def _name_key(name: str) -> str:
    return name.strip().lower().replace("_", " ")


@functools.cache
def _index_by_name() -> dict[str, int | None]:
    """Class name -> output index, case and underscores ignored; None where that leaves two classes ("cardigan":
    264 "Cardigan", the corgi, and 474 "cardigan", the sweater)."""
    index: dict[str, int | None] = {}
    for i, name in enumerate(imagenet_classes()):
        key = _name_key(name)
        index[key] = None if key in index else i
    return index


def imagenet_index(folder_name: str) -> int:
    """The ImageNet output index of a class folder named by WordNet id or class name; CnnlabError otherwise."""
    wnids = imagenet_wnids()
    if folder_name in wnids:
        return wnids.index(folder_name)
    index = _index_by_name().get(_name_key(folder_name), -1)
    if index is None:
        raise CnnlabError(f"class folder {folder_name!r} names two ImageNet classes; rename it by WordNet id")
    if index < 0:
        raise CnnlabError(
            f"class folder {folder_name!r} is neither an ImageNet WordNet id (such as n01440764) nor "
            "an ImageNet class name (such as tench)"
        )
    return index


def labelled_images(root: str | Path) -> list[tuple[Path, int]]:
    """(image file, ImageNet index) for every image in `root/<class>/`, classes mapped by `imagenet_index`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CnnlabError(f"image folder {root} does not exist or is not a directory")
    found = []
    for folder in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            index = imagenet_index(folder.name)
            found += [(path, index) for path in files]
    if not found:
        raise CnnlabError(f"image folder {root} holds no images; expected one subfolder of images per class")
    return found


def preprocess(
    images: list[tuple[Path, int]], transform: Callable, batch_size: int = BATCH_SIZE
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(float32 [B, 3, crop, crop] batch, [B] labels) chunks of `images`, each file decoded and transformed."""
    from cnnlab.inference.prediction import open_image

    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch = torch.stack([transform(open_image(path, 3)) for path, _ in chunk])
        yield batch, torch.tensor([label for _, label in chunk])


@torch.no_grad()
def topk_correct(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """A [N, len(TOP_K)] bool tensor: whether image n's label is among the model's top-k outputs, for each k."""
    model.eval()
    hits = []
    for batch, labels in batches:
        ranked = model(batch).topk(max(TOP_K), dim=1).indices  # [B, 5]
        hits.append(torch.stack([(ranked[:, :k] == labels[:, None]).any(1) for k in TOP_K], dim=1))
    return torch.cat(hits)


def accuracies(correct: torch.Tensor) -> dict[str, float]:
    return {f"top{k}": correct[:, i].float().mean().item() for i, k in enumerate(TOP_K)}


def evaluate_imagenet_folder(model_name: str, weights: str | os.PathLike, root: str | Path) -> dict:
    """Top-1 and top-5 accuracy of `model_name` with the ImageNet checkpoint `weights` on the labelled folder
    `root`, with the preprocessing used and per-class top-1."""
    images = labelled_images(root)
    entry = imagenet_weights_entry(model_name, weights)
    transform = entry.transforms()
    model = load_imagenet_model(model_name, weights)
    correct = topk_correct(model, preprocess(images, transform))
    folders = [path.parent.name for path, _ in images]
    per_class = {name: correct[[f == name for f in folders], 0].float().mean().item() for name in sorted(set(folders))}
    return {
        "model": model_name,
        "weights": str(weights),
        "dataset": f"imagefolder:{root}",
        "images": len(images),
        "classes": len(per_class),
        **accuracies(correct),
        "per_class_top1": per_class,
        "preprocessing": {
            "weights": str(entry),
            "resize": list(transform.resize_size),
            "crop": list(transform.crop_size),
            "mean": list(transform.mean),
            "std": list(transform.std),
        },
    }
