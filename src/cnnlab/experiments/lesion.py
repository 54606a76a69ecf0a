"""The lesion experiment (`lesion`; `drop-block` before, a name it keeps as a deprecated alias: it is not
DropBlock). Lesion study (Veit, Wilber & Belongie 2016, "Residual Networks Behave Like Ensembles of Relatively Shallow
Networks", arXiv:1605.06431, Fig. 3): delete one block of a trained network at test time and measure the damage.

A ResNet keeps working when one residual block is replaced by the identity, because every block only adds to a
signal its skip already carries; removing a layer of a plain network cuts the only path through it. Both
networks are He et al.'s CIFAR designs of one depth (resnet-20 and its plain twin in full mode, 14 in quick mode),
trained with one recipe by the trainer. Only blocks that keep the shape (stride 1, same width) can go: the
ResNet's `droppable_blocks`, and the plain twin's blocks at the same positions.

Beside them, the plain network the tutorials' exercise 20.3.3 names: a VGG (`mini_vgg`, three blocks of two 3x3
conv-BN-ReLU layers) trained with the same recipe, one conv layer removed at a time. Only a layer whose conv keeps
the shape (same channels in and out, stride 1) can be replaced by the identity: each block's second; the first
changes the width (in_chans -> 32, 32 -> 64, 64 -> 128), so no identity can stand in for it (`vgg_layers`).

With `--model resnet50 --weights FILE --dataset imagefolder:PATH` it is the tutorials' exercise 20.3.3 instead: a
pretrained ImageNet ResNet, each droppable block removed in turn (stage 1's and stage 3's among them), top-1 and
top-5 on a labelled folder of photos (see `cnnlab.imagenet_eval`), nothing trained. With `--model SPEC` or
`--model FILE.py:Name` it is your network's lesion: trained with the experiment's recipe (a network in code keeps
its source in its run), then each found residual block whose skip is the identity removed in turn (`lesion_units`):
a spec's res(...) blocks, cnnlab's and torchvision's BasicBlock/Bottleneck, and any module whose class says
`lesionable = True`. A block is removed only when one batch shows its output shaped as its input; a network with no
such block is refused in one line saying how to make one findable (`no_units`).
"""

from __future__ import annotations

import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from cnnlab.building import SPEC, ZOO, build_own, check_model_text, model_kind
from cnnlab.engine import trainer
from cnnlab.engine.config import TrainConfig
from cnnlab.errors import CnnlabError
from cnnlab.experiments import register_experiment
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult
from cnnlab.experiments.degradation import build_network, experiment_data, network, network_name
from cnnlab.inference.evaluation import evaluate_arrays
from cnnlab.measure.spec import Residual
from cnnlab.models import references
from cnnlab.models.blocks import BasicBlock
from cnnlab.models.resnet import ResNet, drop_block, droppable_blocks, has_skip
from cnnlab.registry import create_model
from cnnlab.repeats import Claim

FULL_DEPTH = 20
QUICK_DEPTH = 14
COLUMNS = ["network", "removed_block", "test_accuracy", "accuracy_drop"]
PRETRAINED_COLUMNS = ["network", "removed_block", "top1", "top5", "top1_drop", "top5_drop"]
MEAN_ROW = "mean over blocks"  # each network's summary row: its lesions' mean accuracy and mean drop


def same_shape_blocks(model: ResNet) -> list[tuple[str, int]]:
    """(stage name, index) of every block whose output has its input's shape (stride 1, same width), skip or not:
    the blocks that can be replaced by the identity without breaking the network."""
    return [
        (name, index)
        for name, stage in zip(model.stage_names, model.stages())
        for index, block in enumerate(stage)
        if isinstance(block, BasicBlock)  # not a block already removed
        and block.conv1.stride == (1, 1)
        and block.conv1.in_channels == block.conv2.out_channels
    ]


