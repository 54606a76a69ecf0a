"""BatchNorm: the tutorials' worked example, the train/eval gotcha, and what BN does for a deep plain network.

(a) On the tutorials' 2x2x2x2 example tensor, `cnnlab.scratch.BatchNorm2dScratch` (and the NumPy `batch_norm_2d`)
    must equal nn.BatchNorm2d: the training-mode output, running_mean and running_var after one step, and the
    eval-mode output. The tutorial's stated numbers sit next to the measured ones (docs/errata.md E07-E09).
(b) The same single image gives a different output in train mode (normalised by its own statistics) than in eval
    mode (normalised by the running ones), for the layer of (a) and for the trained network of (c).
(c) The same plain (skip-free) CIFAR-style network, trained with and without BN: the twin without BN is the very
    same module with every BatchNorm2d swapped for nn.Identity after construction, so both start from identical
    conv weights (the convs have no biases, as the BN network's convs have none either).
"""

from __future__ import annotations

import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from cnnlab.data import load_dataset, normalize
from cnnlab.errors import NonFiniteLoss
from cnnlab.experiments import register_experiment
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult, train
from cnnlab.models.resnet import cifar_resnet
from cnnlab.plots import save_epoch_figure
from cnnlab.repeats import Claim
from cnnlab.scratch import BatchNorm2dScratch, batch_norm_2d

# The tutorials' batch: 2 samples, 2 channels, 2x2 maps; channel 0 holds 1..8, channel 1 holds 10..17.
EXAMPLE = [
    [[[1.0, 2.0], [3.0, 4.0]], [[10.0, 11.0], [12.0, 13.0]]],
    [[[5.0, 6.0], [7.0, 8.0]], [[14.0, 15.0], [16.0, 17.0]]],
]

# What the tutorial states for each quantity (and the errata row that corrects it, if any).
TUTORIAL = {
    "train_output_s0c0": ([-1.528, -1.091, -0.655, -0.218], ""),
    "train_mean": ([0.0, 0.0], ""),
    "train_var_unbiased": ([1.0667, 1.0667], "E07"),
    "running_mean": ([0.45, 1.35], ""),
    "running_var": ([1.425, 1.425], "E08"),
    "eval_output_s0c0": ([0.46, 1.30, 2.13, 2.97], "E09"),
}
COLUMNS = ["part", "quantity", "tutorial", "measured", "scratch_vs_torch", "note", "train_loss", "test_accuracy"]
QUANTITIES = {
    "train_output_s0c0": "train-mode output, sample 0 channel 0",
    "train_mean": "train-mode output mean per channel",
    "train_var_unbiased": "train-mode output .var() per channel (unbiased)",
    "running_mean": "running_mean after one step (momentum 0.1)",
    "running_var": "running_var after one step",
    "eval_output_s0c0": "eval-mode output, sample 0 channel 0",
}


def example_tensor() -> torch.Tensor:
    return torch.tensor(EXAMPLE)  # [2, 2, 2, 2]


