"""The transfer experiments' data: a dataset's class subset (the source and target tasks) and a seeded draw of a
few labelled images per class (shared by the simple_cnn arms and the tutorial's MobileNetV3-Small arms)."""

from __future__ import annotations

import torch

from cnnlab.data import ImageDataset
from cnnlab.data.dataset import stratified_indices


def class_subset(data: ImageDataset, classes: tuple[int, ...], name: str) -> ImageDataset:
    """The images of `classes`, relabelled 0..len(classes)-1; normalised with the whole dataset's mean and std, so
    the source and target tasks share one preprocessing, as a pretrained model's users do."""
    lookup = torch.full((int(data.train_labels.max()) + 1,), -1, dtype=torch.long)
    lookup[list(classes)] = torch.arange(len(classes))

    def select(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = lookup[labels] >= 0
        return images[keep], lookup[labels[keep]]

    return ImageDataset(
        name,
        *select(data.train_images, data.train_labels),
        *select(data.test_images, data.test_labels),
        [data.classes[c] for c in classes],
        mean=data.mean,
        std=data.std,
        hflip=data.hflip,
    )


def few_labels(data: ImageDataset, per_class: int, seed: int) -> ImageDataset:
    """`per_class` training images of each class (a seeded stratified draw); the test split stays whole."""
    fraction = per_class * data.num_classes / len(data.train_labels)
    if fraction >= 1:
        raise ValueError(f"{data.name} has fewer than {per_class} training images per class")
    _, chosen = stratified_indices(data.train_labels, fraction, seed)
    return ImageDataset(
        f"{data.name}, {per_class}/class",
        data.train_images[chosen],
        data.train_labels[chosen],
        data.test_images,
        data.test_labels,
        list(data.classes),
        mean=data.mean,
        std=data.std,
        hflip=data.hflip,
    )
