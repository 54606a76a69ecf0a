"""Degradation (He et al. 2015, arXiv:1512.03385, Fig. 1 and Fig. 6): a deeper plain network trains to a *higher*
training error than a shallower one, while a ResNet of the same depth does not.

Four networks, one recipe: plain and residual twins at a shallow and a deep depth (plain-20/56 against
resnet-20/56 in full mode; 8 against 20 in quick mode). Each trains through the project's trainer; the table gives
their final training, validation and test errors, the plot training and test error against epoch (the trainer's
`test_every_epoch`: the test set is evaluated after each epoch for the curves, and nothing is chosen on it).

The "+1 highway" in numbers: before any training, the norm of the cross-entropy gradient that reaches the first
conv layer (one batch, train-mode BN, the same initial weights the trained copy starts from). In a ResNet the
backward pass through every block adds the identity's gradient to the residual branch's, so the first layer is
never more than a sum away from the loss.
"""

from __future__ import annotations

import copy
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import ImageDataset, load_dataset
from cnnlab.experiments import register_experiment
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult, read_metrics
from cnnlab.inspect import count_params
from cnnlab.models.resnet import cifar_resnet
from cnnlab.registry import create_model, list_models
from cnnlab.training.config import TrainConfig
from cnnlab.training.plots import save_epoch_figure
from cnnlab.training.trainer import prepare_batch, run

FULL_DEPTHS = (20, 56)  # He et al. Fig. 1
QUICK_DEPTHS = (8, 20)
QUICK_SIDE = 14  # digits are 8x8 scans upsampled to 28: 14 px keeps their detail at a quarter of the compute
GRAD_BATCH = 64  # images in the one batch whose gradient is measured at initialisation
COLUMNS = ["network", "depth", "residual", "params", "grad_norm_conv1_init", "train_error", "val_error",
           "test_error", "train_seconds"]


