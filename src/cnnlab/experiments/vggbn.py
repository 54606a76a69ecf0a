"""VGG with and without batch normalisation, at equal settings.

A tutorial says VGG worked at 19 layers because batch norm kept its activations well scaled. The history says
otherwise: VGG (Simonyan & Zisserman, arXiv:1409.1556, September 2014) has no BN, which Ioffe & Szegedy published
five months later (arXiv:1502.03167, February 2015). VGG's authors trained the 11-layer net A from random
initialisation and started the deeper ones from A's first four conv layers and three linear layers (§3.1), noting
that Glorot & Bengio's initialisation later made that pre-training unnecessary. The `_bn` variants are
torchvision's later additions.

The measurement: `vgg11` and `vgg11_bn` (the trainer gives both the small-input layout below 64 pixels) trained by
the project's trainer with one recipe, the dataset's default, from the same seeds; test accuracy and final
training loss per seed, and their mean, spread and n. A difference smaller than the spread is "not resolved".
Full mode: Fashion-MNIST, the first `FULL_SUBSET` training images (VGG-11 on two CPU cores), 3 epochs, 3 seeds.
Quick mode: digits (28 px: VGG-11's four pools need 16), `QUICK_SUBSET` images, 1 epoch, 2 seeds.
"""

from __future__ import annotations

import math
import statistics

import matplotlib.pyplot as plt

from cnnlab.data import load_dataset
from cnnlab.errors import NonFiniteLoss
from cnnlab.experiments import register_experiment
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult, train
from cnnlab.plots import save_epoch_figure

MODELS = ("vgg11", "vgg11_bn")
FULL_SUBSET = 10_000
QUICK_SUBSET = 128  # 4 steps of 32 per epoch: quick mode checks the machinery, not the claim
SEEDS = {True: 2, False: 3}  # quick, full
COLUMNS = ["model", "seed", "outcome", "final_train_loss", "train_accuracy", "test_accuracy", "train_seconds"]


def train_one(options: ExperimentOptions, data, model: str, seed: int, epochs: int) -> tuple[dict, list[dict]]:
    """One run; a run stopped by a non-finite loss is a row with outcome "diverged", not a crash."""
    run_name = f"{model}-seed{seed}"
    subset = QUICK_SUBSET if options.quick else FULL_SUBSET
    recipe = dict(epochs=epochs, seed=seed, train_subset=subset) | (dict(batch_size=32) if options.quick else {})
    try:
        results = train(options, data, model, run_name, **recipe)
        metrics, outcome, test = results["metrics"], "trained", results["test_accuracy"]
        seconds = results["train_seconds"]
    except NonFiniteLoss as error:  # any other error (a bad option, a full disk) is an error, not a result
        metrics, outcome, test, seconds = error.metrics, "diverged", math.nan, math.nan
    last = metrics[-1] if metrics else {}
    row = {
        "model": model,
        "seed": seed,
        "outcome": outcome,
        "final_train_loss": last.get("train_loss", math.nan),
        "train_accuracy": last.get("train_accuracy", math.nan),
        "test_accuracy": test,
        "train_seconds": seconds,
    }
    return row, metrics


def mean_spread(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.mean(finite), statistics.stdev(finite) if len(finite) > 1 else math.nan


def findings(rows: list[dict]) -> list[str]:
    summary = {}
    for model in MODELS:
        runs = [row for row in rows if row["model"] == model]
        trained = [row["test_accuracy"] for row in runs if row["outcome"] == "trained"]
        summary[model] = (*mean_spread(trained), len(trained), len(runs))
    lines = [
        f"{model}: test accuracy {100 * mean:.2f}% ± {100 * std:.2f} (std, n={n}; {total - n} of {total} diverged)"
        for model, (mean, std, n, total) in summary.items()
    ]
    (plain, plain_std, *_), (bn, bn_std, *_) = summary["vgg11"], summary["vgg11_bn"]
    spreads = [s for s in (plain_std, bn_std) if math.isfinite(s)]
    spread, gap = max(spreads, default=math.nan), bn - plain
    if not math.isfinite(gap):
        verdict = "one of the two never finished a run, so no difference is measured"
    elif math.isfinite(spread) and abs(gap) <= spread:
        n = min(summary[model][2] for model in MODELS)
        verdict = f"the difference ({100 * gap:+.2f} points) is within the spread: not resolved at n={n}"
    else:
        verdict = f"BN {'helps' if gap > 0 else 'hurts'} by {100 * abs(gap):.2f} points at these settings"
    return [
        *lines,
        f"With equal settings, {verdict}.",
        "History: VGG (2014) had no batch norm, which was published in 2015; its deep nets were started from "
        "the trained 11-layer one.",
    ]


def plot_losses(curves: dict[str, list[dict]], path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {"vgg11": "tab:red", "vgg11_bn": "tab:blue"}
    for label, metrics in curves.items():
        model = label.split(" ")[0]
        ax.plot(
            [m["epoch"] for m in metrics], [m["train_loss"] for m in metrics], "o-", color=colors[model], label=label
        )
    ax.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title="one line per seed")
    save_epoch_figure(fig, [ax], path, title)


@register_experiment(
    "vgg-bn", help="vgg11 with and without batch norm at equal settings, several seeds", own_seeds=True
)
def run(options: ExperimentOptions) -> ExperimentResult:
    data = load_dataset(options.dataset_or_default(), options.data_dir)
    epochs = options.epochs_or(quick=1, full=3)
    seeds = list(options.seeds or [options.seed + i for i in range(SEEDS[options.quick])])
    rows, curves = [], {}
    for model in MODELS:
        for seed in seeds:
            row, metrics = train_one(options, data, model, seed, epochs)
            rows.append(row)
            curves[f"{model} seed {seed}"] = metrics
    plot_losses(curves, options.out / "vgg_bn.png", f"{data.name}: VGG-11 with and without BN, {epochs} epochs")
    return ExperimentResult(
        title=f"VGG-11 with and without batch norm on {data.name}, {epochs} epochs, {len(seeds)} seeds",
        columns=COLUMNS,
        rows=rows,
        findings=findings(rows),
        plots=["vgg_bn.png"],
        config={
            "models": list(MODELS),
            "dataset": data.name,
            "image_size": data.image_size,
            "epochs": epochs,
            "seeds": seeds,
            "train_subset": QUICK_SUBSET if options.quick else FULL_SUBSET,
            "recipe": "the dataset's default (the trainer's), equal for both",
            "history": "Simonyan & Zisserman arXiv:1409.1556 (Sep 2014, no BN; deeper nets initialised from "
            "net A, §3.1); Ioffe & Szegedy arXiv:1502.03167 (Feb 2015)",
        },
    )