def bn_trace(bn: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One training step then one eval pass of a fresh BN layer on x: the quantities the tutorial prints."""
    bn.train()
    with torch.no_grad():
        y_train = bn(x)
    values = {
        "train_output_s0c0": y_train[0, 0].flatten(),
        "train_mean": y_train.mean(dim=(0, 2, 3)),
        "train_var_unbiased": y_train.var(dim=(0, 2, 3)),
        "running_mean": bn.running_mean.clone(),
        "running_var": bn.running_var.clone(),
    }
    bn.eval()
    with torch.no_grad():
        values["eval_output_s0c0"] = bn(x)[0, 0].flatten()
    return values


def text(values, places: int = 4) -> str:
    return "[" + ", ".join(f"{v:.{places}f}" for v in np.asarray(values, dtype=float).ravel()) + "]"


def decimals(values: list[float]) -> int:
    """Decimal places the tutorial printed (the largest among the values), for a fair "agrees" test."""
    return max(len(repr(v).split(".")[1]) if "." in repr(v) else 0 for v in values)


def example_rows() -> tuple[list[dict], dict]:
    x = example_tensor()
    torch_values = bn_trace(nn.BatchNorm2d(2, eps=1e-5, momentum=0.1), x)
    scratch_values = bn_trace(BatchNorm2dScratch(2, eps=1e-5, momentum=0.1), x)
    numpy_train = batch_norm_2d(x.numpy().astype(np.float64), np.ones(2), np.zeros(2))  # the tutorial's NumPy code
    rows, measured = [], {}
    for key, (stated, erratum) in TUTORIAL.items():
        real = torch_values[key].numpy().astype(float)
        difference = float((scratch_values[key] - torch_values[key]).abs().max())
        if key == "train_output_s0c0":
            difference = max(difference, float(np.abs(numpy_train[0, 0].ravel() - real).max()))
        agrees = bool(np.allclose(real, stated, rtol=0, atol=0.5 * 10 ** -decimals(stated) + 1e-9))
        note = "agrees" if agrees else f"differs ({erratum} in docs/errata.md)" if erratum else "differs"
        measured[key] = real.tolist()
        rows.append(
            {
                "part": "a",
                "quantity": QUANTITIES[key],
                "tutorial": text(stated, decimals(stated)),
                "measured": text(real),
                "scratch_vs_torch": difference,
                "note": note,
            }
        )
    return rows, measured


def single_image_gap(model: nn.Module, image: torch.Tensor) -> float:
    """Max |train-mode output - eval-mode output| for one image; a copy runs in train mode so the model's running
    statistics stay as they were."""
    probe = copy.deepcopy(model).train()
    model.eval()
    with torch.no_grad():
        return float((probe(image) - model(image)).abs().max())


def without_batchnorm(model: nn.Module) -> nn.Module:
    """The same module with every BatchNorm2d replaced by nn.Identity (in place; returned for chaining)."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, child_name, nn.Identity())
    return model


def train_twins(options: ExperimentOptions, depth: int) -> tuple[list[dict], dict[str, list[dict]], float]:
    """Plain-`depth` with and without BN, one recipe; returns table rows, per-epoch metrics per label, and the
    trained BN network's single-image train/eval gap."""
    data = load_dataset(options.dataset_or_default(), options.data_dir)
    # Quick: all 1,293 digits training images in batches of 32, so 2 epochs still give 80 steps
    recipe = dict(epochs=options.epochs_or(2, 10)) | (dict(batch_size=32) if options.quick else {})
    rows, curves, gap = [], {}, float("nan")
    for with_bn in (True, False):
        torch.manual_seed(options.seed)  # the same conv weights for both twins
        model = cifar_resnet(depth, residual=False, num_classes=data.num_classes, in_chans=data.in_chans)
        label = f"plain-{depth} {'with' if with_bn else 'without'} BN"
        if not with_bn:
            without_batchnorm(model)
        run_name = f"plain{depth}-{'bn' if with_bn else 'no-bn'}"
        try:
            results = train(
                options, data, f"plain{depth}{'' if with_bn else '-no-bn'}", run_name, model=model, **recipe
            )
            metrics, outcome = results["metrics"], f"test accuracy {100 * results['test_accuracy']:.2f}%"
            test_accuracy = results["test_accuracy"]
        except NonFiniteLoss as error:  # a diverged twin is a result; any other error propagates
            metrics = error.metrics
            outcome, test_accuracy = f"diverged: {error}", None
        curves[label] = metrics
        final_loss = f"{metrics[-1]['train_loss']:.4f}" if metrics else "n/a"
        rows.append(
            {
                "part": "c",
                "quantity": f"{label}: train loss after epoch {len(metrics)}, outcome",
                "tutorial": "",
                "measured": f"{final_loss}; {outcome}",
                "scratch_vs_torch": None,
                "note": "",
                "train_loss": metrics[-1]["train_loss"] if metrics else None,
                "test_accuracy": test_accuracy,
            }
        )
        if with_bn:
            image = normalize(data.test_images[:1], data.mean, data.std)  # [1, C, H, W]
            gap = single_image_gap(model.to(memory_format=torch.contiguous_format), image)
    return rows, curves, gap


def plot_curves(curves: dict[str, list[dict]], path, title: str) -> None:
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for label, metrics in curves.items():
        epochs = [m["epoch"] for m in metrics]
        loss_ax.plot(epochs, [m["train_loss"] for m in metrics], "o-", label=label)
        acc_ax.plot(epochs, [100 * m["val_accuracy"] for m in metrics], "s-", label=label)
    loss_ax.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title="training loss")
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy")
    save_epoch_figure(fig, (loss_ax, acc_ax), path, title)


