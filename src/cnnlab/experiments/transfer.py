"""Transfer learning from few labels: pretrain a backbone on classes 0-4, then learn classes 5-9 from 10, 100 or
1000 labelled images per class, four ways:

- scratch: the same network, freshly initialised, all of it trained;
- linear probe: the pretrained backbone frozen (BN statistics too), a new head trained (`reset_classifier`);
- fine-tune: a new head at the recipe's lr, the whole backbone at a tenth of it;
- LoRA: every conv of the frozen backbone gets a rank-r adapter (`LoRAConv2d`), trained with the new head.

All runs go through the trainer (param groups for the two learning rates). Few labels mean few steps per epoch,
so each run trains for about the same number of optimizer steps whatever its label count. The backbone is the
tutorials' Section-1 CNN (`simple_cnn`): no BN, so "frozen" means exactly the pretrained features.
"""

from __future__ import annotations

import copy
import math

import matplotlib.pyplot as plt
import torch
from torch import nn

from cnnlab.data import ImageDataset, load_dataset
from cnnlab.engine import trainer
from cnnlab.engine.config import TrainConfig, resolve
from cnnlab.errors import CnnlabError
from cnnlab.experiments import register_experiment
from cnnlab.experiments import transfer_tutorial as tutorial
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult
from cnnlab.experiments.transfer_data import class_subset, few_labels
from cnnlab.measure import count_params
from cnnlab.registry import create_model
from cnnlab.repeats import Claim
from cnnlab.workflows.finetune import head_and_backbone, prepare_for_finetuning

BACKBONE = "simple_cnn"
SOURCE_CLASSES, TARGET_CLASSES = tuple(range(5)), tuple(range(5, 10))
FULL_LABELS, QUICK_LABELS = (10, 100, 1000), (5, 20)
FULL_STEPS, QUICK_STEPS = 500, 60  # optimizer steps per few-label run
FULL_RANK, QUICK_RANK = 4, 2
METHODS = ("scratch", "linear probe", "fine-tune", "LoRA")
COLUMNS = ["labels_per_class", "method", "trainable_params", "test_accuracy", "epochs", "batch_size"]


def prepared(method: str, pretrained: nn.Module, num_classes: int, in_chans: int, rank: int) -> nn.Module:
    if method == "scratch":
        return create_model(BACKBONE, num_classes=num_classes, in_chans=in_chans)
    model = copy.deepcopy(pretrained)
    if method == "linear probe":
        return prepare_for_finetuning(model, num_classes, freeze="backbone")
    if method == "fine-tune":
        return prepare_for_finetuning(model, num_classes, freeze="none")
    return prepare_for_finetuning(model, num_classes, freeze="backbone", lora_rank=rank)