def remove_block(model: ResNet, stage_name: str, index: int) -> None:
    """Replace a block by nn.Identity() in place: `drop_block` for a residual block (it checks the skip is the
    identity), a direct swap for a plain block (a whole conv-BN-ReLU-conv-BN-ReLU layer pair of the plain net)."""
    if (stage_name, index) not in same_shape_blocks(model):
        raise CnnlabError(
            f"block {index} of {stage_name} changes the shape and cannot be removed; "
            f"removable: {same_shape_blocks(model)}"
        )
    stage = model.get_submodule(stage_name)
    if has_skip(stage[index]):
        drop_block(model, stage_name, index)
    else:
        stage[index] = nn.Identity()


VGG_NETWORK = "mini_vgg"  # a registered plain VGG; its conv-BN-ReLU layers are the units removed


def vgg_layers(model: nn.Module) -> dict[str, str | None]:
    """Every conv-BN-ReLU layer of a VGG's blocks by dotted name ("block1.1"), with why it cannot be removed
    (None: it can, its conv keeps the shape)."""
    layers = {}
    for stage_name in model.stage_names:
        for index, layer in enumerate(model.get_submodule(stage_name)):
            conv = layer[0] if isinstance(layer, nn.Sequential) and isinstance(layer[0], nn.Conv2d) else None
            if conv is None:
                continue  # the block's max-pool, or a layer already removed
            problems = []
            if conv.in_channels != conv.out_channels:
                problems.append(f"{conv.in_channels} -> {conv.out_channels} channels")
            if conv.stride != (1, 1):
                problems.append(f"stride {conv.stride[0]}")
            layers[f"{stage_name}.{index}"] = ", ".join(problems) or None
    return layers


LESIONABLE = "lesionable"  # a class attribute: `lesionable = True` marks your block as x + f(x), identity skip
KEPT = "its skip changes the shape"


def skip_blocks(model: nn.Module) -> dict[str, bool]:
    """Every residual block a lesion can find in a network of your own, by dotted name, and whether its skip is
    the identity as built: a layer spec's res(...) blocks (identity unless it carries a 1x1 projection), cnnlab's
    residual blocks (`has_skip`) and torchvision's BasicBlock/Bottleneck (identity where `downsample` is None),
    and any module whose class says `lesionable = True` (your word that its forward returns x + f(x))."""
    from torchvision.models import resnet as torchvision_resnet

    blocks = {}
    for name, module in model.named_modules():
        if not name:
            continue  # the network itself is no block of itself
        if isinstance(module, Residual):
            blocks[name] = isinstance(module.skip, nn.Identity)
        elif getattr(type(module), LESIONABLE, False) is True:
            blocks[name] = True
        elif has_skip(module) or isinstance(module, (torchvision_resnet.BasicBlock, torchvision_resnet.Bottleneck)):
            blocks[name] = getattr(module, "downsample", None) is None
    return blocks


def residual_blocks(model: nn.Module) -> list[str]:
    """The found blocks whose skip is the identity as built (`skip_blocks`), by name ("res1", "stage.res2",
    "layer1.0"): Veit et al.'s lesion replaces such a block by its skip, x + f(x) -> x. A block with a 1x1
    projection changes the shape, so no identity can stand in for it."""
    return [name for name, identity in skip_blocks(model).items() if identity]