def twin_claims(depth: int, with_bn: dict, without_bn: dict) -> list[Claim]:
    """The tutorials' claim that BN helps a deep plain network train, on the two part (c) rows."""

    def selector(row: dict) -> dict:
        return {"part": "c", "quantity": row["quantity"]}

    return [
        Claim(
            f"plain-{depth} reaches a higher test accuracy with BN than without",
            "test_accuracy",
            selector(with_bn),
            selector(without_bn),
        ),
        Claim(
            f"plain-{depth} ends at a lower training loss with BN than without",
            "train_loss",
            selector(without_bn),
            selector(with_bn),
        ),
    ]


def gap_row(quantity: str, gap: float) -> dict:
    """A part (b) row: the tutorial says train and eval mode differ for one image; `gap` measures by how much."""
    return {
        "part": "b",
        "quantity": quantity,
        "tutorial": "differs",
        "measured": f"{gap:.4f}",
        "scratch_vs_torch": None,
        "note": "",
    }


@register_experiment(
    "batchnorm", "BN from scratch vs nn.BatchNorm2d on the tutorial's tensor, the eval gotcha, BN vs no BN"
)
def run(options: ExperimentOptions) -> ExperimentResult:
    rows, measured = example_rows()

    # (b) the layer of (a) after its training step, fed sample 0 alone
    bn = nn.BatchNorm2d(2)
    bn_trace(bn, example_tensor())
    layer_gap = single_image_gap(bn, example_tensor()[:1])
    depth = 8 if options.quick else 20
    twin_rows, curves, network_gap = train_twins(options, depth)
    rows += [
        gap_row("one image, BN layer of (a): max |train-mode - eval-mode output|", layer_gap),
        gap_row(f"one test image, trained plain-{depth} with BN: max |train - eval logits|", network_gap),
        *twin_rows,
    ]
    dataset = options.dataset_or_default()
    plot_curves(curves, options.out / "batchnorm_curves.png", f"plain-{depth} on {dataset}, with and without BatchNorm")

    worst = max(r["scratch_vs_torch"] for r in rows if r["part"] == "a")
    wrong = [r["quantity"] for r in rows if r["part"] == "a" and r["note"] != "agrees"]
    losses = {label: m[-1]["train_loss"] if m else float("nan") for label, m in curves.items()}
    with_bn, without_bn = losses.values()
    findings = [
        f"On the tutorial's 2x2x2x2 tensor the from-scratch BN equals nn.BatchNorm2d to {worst:.1e} in every quantity; "
        f"the tutorial's stated values are wrong for {len(wrong)} of {len(TUTORIAL)} ({'; '.join(wrong)}): "
        f"running_var is {measured['running_var'][0]:.4f}, not 1.425, because PyTorch stores the unbiased batch "
        "variance.",
        f"One image gives a different output in train mode than in eval mode (max gap {layer_gap:.3f} for the layer, "
        f"{network_gap:.3f} in the trained network's logits): call model.eval() before inference.",
        f"Plain-{depth} reached a training loss of {with_bn:.4f} with BN and {without_bn:.4f} without it after "
        f"{max(len(m) for m in curves.values())} epoch(s) on {dataset}.",
    ]
    return ExperimentResult(
        title="BatchNorm: from scratch vs nn.BatchNorm2d, train vs eval, with vs without",
        columns=COLUMNS,
        rows=rows,
        findings=findings,
        claims=twin_claims(depth, *twin_rows),
        plots=["batchnorm_curves.png"],
        config={
            "example": EXAMPLE,
            "measured": measured,
            "plain_depth": depth,
            "layer_gap": layer_gap,
            "network_gap": network_gap,
            "final_train_loss": losses,
        },
    )
