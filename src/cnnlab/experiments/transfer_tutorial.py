"""The transfer-learning tutorials' own recipe, as arms of `experiment transfer`: a MobileNetV3-Small whose WHOLE
classifier is replaced by one Linear(576, classes), trained

- head only: the new head alone on the frozen backbone (the tutorial's phase 1; "last layer" instead keeps the
  576 -> 1024 hidden layer of torchvision's classifier and replaces only its final linear);
- two-phase: the head alone for HEAD_EPOCHS at HEAD_LR, then everything for ALL_EPOCHS at ALL_LR with a fresh
  Adam (the tutorial: 3 epochs at 1e-3, then 10 at 1e-5), one run (`trainer.run(phases=...)`);
- one-phase: everything from the start, for as many epochs, the head at HEAD_LR and the backbone at ALL_LR;

at 10, 100 and all labels per class, and at two input resolutions: the source's (224 for ImageNet weights) and a
quarter of it brought back up to the source's side, as the tutorial feeds 32x32 CIFAR-10 images resized to 224 to
an ImageNet network (the pixels the net sees are the source's size, the detail in them a quarter's).

The source is `--weights FILE`, a torchvision mobilenet_v3_small state dict (.pth read weights-only, or
.safetensors), on any dataset (an `imagefolder:` one is the tutorial's setting), every class of it the target
task; or without it a mobilenet_v3_small pretrained here on classes 0-4, the target classes 5-9 (the simple_cnn
arms' split). Adam is AdamW at weight decay 0 (the same update), the lr constant, BN statistics move under the
frozen backbone (`--bn-stats update`: the tutorial's model.train()).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import ImageDataset, load_dataset
from cnnlab.engine import trainer
from cnnlab.engine.config import TrainConfig
from cnnlab.experiments.common import ExperimentOptions
from cnnlab.experiments.transfer_data import few_labels
from cnnlab.measure import count_params
from cnnlab.options.commands import PhaseSpec
from cnnlab.registry import create_model
from cnnlab.workflows.finetune import head_and_backbone, prepare_for_finetuning, training_phases

MODEL = "mobilenet_v3_small"
ARMS = ("head only, last layer", "head only, whole head", "two-phase", "one-phase")
HEAD_LR, ALL_LR = 1e-3, 1e-5  # the tutorial's two Adam learning rates
HEAD_EPOCHS, ALL_EPOCHS = 3, 10
QUICK_EPOCHS = (1, 1)
LABELS, QUICK_LABELS = (10, 100, None), (5, 20)  # None: every training image of the target task
SOURCE_SIDE = 224  # the ImageNet weights' resolution
QUICK_SOURCE_SIDE = 64  # --quick --weights: a small side, so a test runs in seconds
COLUMNS = ["resolution", "labels_per_class", "method", "trainable_params", "test_accuracy", "epochs", "batch_size"]


def rescaled(data: ImageDataset, side: int, name: str | None = None, through: int | None = None) -> ImageDataset:
    """The images at `side` pixels (bilinear), by way of `through` pixels when given (antialiased down to it first:
    the detail of a `through`-pixel image at `side` pixels). Normalisation kept."""

    def scale(images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if through is not None:
            x = F.interpolate(x, size=through, mode="bilinear", antialias=True, align_corners=False)
        x = F.interpolate(x, size=side, mode="bilinear", align_corners=False)
        return x.round().clamp(0, 255).to(torch.uint8)

    return ImageDataset(
        name or data.name,
        scale(data.train_images),
        data.train_labels,
        scale(data.test_images),
        data.test_labels,
        list(data.classes),
        mean=data.mean,
        std=data.std,
        hflip=data.hflip,
    )


def at_resolution(data: ImageDataset, side: int) -> ImageDataset:
    """The detail of a `side`-pixel image at the data's own size (the tutorial's 32x32 resized to 224)."""
    return data if side == data.image_size else rescaled(data, data.image_size, f"{data.name} at {side}px", side)


def arm_model(arm: str, pretrained: nn.Module, num_classes: int) -> nn.Module:
    """The pretrained network prepared for `arm`'s first epoch: its new head, what is frozen."""
    model = copy.deepcopy(pretrained)
    head = "last" if arm == "head only, last layer" else "linear"
    freeze = "none" if arm == "one-phase" else "backbone"
    return prepare_for_finetuning(model, num_classes, freeze, head=head, bn_stats="update")


def arm_plan(arm: str, epochs: tuple[int, int]) -> tuple[list[PhaseSpec], object]:
    """(phases, param_groups) of an arm: the phases the trainer runs, or one phase with two learning rates."""
    head_epochs, all_epochs = epochs
    if arm.startswith("head only"):
        return [PhaseSpec("head", head_epochs, "adamw", HEAD_LR)], None
    if arm == "two-phase":
        return [PhaseSpec("head", head_epochs, "adamw", HEAD_LR), PhaseSpec("all", all_epochs, "adamw", ALL_LR)], None
    return [PhaseSpec("all", head_epochs + all_epochs, "adamw", HEAD_LR)], head_and_backbone(HEAD_LR, ALL_LR, "linear")


