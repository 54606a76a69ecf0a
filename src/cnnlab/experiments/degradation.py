"""Degradation (He et al. 2015, arXiv:1512.03385, Fig. 1 and Fig. 6): a deeper plain network trains to a *higher*
training error than a shallower one, while a ResNet of the same depth does not.

Plain and residual twins at several depths, one recipe: plain-20/56 against resnet-20/56 in full mode, 8 against 20
in quick mode, or the twins `--models` names (`plain18,resnet18,plain34,resnet34` for the ImageNet layout of He et
al.'s Table 2; any CIFAR depth 6n+2 such as `plain110,resnet110`), or your own networks in (plain, residual)
pairs: two layer specs (a ResNet of yours and the same with `res(` written `(`) or two classes of a file, labelled
`spec#N` or by the class's Name in the table, their full text in config.json. Each trains through the project's
trainer; the table gives their final training loss and training, validation and test errors, the plot training
loss (L2R's exercise), training error (P3's) and test error against epoch (the trainer's `test_every_epoch`: the
test set is evaluated after each epoch for the curves, and nothing is chosen on it).

The "+1 highway" in numbers: before any training, the norm of the cross-entropy gradient that reaches the first
conv layer (one batch, train-mode BN, the same initial weights the trained copy starts from). In a ResNet the
backward pass through every block adds the identity's gradient to the residual branch's, so the first layer is
never more than a sum away from the loss.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.batches import prepare_batch
from cnnlab.building import REFERENCE, ZOO, build_own, check_model_text, model_kind, wants_small_input
from cnnlab.data import ImageDataset, load_dataset
from cnnlab.engine import trainer
from cnnlab.engine.config import TrainConfig
from cnnlab.errors import CnnlabError
from cnnlab.experiments import register_experiment
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult
from cnnlab.measure import count_params
from cnnlab.models import references
from cnnlab.models.resnet import cifar_resnet
from cnnlab.plots import save_epoch_figure
from cnnlab.registry import create_model, list_models, model_info
from cnnlab.repeats import Claim
from cnnlab.rundir import RunDir

FULL_DEPTHS = (20, 56)  # He et al. Fig. 1
QUICK_DEPTHS = (8, 20)
QUICK_SIDE = 14  # digits are 8x8 scans upsampled to 28: 14 px keeps their detail at a quarter of the compute
GRAD_BATCH = 64  # images in the one batch whose gradient is measured at initialisation
COLUMNS = [
    "network",
    "depth",
    "residual",
    "params",
    "grad_norm_conv1_init",
    "train_loss",
    "train_error",
    "val_error",
    "test_error",
    "train_seconds",
]
TWIN_NAME = re.compile(r"(plain|resnet)(\d+)")
OWN = "own"  # the layout of your own networks (a file reference or a layer spec), paired in --models order


@dataclass(frozen=True)
class Network:
    name: str  # plain20, resnet18, ...; your own network's short label (spec#1, its class's Name)
    depth: int  # weighted layers; 0 for your own network (its row counts them in the built model)
    residual: bool
    layout: str  # "imagenet" (ResNet-18/34 and their plain twins), "cifar" (He et al.'s 6n+2 networks) or OWN
    model: str | None = None  # your own network's reference or layer spec, in full (None: a zoo twin)
    pair: int = 0  # your own networks: which (plain, residual) pair of --models, in order

    @property
    def group(self) -> tuple[str, int]:
        """Twins share it: a zoo depth of one layout, or one pair of your own."""
        return (self.layout, self.pair if self.layout == OWN else self.depth)

    @property
    def folder(self) -> str:
        return self.name.replace("#", "-")


def downsampled(data: ImageDataset, side: int) -> ImageDataset:
    """`data` with every image bilinearly resized to side x side (same labels, split and classes)."""

    def resize(images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        return x.round().clamp(0, 255).to(torch.uint8)

    return ImageDataset(
        f"{data.name}-{side}px",
        resize(data.train_images),
        data.train_labels,
        resize(data.test_images),
        data.test_labels,
        list(data.classes),
        hflip=data.hflip,
    )


def experiment_data(options: ExperimentOptions) -> ImageDataset:
    """The dataset the options name; quick runs shrink it to QUICK_SIDE pixels."""
    data = load_dataset(options.dataset_or_default(), options.data_dir)
    return downsampled(data, QUICK_SIDE) if options.quick and data.image_size > QUICK_SIDE else data


def network_name(depth: int, residual: bool) -> str:
    return f"{'resnet' if residual else 'plain'}{depth}"


def network(name: str) -> Network:
    """Parse and check one twin name: a registered plain/ResNet model, or a CIFAR depth 6n+2 built on demand."""
    match = TWIN_NAME.fullmatch(name)
    if match is None:
        raise CnnlabError(
            f"degradation compares plain/residual twins (plain20,resnet20 or plain18,resnet18); {name!r} is not one"
        )
    depth, residual = int(match.group(2)), match.group(1) == "resnet"
    if name in list_models():
        return Network(name, depth, residual, "imagenet" if model_info(name).input_size[1] >= 224 else "cifar")
    if depth >= 8 and (depth - 2) % 6 == 0:
        return Network(name, depth, residual, "cifar")
    raise CnnlabError(
        f"no network {name}: the twins are plain18/34 with resnet18/34 (ImageNet layout) and He et "
        "al.'s CIFAR networks plain/resnet of depth 6n+2 (8, 14, 20, 32, 44, 56, 110, ...)"
    )


def parse_networks(names: list[str]) -> list[Network]:
    """The networks `--models` names: zoo twins checked to come in pairs of one layout, ordered by layout (CIFAR
    first), depth, plain before residual; then your own networks, in (plain, residual) pairs as given."""
    own = [name for name in names if model_kind(name) != ZOO]
    networks = {name: network(name) for name in names if name not in own}
    for net in networks.values():
        twin = network_name(net.depth, not net.residual)
        if twin not in networks:
            raise CnnlabError(f"{net.name} needs its twin {twin} in --models: the experiment compares twins")
        if networks[twin].layout != net.layout:
            raise CnnlabError(
                f"{net.name} ({net.layout} layout) and {twin} ({networks[twin].layout}) are not twins: "
                "the ImageNet-layout twins are plain18/34 and resnet18/34"
            )
    zoo = sorted(networks.values(), key=lambda n: (n.layout != "cifar", n.depth, n.residual))
    return zoo + own_networks(own, taken=set(networks))


def own_networks(models: list[str], taken: set[str]) -> list[Network]:
    """Your own networks (file references, layer specs) as (plain, residual) pairs in the order given, each
    checked before any data loads (a spec parses, a file imports and has its Name) and given a short label for
    tables and plots: a reference's Name, a spec's spec#N (config.json keeps the full text)."""
    if len(models) % 2:
        raise CnnlabError(
            f"your own networks come in (plain, residual) pairs, as zoo twins do; --models names {len(models)} "
            f"of them: {' | '.join(models)}"
        )
    networks, specs = [], 0
    for index, model in enumerate(models):
        check_model_text(model)
        if model_kind(model) == REFERENCE:
            reference = references.parse_reference(model)
            references.resolve(reference)  # imports the file now: a broken one fails before any training
            label = reference.name
        else:
            specs += 1
            label = f"spec#{specs}"
        unique, copy_number = label, 1
        while unique in taken:  # two files' Net, or a class named like a zoo twin
            copy_number += 1
            unique = f"{label}#{copy_number}"
        taken.add(unique)
        networks.append(Network(unique, 0, bool(index % 2), OWN, model=model, pair=index // 2))
    return networks


def default_networks(quick: bool) -> list[Network]:
    return [
        network(network_name(depth, residual))
        for depth in (QUICK_DEPTHS if quick else FULL_DEPTHS)
        for residual in (False, True)
    ]


def build_network(net: Network, num_classes: int, in_chans: int, image_size: int = 32) -> nn.Module:
    """The registered model where one exists (plain20, resnet56, plain18, ...; the ImageNet layout gets the
    small-input stem below 64 pixels, as the trainer gives it), else He et al.'s CIFAR network of that depth
    (option-A shortcuts) or its plain twin (8, 14); your own network built as written."""
    if net.model is not None:
        return build_own(net.model, num_classes, (in_chans, image_size, image_size))
    if net.name in list_models():
        small = {"small_input": wants_small_input(net.name, image_size)} if net.layout == "imagenet" else {}
        return create_model(net.name, num_classes=num_classes, in_chans=in_chans, **small)
    return cifar_resnet(net.depth, residual=net.residual, num_classes=num_classes, in_chans=in_chans)


def first_layer_grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """L2 norm of d(cross-entropy)/d(first conv's weight) for one batch, in train mode, on a copy of `model`
    (the model's own BN statistics and gradients stay untouched)."""
    probe = copy.deepcopy(model).train()
    first_conv = next(m for m in probe.modules() if isinstance(m, nn.Conv2d))
    F.cross_entropy(probe(images), labels).backward()
    return first_conv.weight.grad.norm().item()


def plot_curves(histories: dict[str, list[dict]], networks: list[Network], path: Path, title: str) -> None:
    """Training loss, training error and test error (%) against epoch; plain nets dashed, ResNets solid, one
    colour per pair of twins (He et al. Fig. 1 and 6 plot the errors; L2R's exercise asks for the loss)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    colors = dict(zip(sorted({net.group for net in networks}), plt.cm.tab10.colors))
    panels = [
        ("training loss", "cross-entropy", lambda row: row["train_loss"]),
        ("training error", "error (%)", lambda row: 100 * (1 - row["train_accuracy"])),
        ("test error", "error (%)", lambda row: 100 * (1 - row["test_accuracy"])),
    ]
    for net in networks:
        metrics = histories[net.name]
        style = dict(color=colors[net.group], linestyle="-" if net.residual else "--", marker="o", label=net.name)
        for ax, (_, _, value) in zip(axes, panels):
            ax.plot([row["epoch"] for row in metrics], [value(row) for row in metrics], **style)
    for ax, (panel_title, ylabel, _) in zip(axes, panels):
        ax.set(xlabel="epoch", ylabel=ylabel, title=panel_title)
    save_epoch_figure(fig, axes, path, title)


def depth_pair_findings(rows: dict[str, dict], shallow: int, deep: int) -> list[str]:
    """Three sentences on one shallow/deep pair of twins: training errors, the verdict, the initial gradients."""

    def err(name: str) -> str:
        return f"{100 * rows[name]['train_error']:.2f}%"

    plain_s, plain_d = network_name(shallow, False), network_name(deep, False)
    res_s, res_d = network_name(shallow, True), network_name(deep, True)
    plain_degrades = rows[plain_d]["train_error"] > rows[plain_s]["train_error"]
    resnet_keeps_up = rows[res_d]["train_error"] <= rows[res_s]["train_error"]
    # One seed has no spread, so this is what the run shows, not a verdict: `--seeds` judges the claims.
    verdict = "agrees with" if plain_degrades and resnet_keeps_up else "does not agree with"
    grad = {name: rows[name]["grad_norm_conv1_init"] for name in (plain_s, plain_d, res_s, res_d)}
    ratio = grad[plain_d] / grad[res_d]
    # He et al. (§4.1) argue that with BN the plain net's gradients do not vanish; the numbers say which way they go.
    gradient_reading = (
        f"{plain_d}'s is {ratio:.2g}x {res_d}'s, so its first layer is not starved of gradient: the deep plain "
        "net's trouble is optimisation, not a vanishing signal"
        if ratio >= 1
        else f"{plain_d}'s is {ratio:.2g}x {res_d}'s: the identity paths carry more gradient to the first layer"
    )
    return [
        f"Final training error: {plain_d} {err(plain_d)} vs {plain_s} {err(plain_s)} "
        f"({'higher' if plain_degrades else 'not higher'}), {res_d} {err(res_d)} vs {res_s} {err(res_s)} "
        f"({'not trailing' if resnet_keeps_up else 'trailing'}).",
        f"This run {verdict} He et al.'s claim that the deeper plain network trains worse while the deeper ResNet "
        "does not (one run: no spread to judge it against).",
        f"Gradient norm reaching the first conv at initialisation: {plain_s} {grad[plain_s]:.3g}, {plain_d} "
        f"{grad[plain_d]:.3g}, {res_s} {grad[res_s]:.3g}, {res_d} {grad[res_d]:.3g}; {gradient_reading}.",
    ]


def findings(rows: dict[str, dict], networks: list[Network]) -> list[str]:
    """Each pair of successive depths of one layout (plain20/56 with resnet20/56, plain18/34 with resnet18/34);
    a layout given at one depth only gets a plain-against-residual sentence."""
    sentences = []
    for layout in ("cifar", "imagenet"):
        depths = sorted({net.depth for net in networks if net.layout == layout})
        for shallow, deep in zip(depths, depths[1:]):
            sentences += depth_pair_findings(rows, shallow, deep)
        if len(depths) == 1:
            plain, res = rows[network_name(depths[0], False)], rows[network_name(depths[0], True)]
            sentences.append(
                f"At depth {depths[0]} alone there is no deeper twin to compare: {plain['network']} ends at "
                f"{100 * plain['train_error']:.2f}% training error (loss {plain['train_loss']:.3f}), {res['network']} "
                f"at {100 * res['train_error']:.2f}% (loss {res['train_loss']:.3f})."
            )
    return sentences + own_findings(rows, networks)


def own_pairs(networks: list[Network]) -> list[tuple[Network, Network]]:
    """Your own (plain, residual) pairs, in --models order."""
    own = [net for net in networks if net.layout == OWN]
    return list(zip(own[::2], own[1::2]))


def own_findings(rows: dict[str, dict], networks: list[Network]) -> list[str]:
    """One sentence per pair of your own networks (training error, loss, initial gradient), and one naming what
    each label stands for."""
    sentences = []
    for plain, res in own_pairs(networks):
        p, r = rows[plain.name], rows[res.name]
        sentences.append(
            f"Your pair {plain.name} (plain) and {res.name} (residual): training error {100 * p['train_error']:.2f}% "
            f"against {100 * r['train_error']:.2f}% (loss {p['train_loss']:.3f} against {r['train_loss']:.3f}); "
            f"gradient norm at the first conv at initialisation {p['grad_norm_conv1_init']:.3g} against "
            f"{r['grad_norm_conv1_init']:.3g}."
        )
    named = [f"{net.name} is '{net.model}'" for net in networks if net.layout == OWN]
    return sentences + ([f"Your networks: {'; '.join(named)}."] if named else [])


def claims(networks: list[Network]) -> list[Claim]:
    """He et al.'s claims for each pair of successive depths of one layout, and plain against residual at each
    depth, as comparisons of final training error (judged over seeds by `cnnlab.repeats.verdict`)."""
    found = []
    for layout in ("cifar", "imagenet"):
        depths = sorted({net.depth for net in networks if net.layout == layout})
        for shallow, deep in zip(depths, depths[1:]):
            plain_s, plain_d = network_name(shallow, False), network_name(deep, False)
            res_s, res_d = network_name(shallow, True), network_name(deep, True)
            found.append(
                Claim(
                    f"{plain_d} trains to a higher error than {plain_s} (degradation)",
                    "train_error",
                    {"network": plain_d},
                    {"network": plain_s},
                )
            )
            found.append(
                Claim(
                    f"{res_d} trains to a lower error than {res_s}",
                    "train_error",
                    {"network": res_s},
                    {"network": res_d},
                )
            )
        for depth in depths:
            plain, res = network_name(depth, False), network_name(depth, True)
            found.append(
                Claim(
                    f"{res} trains to a lower error than {plain}", "train_error", {"network": plain}, {"network": res}
                )
            )
    for plain_net, res_net in own_pairs(networks):
        plain, res = plain_net.name, res_net.name
        found.append(
            Claim(f"{res} trains to a lower error than {plain}", "train_error", {"network": plain}, {"network": res})
        )
    return found


def weighted_layers(model: nn.Module) -> int:
    """Depth as He et al. count it: the conv and fully connected layers (a 1x1 projection shortcut included)."""
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


def train_network(
    net: Network, data: ImageDataset, options: ExperimentOptions, epochs: int, probe: tuple[torch.Tensor, torch.Tensor]
) -> tuple[dict, list[dict], dict]:
    """Build `net` from the seed, measure its initial first-layer gradient on `probe`, train it; return its table
    row, its per-epoch metrics and the recipe the trainer chose."""
    torch.manual_seed(options.seed)  # twins start from the same draw; the trainer's seed matches
    model = build_network(net, data.num_classes, data.in_chans, data.image_size)
    grad_norm = first_layer_grad_norm(model, *probe)
    # The dataset's own name picks its recipe (a quick run's 14 px digits train with the digits recipe).
    config = TrainConfig(
        model=net.model or net.name,  # your own network's run records its spec, or its code (a copy in the run)
        dataset=options.dataset_or_default(),
        epochs=epochs,
        seed=options.seed,
        data_dir=options.data_dir,
        test_every_epoch=True,
        out=str(options.out / "runs" / net.folder),
    )
    results = trainer.run(config, overwrite=True, quiet=True, data=data, model=model)
    history = RunDir(results["run_dir"]).read_metrics()
    final = history[-1]
    row = {
        "network": net.name,
        "depth": net.depth or weighted_layers(model),
        "residual": net.residual,
        "params": count_params(model),
        "grad_norm_conv1_init": grad_norm,
        "train_loss": final["train_loss"],
        "train_error": 1 - final["train_accuracy"],
        "val_error": 1 - final["val_accuracy"],
        "test_error": 1 - results["test_accuracy"],
        "train_seconds": results["train_seconds"],
    }
    return row, history, {key: results[key] for key in ("batch_size", "lr", "optimizer", "precision")}


@register_experiment(
    "degradation",
    accepts=("models",),
    help="plain vs residual twins at several depths: training loss and error, init gradients (He et al. Fig. 1); "
    "--models takes zoo twins or your own (plain, residual) pairs",
)
def run(options: ExperimentOptions) -> ExperimentResult:
    networks = parse_networks(options.models) if options.models else default_networks(options.quick)
    data = experiment_data(options)  # after the names are checked: a typo costs no data loading
    epochs = options.epochs_or(quick=2, full=10)
    # One fixed batch for the gradient probe: the first GRAD_BATCH training images, normalised as the trainer does.
    probe = (prepare_batch(data.train_images[:GRAD_BATCH], data, channels_last=False), data.train_labels[:GRAD_BATCH])

    rows: dict[str, dict] = {}
    histories: dict[str, list[dict]] = {}
    for net in networks:
        rows[net.name], histories[net.name], recipe = train_network(net, data, options, epochs, probe)

    depths = sorted({row["depth"] for row in rows.values()})
    plot_curves(histories, networks, options.out / "degradation.png", f"{data.name}: plain vs ResNet, {epochs} epochs")
    return ExperimentResult(
        title=f"Degradation: plain vs residual networks at depths {', '.join(map(str, depths))} on {data.name}",
        columns=COLUMNS,
        rows=list(rows.values()),
        findings=findings(rows, networks),
        claims=claims(networks),
        plots=["degradation.png"],
        config={
            "networks": [net.name for net in networks],
            "own_networks": {net.name: net.model for net in networks if net.model is not None},
            "depths": depths,
            "epochs": epochs,
            "dataset": data.name,
            "image_size": data.image_size,
            "shortcut": "A (CIFAR layout); none in the plain nets",
            "grad_batch": GRAD_BATCH,
            "recipe": recipe,
            "seed": options.seed,
            "train_error": "running average over the last epoch (train-mode BN), as in He et al.'s curves",
        },
    )