def keeps_shape(model: nn.Module, names: list[str], input_shape: tuple[int, int, int]) -> dict[str, bool]:
    """Whether each named block's output has its input's shape, as forward hooks see it on one batch of two blank
    images in eval mode (a block the forward never runs is left out). The model's mode is restored."""
    seen: dict[str, bool] = {}

    def hook(name: str):
        def record(module, args, output):
            same = bool(args) and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor)
            seen[name] = seen.get(name, True) and same and args[0].shape == output.shape

        return record

    handles = [model.get_submodule(name).register_forward_hook(hook(name)) for name in names]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(2, *input_shape, device=next(model.parameters(), torch.zeros(0)).device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return seen


def lesion_units(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[list[str], dict[str, str]]:
    """Your network's blocks a lesion removes (identity skip, output shaped as the input) and the other found
    blocks with why they stay ({name: why})."""
    blocks = skip_blocks(model)
    shapes = keeps_shape(model, list(blocks), input_shape)
    units, kept = [], {}
    for name, identity in blocks.items():
        if name not in shapes:
            kept[name] = "the forward pass never runs it"
        elif identity and shapes[name]:
            units.append(name)
        else:
            kept[name] = KEPT
    return units, kept


def describe_kept(kept: dict[str, str]) -> str:
    return "; ".join(f"{name} kept: {why}" for name, why in kept.items())


def no_units(model_text: str, kept: dict[str, str]) -> CnnlabError:
    """The one-line refusal of a network of yours with no block a lesion can remove, saying how to make one."""
    if model_kind(model_text) == SPEC:
        return CnnlabError(
            f"spec '{model_text}' has no res(...) block that keeps its input's shape: a lesion removes such blocks "
            "(a res block whose layers change the channels or stride carries a projection, not the identity)"
        )
    found = f" ({describe_kept(kept)})" if kept else ""
    return CnnlabError(
        f"'{model_text}' has no residual block a lesion can remove{found}: it finds cnnlab's "
        "(cnnlab.models.blocks.BasicBlock/Bottleneck), torchvision's (torchvision.models.resnet.BasicBlock/"
        "Bottleneck) and any module whose class says lesionable = True (its forward returns x + f(x)), and "
        "removes those whose skip is the identity (output shaped as the input)"
    )


def remove_layer(model: nn.Module, name: str) -> None:
    """Replace the unit `name` ("layer2.1" of a ResNet, "block1.1" of a VGG, "res2" of a spec, any found block of
    a network in code) by nn.Identity() in place."""
    if isinstance(model, ResNet):
        stage_name, index = name.rsplit(".", 1)
        remove_block(model, stage_name, int(index))
        return
    if not hasattr(model, "stage_names"):  # your network: its found blocks
        if name not in residual_blocks(model):
            raise CnnlabError(f"{name} is not a block with an identity skip; removable: {removable(model)}")
        model.set_submodule(name, nn.Identity())
        return
    stage_name, index = name.rsplit(".", 1)
    why = vgg_layers(model).get(name, "not a conv layer of its blocks")
    if why is not None:
        raise CnnlabError(f"layer {name} cannot be removed ({why}); removable: {removable(model)}")
    model.get_submodule(stage_name)[int(index)] = nn.Identity()


def removable(model: nn.Module) -> list[str]:
    """The units that can go: a ResNet's same-shape blocks (with or without a skip), a VGG's same-shape layers,
    your network's identity-skip blocks (`lesion_units` also checks their shapes on one batch)."""
    if isinstance(model, ResNet):
        return [f"{stage}.{index}" for stage, index in same_shape_blocks(model)]
    if not hasattr(model, "stage_names"):
        return residual_blocks(model)
    return [name for name, why in vgg_layers(model).items() if why is None]


def lesion_accuracies(model: nn.Module, data, units: list[str]) -> dict[str, float]:
    """Test accuracy of `model` with each unit in turn replaced by the identity (the model itself untouched)."""
    accuracies = {}
    for name in units:
        lesioned = copy.deepcopy(model)
        remove_layer(lesioned, name)
        accuracies[name] = evaluate_arrays(lesioned, data.test_images, data.test_labels, data, channels_last=False)[1]
    return accuracies


def plot_lesions(curves: dict[str, tuple[float, dict[str, float]]], path, title: str) -> None:
    """Test accuracy with each block removed, one line per network; dotted lines mark the intact accuracies."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for color, (name, (baseline, accuracies)) in zip(plt.cm.tab10.colors, curves.items()):
        positions = np.arange(len(accuracies))
        ax.plot(
            positions, [100 * a for a in accuracies.values()], "o-", color=color, label=f"{name}, one block removed"
        )
        ax.axhline(100 * baseline, color=color, linestyle=":", label=f"{name}, intact")
        ax.set_xticks(positions, list(accuracies), rotation=30)
    ax.set(xlabel="removed block", ylabel="test accuracy (%)", title=title, ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pretrained_lesions(options: ExperimentOptions) -> tuple[str, list[dict], dict]:
    """Exercise 20.3.3's measurements: top-1/top-5 of the checkpoint intact and with each droppable block removed
    in turn; returns the model's name, the table's rows, and the image count and preprocessing used."""
    from cnnlab.imagenet import imagenet_weights_entry, load_imagenet_model
    from cnnlab.imagenet_eval import accuracies, labelled_images, preprocess, topk_correct

    if not options.models or len(options.models) != 1 or not options.weights:
        raise CnnlabError("drop-block on a pretrained network takes one --model and its --weights")
    dataset = options.dataset or ""
    if not dataset.startswith("imagefolder:"):
        raise CnnlabError("drop-block with --weights evaluates on --dataset imagefolder:PATH (labelled photos)")
    name = options.models[0]
    model = load_imagenet_model(name, options.weights)
    if not isinstance(model, ResNet) or not droppable_blocks(model):
        raise CnnlabError(f"{name} has no residual block that can be dropped; use a ResNet such as resnet50")
    transform = imagenet_weights_entry(name, options.weights).transforms()
    # Decoded and transformed once, reused for every lesion: 0.6 MB per 224 px image.
    images = labelled_images(dataset.removeprefix("imagefolder:"))
    batches = list(preprocess(images, transform))
    intact = accuracies(topk_correct(model, batches))
    rows = [{"network": name, "removed_block": "none", **intact, "top1_drop": 0.0, "top5_drop": 0.0}]
    for stage_name, index in droppable_blocks(model):
        lesioned = copy.deepcopy(model)
        drop_block(lesioned, stage_name, index)
        measured = accuracies(topk_correct(lesioned, batches))
        rows.append(
            {
                "network": name,
                "removed_block": f"{stage_name}.{index}",
                **measured,
                "top1_drop": intact["top1"] - measured["top1"],
                "top5_drop": intact["top5"] - measured["top5"],
            }
        )
    return name, rows, {"images": len(images), "resize": list(transform.resize_size), "crop": list(transform.crop_size)}


def own_model(options: ExperimentOptions) -> str:
    """The one network of yours `--model` names for a lesion (a layer spec, or a network in code), checked before
    any data loads; one with --weights is refused in one line saying why."""
    from cnnlab.errors import OptionValueError

    model = options.models[0]
    if len(options.models) != 1:
        raise OptionValueError("models", f"takes one network for a lesion; got {len(options.models)}")
    if options.weights:
        raise OptionValueError(
            "weights",
            f"loads a torchvision ImageNet ResNet's checkpoint for a lesion; '{model}' is your own network: "
            "the experiment trains it (leave --weights out)",
        )
    check_model_text(model)
    return model


def run_pretrained(options: ExperimentOptions) -> ExperimentResult:
    name, rows, measured_on = pretrained_lesions(options)
    intact, lesions = rows[0], rows[1:]
    curves = {name: (intact["top1"], {row["removed_block"]: row["top1"] for row in lesions})}
    plot_lesions(curves, options.out / "drop_block.png", f"{name}: one block removed at test time (top-1)")
    by_stage: dict[str, list[float]] = {}
    for row in lesions:
        by_stage.setdefault(row["removed_block"].split(".")[0], []).append(row["top1_drop"])
    stage_costs = ", ".join(
        f"{stage} {100 * float(np.mean(drops)):.1f} (max {100 * max(drops):.1f})" for stage, drops in by_stage.items()
    )
    worst = max(lesions, key=lambda row: row["top1_drop"])
    return ExperimentResult(
        title=f"Drop-block: {name} with one block removed, top-1/top-5 on {options.dataset}",
        columns=PRETRAINED_COLUMNS,
        rows=rows,
        findings=[
            f"Intact, {name} has {100 * intact['top1']:.1f}% top-1 and {100 * intact['top5']:.1f}% top-5 on "
            f"{measured_on['images']} images.",
            f"Mean top-1 points lost per removed block, by stage: {stage_costs}; the worst is "
            f"{worst['removed_block']} ({100 * worst['top1_drop']:.1f} points).",
        ],
        plots=["drop_block.png"],
        config={
            "model": name,
            "weights": str(options.weights),
            "dataset": options.dataset,
            **measured_on,
            "blocks": [row["removed_block"] for row in lesions],
            "note": "lesioned networks keep the intact one's BN statistics, as in Veit et al.; nothing is trained",
        },
    )


def train_arm(options: ExperimentOptions, data, model_text: str, model: nn.Module, epochs: int, folder: str) -> float:
    """Train `model` (named `model_text` in its run) with the experiment's recipe into OUT/runs/FOLDER; its test
    accuracy."""
    config = TrainConfig(
        model=model_text,
        dataset=options.dataset_or_default(),
        epochs=epochs,
        seed=options.seed,
        data_dir=options.data_dir,
        out=str(options.out / "runs" / folder),
    )
    return trainer.run(config, overwrite=True, quiet=True, data=data, model=model)["test_accuracy"]


def train_and_lesion(options: ExperimentOptions, data, depth: int, epochs: int) -> tuple[list[dict], dict, dict]:
    """Train the residual net, its plain twin and the VGG, then remove each removable unit in turn: the table
    rows, the curves ({name: (intact accuracy, {unit: accuracy})}) and a summary ({name: (intact, mean drop,
    max drop)})."""
    rows, curves, summary = [], {}, {}
    for name in (network_name(depth, True), network_name(depth, False), VGG_NETWORK):
        torch.manual_seed(options.seed)
        if name == VGG_NETWORK:
            model = create_model(name, num_classes=data.num_classes, in_chans=data.in_chans)
        else:
            model = build_network(network(name), data.num_classes, data.in_chans)
        baseline = train_arm(options, data, name, model, epochs, name)
        accuracies = lesion_accuracies(model, data, removable(model))
        rows += network_rows(name, baseline, accuracies)
        curves[name] = (baseline, accuracies)
        drops = [baseline - a for a in accuracies.values()]
        summary[name] = (baseline, float(np.mean(drops)), max(drops))
    return rows, curves, summary


def network_rows(name: str, baseline: float, accuracies: dict[str, float]) -> list[dict]:
    """One network's rows: intact, each unit removed, and the mean over the units."""
    rows = [{"network": name, "removed_block": "none", "test_accuracy": baseline, "accuracy_drop": 0.0}]
    rows += [
        {"network": name, "removed_block": unit, "test_accuracy": accuracy, "accuracy_drop": baseline - accuracy}
        for unit, accuracy in accuracies.items()
    ]
    mean_accuracy = float(np.mean(list(accuracies.values())))
    rows.append(
        {
            "network": name,
            "removed_block": MEAN_ROW,
            "test_accuracy": mean_accuracy,
            "accuracy_drop": baseline - mean_accuracy,
        }
    )
    return rows


def claims(res: str, plain: str) -> list[Claim]:
    """Veit et al.'s lesion claims on the two networks' summary rows: with one block removed (averaged over the
    blocks) the ResNet keeps more accuracy than its plain twin, and loses less of what it had intact."""

    def mean_row(name: str) -> dict:
        return {"network": name, "removed_block": MEAN_ROW}

    return [
        Claim(
            f"with one block removed, {res} keeps a higher test accuracy than {plain}",
            "test_accuracy",
            mean_row(res),
            mean_row(plain),
        ),
        Claim(
            f"removing one block costs {plain} more accuracy than {res}",
            "accuracy_drop",
            mean_row(plain),
            mean_row(res),
        ),
    ]


def describe_lesions(name: str, baseline: float, mean_drop: float, max_drop: float) -> str:
    return (
        f"{name} (intact {100 * baseline:.1f}%) loses {100 * mean_drop:.1f} points on average and at most "
        f"{100 * max_drop:.1f}"
    )


OWN_LABEL = "spec"  # a layer spec's row label (a network in code is labelled by its class); config.json keeps the text


def own_label(model_text: str) -> str:
    """Your network's row label and run folder: "spec", or the class a reference names ("MyResNet")."""
    return OWN_LABEL if model_kind(model_text) == SPEC else references.parse_reference(model_text).name


def run_own(options: ExperimentOptions) -> ExperimentResult:
    """Your layer spec or network in code trained with the experiment's recipe (a network in code keeps its source
    in its run, as `cnnlab train` does), then each found block whose skip is the identity removed in turn
    (`lesion_units`), as the ResNet arm's blocks are."""
    model_text = own_model(options)
    data = experiment_data(options)
    epochs = options.epochs_or(quick=2, full=10)
    torch.manual_seed(options.seed)
    input_shape = (data.in_chans, data.image_size, data.image_size)
    model = build_own(model_text, data.num_classes, input_shape)
    units, kept = lesion_units(model, input_shape)
    if not units:
        raise no_units(model_text, kept)
    label = own_label(model_text)
    baseline = train_arm(options, data, model_text, model, epochs, label)
    accuracies = lesion_accuracies(model, data, units)
    drops = [baseline - a for a in accuracies.values()]
    described = describe_lesions(label, baseline, float(np.mean(drops)), max(drops))
    what, block = ("spec", "res(...) block") if model_kind(model_text) == SPEC else ("network", "residual block")
    title = f"{data.name}: one {block} of your {what} removed at test time"
    plot_lesions({label: (baseline, accuracies)}, options.out / "drop_block.png", title)
    findings = [f"Removing one {block} at test time, {described}.", f"{label} is '{model_text}'."]
    if kept:
        findings.append(f"Not removed: {describe_kept(kept)}.")
    return ExperimentResult(
        title=f"Lesion: test accuracy of your {what} with one {block} removed, on {data.name}",
        columns=COLUMNS,
        rows=network_rows(label, baseline, accuracies),
        findings=findings,
        plots=["drop_block.png"],
        config={
            "model": model_text,
            "label": label,
            "blocks": units,
            "kept": kept,
            "epochs": epochs,
            "dataset": data.name,
            "image_size": data.image_size,
            "seed": options.seed,
            "note": "a removed block leaves its identity skip (x + f(x) -> x); lesioned networks keep the BN "
            "statistics of the intact one, as in Veit et al.",
        },
    )


@register_experiment(
    "lesion",
    accepts=("models", "weights"),
    help="delete one block at test time: ResNet vs plain net (Veit et al. 2016); with --model "
    "and --weights, a pretrained ImageNet ResNet on a labelled folder (exercise 20.3.3); with --model SPEC or "
    "FILE.py:Name, your network trained, each residual block whose skip is the identity removed in turn",
)
def run(options: ExperimentOptions) -> ExperimentResult:
    if options.models and model_kind(options.models[0]) != ZOO:
        return run_own(options)
    if options.models or options.weights:
        return run_pretrained(options)
    data = experiment_data(options)
    depth = QUICK_DEPTH if options.quick else FULL_DEPTH
    epochs = options.epochs_or(quick=2, full=10)

    rows, curves, summary = train_and_lesion(options, data, depth, epochs)
    title = f"{data.name}: one block (VGG: one layer) removed at test time, depth {depth}"
    plot_lesions(curves, options.out / "drop_block.png", title)
    res, plain = network_name(depth, True), network_name(depth, False)

    def described(name: str) -> str:
        return describe_lesions(name, *summary[name])

    robust = summary[res][1] < summary[plain][1]
    kept = {n: why for n, why in vgg_layers(create_model(VGG_NETWORK, in_chans=data.in_chans)).items() if why}
    return ExperimentResult(
        title=f"Lesion: test accuracy with one block removed, {res} vs {plain}, and one layer of {VGG_NETWORK}, "
        f"on {data.name}",
        columns=COLUMNS,
        rows=rows,
        findings=[
            f"Removing one block at test time, {described(res)}; {described(plain)}.",
            f"This run {'agrees' if robust else 'does not agree'} with Veit et al.: the ResNet "
            f"{'degrades more gracefully than' if robust else 'is not more robust than'} its plain twin, whose every "
            "same-shape block is on the only path from input to output.",
            f"Removing one conv layer of the VGG (exercise 20.3.3), {described(VGG_NETWORK)}. Its layers "
            + ", ".join(f"{n} ({why})" for n, why in kept.items())
            + " change the shape: no identity can stand in for them, so they are not removed.",
        ],
        claims=claims(res, plain),
        plots=["drop_block.png"],
        config={
            "depth": depth,
            "epochs": epochs,
            "dataset": data.name,
            "image_size": data.image_size,
            "blocks": {name: list(accuracies) for name, (_, accuracies) in curves.items()},
            "not_removable": {VGG_NETWORK: kept},
            "seed": options.seed,
            "note": "lesioned networks keep the BN statistics of the intact one, as in Veit et al.",
        },
    )