def train_arm(
    options: ExperimentOptions, arm: str, model: nn.Module, data: ImageDataset, epochs: tuple[int, int], name: str
) -> dict:
    """One arm's run through the trainer (tutorial recipe: AdamW at weight decay 0, constant lr, no augmentation)."""
    specs, groups = arm_plan(arm, epochs)
    batch_size = min(64, max(8, len(data.train_labels) // 4))
    config = TrainConfig(
        model=MODEL,
        dataset=options.dataset_or_default(),
        epochs=sum(s.epochs for s in specs),
        batch_size=batch_size,
        optimizer="adamw",
        lr=specs[0].lr,
        weight_decay=0.0,
        schedule="constant",
        augment=False,
        seed=options.seed,
        val_fraction=0.0,
        out=str(options.out / "runs" / name),
    )
    phases = training_phases(tuple(specs), "last" if "last" in arm else "linear", "update") if not groups else None
    trainable = count_params(model, trainable_only=True)
    results = trainer.run(
        config, overwrite=True, quiet=True, data=data, model=model, param_groups=groups, phases=phases
    )
    return {"trainable_params": trainable, "test_accuracy": results["test_accuracy"], "epochs": config.epochs,
            "batch_size": batch_size}  # fmt: skip


def subsets(target: ImageDataset, labels: tuple[int | None, ...], seed: int) -> list[tuple[int, ImageDataset]]:
    """(labels per class, the training subset) for each budget; None: all of it."""
    per_class_all = len(target.train_labels) // target.num_classes
    return [
        (per_class_all, target) if n is None or n >= per_class_all else (n, few_labels(target, n, seed)) for n in labels
    ]


def tutorial_rows(options: ExperimentOptions, pretrained: nn.Module, target: ImageDataset, side: int) -> list[dict]:
    """Every arm at every label budget, at the source's resolution and at a quarter of it."""
    labels = QUICK_LABELS if options.quick else LABELS
    epochs = QUICK_EPOCHS if options.quick else (HEAD_EPOCHS, ALL_EPOCHS)
    rows = []
    for resolution in (side, max(1, side // 4)):
        data = at_resolution(target, resolution)
        for per_class, subset in subsets(data, labels, options.seed):
            for arm in ARMS:
                torch.manual_seed(options.seed)  # the new head drawn alike for every arm
                model = arm_model(arm, pretrained, target.num_classes)
                name = f"tutorial-{resolution}px-{per_class}-{arm.replace(', ', '-').replace(' ', '-')}"
                result = train_arm(options, arm, model, subset, epochs, name)
                rows.append({"resolution": resolution, "labels_per_class": per_class, "method": arm, **result})
    return rows


def weights_source(options: ExperimentOptions) -> tuple[nn.Module, ImageDataset, int]:
    """--weights: the torchvision network (its ImageNet head on), the dataset at the source's side, that side."""
    side = QUICK_SOURCE_SIDE if options.quick else SOURCE_SIDE
    data = load_dataset(options.dataset_or_default(), options.data_dir, image_size=side)
    if data.image_size != side:  # a built-in set has its own size: resized as the tutorial's Resize(224)
        data = rescaled(data, side)
    model = create_model(MODEL, in_chans=data.in_chans, weights=options.weights)
    return model, data, side


def pretrained_here(options: ExperimentOptions, source: ImageDataset, epochs: int) -> tuple[nn.Module, float]:
    """Without --weights: a mobilenet_v3_small trained on the source classes (the simple_cnn backbone's task), and
    its test accuracy there."""
    torch.manual_seed(options.seed)
    model = create_model(MODEL, num_classes=source.num_classes, in_chans=source.in_chans)
    config = TrainConfig(
        model=MODEL,
        dataset=options.dataset_or_default(),
        epochs=epochs,
        seed=options.seed,
        out=str(options.out / "runs" / "tutorial-pretrain"),
    )
    results = trainer.run(config, overwrite=True, quiet=True, data=source, model=model)
    return model, results["test_accuracy"]


def summary(rows: list[dict]) -> list[str]:
    """The findings: at the fewest and the most labels, every arm's accuracy, at each resolution."""
    lines = []
    for resolution in sorted({r["resolution"] for r in rows}, reverse=True):
        at = [r for r in rows if r["resolution"] == resolution]
        counts = sorted({r["labels_per_class"] for r in at})
        for per_class in dict.fromkeys((counts[0], counts[-1])):
            cells = ", ".join(
                f"{r['method']} {100 * r['test_accuracy']:.1f}%" for r in at if r["labels_per_class"] == per_class
            )
            lines.append(
                f"MobileNetV3-Small, the tutorial's recipe at {resolution}px, {per_class} labels/class: {cells}."
            )
    return lines


def recipe_config(options: ExperimentOptions) -> dict:
    """config.json's record of the tutorial arms' recipe."""
    head_epochs, all_epochs = QUICK_EPOCHS if options.quick else (HEAD_EPOCHS, ALL_EPOCHS)
    return {
        "tutorial_model": MODEL,
        "tutorial_arms": list(ARMS),
        "tutorial_recipe": f"head {head_epochs} epochs adamw {HEAD_LR:g} (weight decay 0, constant lr), then all "
        f"{all_epochs} epochs at {ALL_LR:g}; one-phase: all {head_epochs + all_epochs} epochs, head {HEAD_LR:g}, "
        f"backbone {ALL_LR:g}; BN statistics move (model.train())",
        "tutorial_labels_per_class": ["all" if n is None else n for n in (QUICK_LABELS if options.quick else LABELS)],
    }