def plot_accuracy(rows: list[dict], path, title: str, methods: tuple[str, ...] = METHODS) -> None:
    """Test accuracy against labels per class, one line per method (and resolution, where rows name several)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    resolutions = sorted({r.get("resolution") for r in rows if r["method"] in methods}, key=str, reverse=True)
    for resolution in resolutions:
        for method in methods:
            at = [r for r in rows if r["method"] == method and r.get("resolution") == resolution]
            points = [(r["labels_per_class"], 100 * r["test_accuracy"]) for r in at]
            where = f", {resolution}px" if len(resolutions) > 1 else ""
            ax.plot(*zip(*points), "o-", label=f"{method}{where} ({at[0]['trainable_params']:,} trainable)")
    ax.set_xscale("log")
    counts = sorted({r["labels_per_class"] for r in rows})
    ax.set_xticks(counts, [str(n) for n in counts])
    ax.minorticks_off()
    ax.set(xlabel="labelled images per class", ylabel="test accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def few_label_runs(
    options: ExperimentOptions,
    target: ImageDataset,
    pretrained: nn.Module,
    recipe: TrainConfig,
    labels: tuple[int, ...],
    steps: int,
    rank: int,
) -> list[dict]:
    """For each labels-per-class budget, every method trained from the same pretrained backbone for about `steps`
    optimizer steps; one table row per run."""
    rows = []
    for per_class in labels:
        subset = few_labels(target, per_class, options.seed)
        n_train = len(subset.train_labels)
        batch_size = min(recipe.batch_size, max(8, n_train // 4))  # at least 4 steps per epoch
        epochs = max(1, math.ceil(steps / (n_train // batch_size)))
        for method in METHODS:
            torch.manual_seed(options.seed)  # the new head (and the scratch net) drawn alike for every method
            model = prepared(method, pretrained, target.num_classes, target.in_chans, rank)
            # Adapters and heads are new parameters: the recipe's lr. Only pretrained weights move at a tenth of it.
            backbone_lr = recipe.lr * (0.1 if method == "fine-tune" else 1.0)
            name = f"{per_class}-{method.replace(' ', '-')}"
            config = TrainConfig(
                model=BACKBONE,
                dataset=options.dataset_or_default(),
                epochs=epochs,
                batch_size=batch_size,
                seed=options.seed,
                val_fraction=0.0,
                out=str(options.out / "runs" / name),
            )  # val_fraction 0: every label trains
            results = trainer.run(
                config,
                overwrite=True,
                quiet=True,
                data=subset,
                model=model,
                param_groups=head_and_backbone(recipe.lr, backbone_lr),
            )
            rows.append(
                {
                    "labels_per_class": per_class,
                    "method": method,
                    "trainable_params": count_params(model, trainable_only=True),
                    "test_accuracy": results["test_accuracy"],
                    "epochs": epochs,
                    "batch_size": batch_size,
                }
            )
    return rows


def findings(rows: list[dict], pretrain_accuracy: float, labels: tuple[int, ...], rank: int) -> list[str]:
    def accuracy(per_class: int, method: str) -> float:
        return next(r["test_accuracy"] for r in rows if r["labels_per_class"] == per_class and r["method"] == method)

    def leader(per_class: int) -> str:
        """The best method against scratch (against the next best when scratch leads), as "fine-tune (93.7%, ..."."""
        ranked = sorted((r for r in rows if r["labels_per_class"] == per_class), key=lambda r: -r["test_accuracy"])
        first, other = ranked[0], ranked[1] if ranked[0]["method"] == "scratch" else None
        versus = (
            f"next {other['method']} {100 * other['test_accuracy']:.1f}%"
            if other
            else f"scratch {100 * accuracy(per_class, 'scratch'):.1f}%"
        )
        return f"{first['method']} ({100 * first['test_accuracy']:.1f}%, {versus})"

    fewest, most = labels[0], labels[-1]
    trainable = {r["method"]: r["trainable_params"] for r in rows}
    return [
        f"The backbone reached {100 * pretrain_accuracy:.1f}% on classes 0-4. With {fewest} labels per "
        f"class the best method is {leader(fewest)}; with {most}, {leader(most)}.",
        f"Trainable parameters: linear probe {trainable['linear probe']:,}, LoRA (rank {rank}) "
        f"{trainable['LoRA']:,}, fine-tune and scratch {trainable['fine-tune']:,}; LoRA "
        f"{'beats' if accuracy(fewest, 'LoRA') > accuracy(fewest, 'linear probe') else 'does not beat'} the linear "
        f"probe at {fewest} labels per class ({100 * accuracy(fewest, 'LoRA'):.1f}% vs "
        f"{100 * accuracy(fewest, 'linear probe'):.1f}%).",
    ]


def claims(labels: tuple[int, ...]) -> list[Claim]:
    """The tutorials' transfer claims at the fewest labels, where pretraining should matter most: fine-tuning and
    the linear probe both beat training from scratch."""
    fewest = labels[0]

    def row(method: str) -> dict:
        return {"labels_per_class": fewest, "method": method}

    return [
        Claim(
            f"with {fewest} labels per class, {method} beats training from scratch",
            "test_accuracy",
            row(method),
            row("scratch"),
        )
        for method in ("fine-tune", "linear probe")
    ]


@register_experiment(
    "transfer",
    help="pretrain on classes 0-4, learn 5-9 from few labels: scratch, probe, fine-tune, LoRA, and the tutorial's "
    "MobileNetV3-Small recipe (whole head, two phases; --weights FILE: on your imagefolder data)",
    accepts=("weights",),
)
def run(options: ExperimentOptions) -> ExperimentResult:
    if options.weights:
        return run_with_weights(options)
    dataset = options.dataset_or_default()
    data = load_dataset(dataset, options.data_dir)
    source = class_subset(data, SOURCE_CLASSES, f"{data.name} classes 0-4")
    target = class_subset(data, TARGET_CLASSES, f"{data.name} classes 5-9")
    labels, steps, rank = (
        (QUICK_LABELS, QUICK_STEPS, QUICK_RANK) if options.quick else (FULL_LABELS, FULL_STEPS, FULL_RANK)
    )
    recipe = resolve(TrainConfig(model=BACKBONE, dataset=dataset))
    pretrain_epochs = options.epochs_or(quick=2, full=10)

    torch.manual_seed(options.seed)
    pretrained = create_model(BACKBONE, num_classes=source.num_classes, in_chans=data.in_chans)
    config = TrainConfig(
        model=BACKBONE,
        dataset=dataset,
        epochs=pretrain_epochs,
        seed=options.seed,
        out=str(options.out / "runs" / "pretrain"),
    )
    pretrain = trainer.run(config, overwrite=True, quiet=True, data=source, model=pretrained)

    rows = [
        {"resolution": data.image_size, **row}
        for row in few_label_runs(options, target, pretrained, recipe, labels, steps, rank)
    ]
    plot_accuracy(rows, options.out / "transfer.png", f"{data.name} classes 5-9 after pretraining on 0-4")
    mobilenet, mobilenet_accuracy = tutorial.pretrained_here(options, source, pretrain_epochs)
    extra = tutorial.tutorial_rows(options, mobilenet, target, data.image_size)
    plot_accuracy(extra, options.out / "transfer-tutorial.png", f"{tutorial.MODEL}, {data.name} 5-9", tutorial.ARMS)
    return ExperimentResult(
        title=f"Transfer: {BACKBONE} pretrained on {data.name} classes 0-4, classes 5-9 from few labels",
        columns=tutorial.COLUMNS,
        rows=rows + extra,
        findings=findings(rows, pretrain["test_accuracy"], labels, rank) + tutorial.summary(extra),
        claims=claims(labels),
        plots=["transfer.png", "transfer-tutorial.png"],
        config={
            "backbone": BACKBONE,
            "dataset": data.name,
            "source_classes": list(SOURCE_CLASSES),
            "target_classes": list(TARGET_CLASSES),
            "labels_per_class": list(labels),
            "steps_per_run": steps,
            "pretrain_epochs": pretrain_epochs,
            "pretrain_test_accuracy": pretrain["test_accuracy"],
            "tutorial_pretrain_test_accuracy": mobilenet_accuracy,  # the mobilenet_v3_small source, classes 0-4
            "lora_rank": rank,
            "lr": recipe.lr,
            "optimizer": recipe.optimizer,
            "fine_tune_backbone_lr": recipe.lr * 0.1,
            "seed": options.seed,
            **tutorial.recipe_config(options),
        },
    )


def run_with_weights(options: ExperimentOptions) -> ExperimentResult:
    """--weights: the tutorial's exact setup, a torchvision MobileNetV3-Small on every class of the dataset."""
    if options.epochs is not None:  # without --weights it sets the pretraining's; here nothing is pretrained
        raise CnnlabError(
            f"--epochs does not apply to transfer --weights: its arms train the tutorial's {tutorial.HEAD_EPOCHS} + "
            f"{tutorial.ALL_EPOCHS} epochs ({tutorial.QUICK_EPOCHS[0]} + {tutorial.QUICK_EPOCHS[1]} with --quick)"
        )
    pretrained, data, side = tutorial.weights_source(options)
    rows = tutorial.tutorial_rows(options, pretrained, data, side)
    plot_accuracy(rows, options.out / "transfer-tutorial.png", f"{tutorial.MODEL} on {data.name}", tutorial.ARMS)
    return ExperimentResult(
        title=f"Transfer as the tutorials do it: {tutorial.MODEL} ({options.weights}) on {data.name}",
        columns=tutorial.COLUMNS,
        rows=rows,
        findings=tutorial.summary(rows),
        plots=["transfer-tutorial.png"],
        config={"dataset": data.name, "weights": str(options.weights), **tutorial.recipe_config(options)},
    )
