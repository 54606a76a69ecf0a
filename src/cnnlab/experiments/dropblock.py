"""Lesion study (Veit, Wilber & Belongie 2016, "Residual Networks Behave Like Ensembles of Relatively Shallow
Networks", arXiv:1605.06431, Fig. 3): delete one block of a trained network at test time and measure the damage.

A ResNet keeps working when one residual block is replaced by the identity, because every block only adds to a
signal its skip already carries; removing a layer of a plain network cuts the only path through it. Both
networks are He et al.'s CIFAR designs of one depth (resnet-20 and its plain twin in full mode, 14 in quick mode),
trained with one recipe by the trainer. Only blocks that keep the shape (stride 1, same width) can go: the
ResNet's `droppable_blocks`, and the plain twin's blocks at the same positions.
"""

from __future__ import annotations

import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.experiments import register_experiment
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult
from cnnlab.experiments.degradation import build_network, experiment_data, network_name
from cnnlab.models.blocks import BasicBlock
from cnnlab.models.resnet import ResNet, drop_block, droppable_blocks, has_skip
from cnnlab.training.config import TrainConfig
from cnnlab.training.trainer import evaluate_arrays, run

FULL_DEPTH = 20
QUICK_DEPTH = 14
COLUMNS = ["network", "removed_block", "test_accuracy", "accuracy_drop"]


def same_shape_blocks(model: ResNet) -> list[tuple[str, int]]:
    """(stage name, index) of every block whose output has its input's shape (stride 1, same width), skip or not:
    the blocks that can be replaced by the identity without breaking the network."""
    return [
        (name, index)
        for name, stage in zip(model.stage_names, model.stages())
        for index, block in enumerate(stage)
        if isinstance(block, BasicBlock)  # not a block already removed
        and block.conv1.stride == (1, 1) and block.conv1.in_channels == block.conv2.out_channels
    ]


def remove_block(model: ResNet, stage_name: str, index: int) -> None:
    """Replace a block by nn.Identity() in place: `drop_block` for a residual block (it checks the skip is the
    identity), a direct swap for a plain block (a whole conv-BN-ReLU-conv-BN-ReLU layer pair of the plain net)."""
    if (stage_name, index) not in same_shape_blocks(model):
        raise CnnlabError(f"block {index} of {stage_name} changes the shape and cannot be removed; "
                          f"removable: {same_shape_blocks(model)}")
    stage = model.get_submodule(stage_name)
    if has_skip(stage[index]):
        drop_block(model, stage_name, index)
    else:
        stage[index] = nn.Identity()


def lesion_accuracies(model: ResNet, data, blocks: list[tuple[str, int]]) -> dict[str, float]:
    """Test accuracy of `model` with each block in turn replaced by the identity (the model itself untouched)."""
    accuracies = {}
    for stage_name, index in blocks:
        lesioned = copy.deepcopy(model)
        remove_block(lesioned, stage_name, index)
        accuracies[f"{stage_name}.{index}"] = evaluate_arrays(lesioned, data.test_images, data.test_labels, data,
                                                              channels_last=False)[1]
    return accuracies


def plot_lesions(curves: dict[str, tuple[float, dict[str, float]]], path, title: str) -> None:
    """Test accuracy with each block removed, one line per network; dotted lines mark the intact accuracies."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for color, (name, (baseline, accuracies)) in zip(plt.cm.tab10.colors, curves.items()):
        positions = np.arange(len(accuracies))
        ax.plot(positions, [100 * a for a in accuracies.values()], "o-", color=color, label=f"{name}, one block removed")
        ax.axhline(100 * baseline, color=color, linestyle=":", label=f"{name}, intact")
        ax.set_xticks(positions, list(accuracies), rotation=30)
    ax.set(xlabel="removed block", ylabel="test accuracy (%)", title=title, ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@register_experiment("drop-block", help="delete one block at test time: ResNet vs plain net (Veit et al. 2016)")
def run_drop_block(options: ExperimentOptions) -> ExperimentResult:
    data = experiment_data(options)
    depth = QUICK_DEPTH if options.quick else FULL_DEPTH
    epochs = options.epochs_or(quick=2, full=10)

    rows, curves, summary = [], {}, {}
    for residual in (True, False):
        name = network_name(depth, residual)
        torch.manual_seed(options.seed)
        model = build_network(depth, residual, data.num_classes, data.in_chans)
        config = TrainConfig(model=name, dataset=options.dataset_or_default(), epochs=epochs, seed=options.seed,
                             data_dir=options.data_dir, out=str(options.out / "runs" / name))
        results = run(config, overwrite=True, quiet=True, data=data, model=model)
        blocks = droppable_blocks(model) if residual else same_shape_blocks(model)
        baseline = results["test_accuracy"]
        accuracies = lesion_accuracies(model, data, blocks)
        rows.append({"network": name, "removed_block": "none", "test_accuracy": baseline, "accuracy_drop": 0.0})
        rows += [{"network": name, "removed_block": block, "test_accuracy": accuracy, "accuracy_drop": baseline - accuracy}
                 for block, accuracy in accuracies.items()]
        curves[name] = (baseline, accuracies)
        drops = [baseline - a for a in accuracies.values()]
        summary[name] = (baseline, float(np.mean(drops)), max(drops))

    plot_lesions(curves, options.out / "drop_block.png", f"{data.name}: one block removed at test time, depth {depth}")
    res, plain = network_name(depth, True), network_name(depth, False)

    def described(name: str) -> str:
        baseline, mean_drop, max_drop = summary[name]
        return (f"{name} (intact {100 * baseline:.1f}%) loses {100 * mean_drop:.1f} points on average and at most "
                f"{100 * max_drop:.1f}")

    robust = summary[res][1] < summary[plain][1]
    return ExperimentResult(
        title=f"Drop-block: test accuracy with one block removed, {res} vs {plain} on {data.name}",
        columns=COLUMNS,
        rows=rows,
        findings=[
            f"Removing one block at test time, {described(res)}; {described(plain)}.",
            f"This run {'agrees' if robust else 'does not agree'} with Veit et al.: the ResNet "
            f"{'degrades more gracefully than' if robust else 'is not more robust than'} its plain twin, whose every "
            "same-shape block is on the only path from input to output.",
        ],
        plots=["drop_block.png"],
        config={"depth": depth, "epochs": epochs, "dataset": data.name, "image_size": data.image_size,
                "blocks": {name: list(accuracies) for name, (_, accuracies) in curves.items()}, "seed": options.seed,
                "note": "lesioned networks keep the BN statistics of the intact one, as in Veit et al."},
    )