def downsampled(data: ImageDataset, side: int) -> ImageDataset:
    """`data` with every image bilinearly resized to side x side (same labels, split and classes)."""

    def resize(images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        return x.round().clamp(0, 255).to(torch.uint8)

    return ImageDataset(f"{data.name}-{side}px", resize(data.train_images), data.train_labels,
                        resize(data.test_images), data.test_labels, list(data.classes), hflip=data.hflip)


def experiment_data(options: ExperimentOptions) -> ImageDataset:
    """The dataset the options name; quick runs shrink it to QUICK_SIDE pixels."""
    data = load_dataset(options.dataset_or_default(), options.data_dir)
    return downsampled(data, QUICK_SIDE) if options.quick and data.image_size > QUICK_SIDE else data


def network_name(depth: int, residual: bool) -> str:
    return f"{'resnet' if residual else 'plain'}{depth}"


def build_network(depth: int, residual: bool, num_classes: int, in_chans: int) -> nn.Module:
    """He et al.'s CIFAR network (option-A shortcuts) or its plain twin: the registered model where one exists
    (plain20, resnet56, ...), else `cifar_resnet` at that depth (8, 14)."""
    name = network_name(depth, residual)
    if name in list_models():
        return create_model(name, num_classes=num_classes, in_chans=in_chans)
    return cifar_resnet(depth, residual=residual, num_classes=num_classes, in_chans=in_chans)


def first_layer_grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """L2 norm of d(cross-entropy)/d(first conv's weight) for one batch, in train mode, on a copy of `model`
    (the model's own BN statistics and gradients stay untouched)."""
    probe = copy.deepcopy(model).train()
    first_conv = next(m for m in probe.modules() if isinstance(m, nn.Conv2d))
    F.cross_entropy(probe(images), labels).backward()
    return first_conv.weight.grad.norm().item()


def plot_errors(histories: dict[str, list[dict]], path: Path, title: str) -> None:
    """Training error and test error (%) against epoch; plain nets dashed, ResNets solid (He et al. Fig. 6)."""
    fig, (train_ax, test_ax) = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    depths = sorted({int("".join(ch for ch in name if ch.isdigit())) for name in histories})
    colors = dict(zip(depths, plt.cm.tab10.colors))
    for name, metrics in histories.items():
        depth = int("".join(ch for ch in name if ch.isdigit()))
        style = dict(color=colors[depth], linestyle="--" if name.startswith("plain") else "-", marker="o", label=name)
        epochs = [row["epoch"] for row in metrics]
        train_ax.plot(epochs, [100 * (1 - row["train_accuracy"]) for row in metrics], **style)
        test_ax.plot(epochs, [100 * (1 - row["test_accuracy"]) for row in metrics], **style)
    train_ax.set(xlabel="epoch", ylabel="error (%)", title="training error")
    test_ax.set(xlabel="epoch", ylabel="error (%)", title="test error")
    save_epoch_figure(fig, (train_ax, test_ax), path, title)


def findings(rows: dict[str, dict], shallow: int, deep: int) -> list[str]:
    def err(name: str) -> str:
        return f"{100 * rows[name]['train_error']:.2f}%"

    plain_s, plain_d = network_name(shallow, False), network_name(deep, False)
    res_s, res_d = network_name(shallow, True), network_name(deep, True)
    plain_degrades = rows[plain_d]["train_error"] > rows[plain_s]["train_error"]
    resnet_keeps_up = rows[res_d]["train_error"] <= rows[res_s]["train_error"]
    verdict = "supports" if plain_degrades and resnet_keeps_up else "does not support"
    grad = {name: rows[name]["grad_norm_conv1_init"] for name in (plain_s, plain_d, res_s, res_d)}
    ratio = grad[plain_d] / grad[res_d]
    # He et al. (§4.1) argue that with BN the plain net's gradients do not vanish; the numbers say which way they go.
    gradient_reading = (
        f"{plain_d}'s is {ratio:.2g}x {res_d}'s, so its first layer is not starved of gradient: the deep plain "
        "net's trouble is optimisation, not a vanishing signal" if ratio >= 1 else
        f"{plain_d}'s is {ratio:.2g}x {res_d}'s: the identity paths carry more gradient to the first layer"
    )
    return [
        f"Final training error: {plain_d} {err(plain_d)} vs {plain_s} {err(plain_s)} "
        f"({'higher' if plain_degrades else 'not higher'}), {res_d} {err(res_d)} vs {res_s} {err(res_s)} "
        f"({'not trailing' if resnet_keeps_up else 'trailing'}).",
        f"This run {verdict} He et al.'s claim that the deeper plain network trains worse while the deeper ResNet does not.",
        f"Gradient norm reaching the first conv at initialisation: {plain_s} {grad[plain_s]:.3g}, {plain_d} "
        f"{grad[plain_d]:.3g}, {res_s} {grad[res_s]:.3g}, {res_d} {grad[res_d]:.3g}; {gradient_reading}.",
    ]


@register_experiment("degradation", help="plain vs residual nets at two depths: training error and init gradients (He et al. Fig. 1)")
def run_degradation(options: ExperimentOptions) -> ExperimentResult:
    data = experiment_data(options)
    shallow, deep = QUICK_DEPTHS if options.quick else FULL_DEPTHS
    epochs = options.epochs_or(quick=2, full=10)
    # One fixed batch for the gradient probe: the first GRAD_BATCH training images, normalised as the trainer does.
    probe_images = prepare_batch(data.train_images[:GRAD_BATCH], data, channels_last=False)
    probe_labels = data.train_labels[:GRAD_BATCH]

    rows: dict[str, dict] = {}
    histories: dict[str, list[dict]] = {}
    for depth in (shallow, deep):
        for residual in (False, True):
            name = network_name(depth, residual)
            torch.manual_seed(options.seed)  # twins start from the same draw; the trainer's seed matches
            model = build_network(depth, residual, data.num_classes, data.in_chans)
            grad_norm = first_layer_grad_norm(model, probe_images, probe_labels)
            # The dataset's own name picks its recipe (a quick run's 14 px digits train with the digits recipe).
            config = TrainConfig(model=name, dataset=options.dataset_or_default(), epochs=epochs, seed=options.seed,
                                 data_dir=options.data_dir, test_every_epoch=True, out=str(options.out / "runs" / name))
            results = run(config, overwrite=True, quiet=True, data=data, model=model)
            histories[name] = read_metrics(results["run_dir"])
            final = histories[name][-1]
            rows[name] = {
                "network": name, "depth": depth, "residual": residual, "params": count_params(model),
                "grad_norm_conv1_init": grad_norm, "train_error": 1 - final["train_accuracy"],
                "val_error": 1 - final["val_accuracy"], "test_error": 1 - results["test_accuracy"],
                "train_seconds": results["train_seconds"],
            }
            recipe = {key: results[key] for key in ("batch_size", "lr", "optimizer", "precision")}

    plot_errors(histories, options.out / "degradation.png", f"{data.name}: plain vs ResNet, {epochs} epochs")
    return ExperimentResult(
        title=f"Degradation: plain vs residual networks at depths {shallow} and {deep} on {data.name}",
        columns=COLUMNS,
        rows=list(rows.values()),
        findings=findings(rows, shallow, deep),
        plots=["degradation.png"],
        config={"depths": [shallow, deep], "epochs": epochs, "dataset": data.name, "image_size": data.image_size,
                "shortcut": "A", "grad_batch": GRAD_BATCH, "recipe": recipe, "seed": options.seed,
                "train_error": "running average over the last epoch (train-mode BN), as in He et al.'s curves"},
    )
