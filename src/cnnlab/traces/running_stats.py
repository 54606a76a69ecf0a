"""`trace("running_stats")`: BatchNorm's running mean and variance settling over real batches (05, "Running
Statistics"), against the statistic they estimate.

The tutorial feeds 100 CIFAR-10 batches through a BatchNorm and prints the batch and running means at batches 1,
25, 50, 75 and 100. Here the BatchNorm sits where networks put it, on the first conv layer's output of a zoo model
(seeded, untrained), fed shuffled training batches of digits or Fashion-MNIST. The dataset statistic is the same
conv's output averaged over the whole training split, so the running estimate can be checked against what it
estimates, batch by batch.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import CnnlabError, OptionValueError
from cnnlab.traces.common import cell, result

MAX_BATCHES = 100  # the tutorial's loop; the error left is batch noise long before that
CHECKPOINTS = (1, 25, 50, 75, 100)  # the batches the tutorial prints
SHOWN_CHANNELS = 3  # the tutorial's three (RGB) channels; every channel is in data


def _first_conv(model: nn.Module, name: str) -> nn.Conv2d:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise CnnlabError(f"{name} has no conv layer to put a BatchNorm after")
    return conv


def _dataset_statistics(conv: nn.Conv2d, images: torch.Tensor, data) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (biased) variance of the conv's output over every training image, in chunks."""
    from cnnlab.data import normalize

    total, total_sq, count = 0.0, 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), 512):
            out = conv(normalize(images[start : start + 512], data.mean, data.std)).double()
            total = total + out.sum(dim=(0, 2, 3))
            total_sq = total_sq + (out * out).sum(dim=(0, 2, 3))
            count += out.numel() // out.shape[1]
    mean = total / count
    return mean.float(), (total_sq / count - mean * mean).float()


def _batch_order(size: int, batches: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """Indices of `batches` shuffled batches, a fresh shuffle each pass over the split (as a DataLoader does)."""
    generator, order = torch.Generator().manual_seed(seed), torch.empty(0, dtype=torch.long)
    while len(order) < batches * batch_size:
        order = torch.cat([order, torch.randperm(size, generator=generator)])
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(batches)]


def _check(dataset: str, batches: int, momentum: float, batch_size: int) -> None:
    from cnnlab.data import list_datasets

    if dataset not in list_datasets():  # a built-in set: no folder path reaches this trace (the lab serves it)
        raise OptionValueError("dataset", f"must be a built-in dataset (digits, fashion-mnist, ...), got '{dataset}'")
    if not 1 <= batches <= MAX_BATCHES:
        raise OptionValueError("batches", f"must be 1 to {MAX_BATCHES}, got {batches}")
    if not 0 < momentum <= 1:
        raise OptionValueError("momentum", f"must be in (0, 1], got {momentum}")
    if not 2 <= batch_size <= 1024:
        raise OptionValueError("batch_size", f"must be 2 to 1024, got {batch_size}")


def running_stats_trace(
    model: str = "lenet5",
    dataset: str = "digits",
    batches: int = MAX_BATCHES,
    momentum: float = 0.1,
    batch_size: int = 64,
    seed: int = 0,
) -> dict:
    from cnnlab.data import load_dataset, normalize
    from cnnlab.registry import create_model

    _check(dataset, batches, momentum, batch_size)
    data = load_dataset(dataset, download=False)
    torch.manual_seed(seed)
    network = create_model(model, in_chans=data.in_chans, num_classes=len(data.classes), input_size=data.image_size)
    conv = _first_conv(network, model).eval()
    true_mean, true_var = _dataset_statistics(conv, data.train_images, data)
    bn = nn.BatchNorm2d(conv.out_channels, momentum=momentum).train()
    series = {"batch_mean": [], "batch_var": [], "running_mean": [], "running_var": []}
    with torch.no_grad():
        for index in _batch_order(len(data.train_images), batches, batch_size, seed):
            out = conv(normalize(data.train_images[index], data.mean, data.std))
            series["batch_mean"].append(out.mean(dim=(0, 2, 3)))
            series["batch_var"].append(out.var(dim=(0, 2, 3)))  # unbiased (/(N-1)): what feeds running_var
            bn(out)
            series["running_mean"].append(bn.running_mean.clone())
            series["running_var"].append(bn.running_var.clone())
    return _result(model, dataset, momentum, batch_size, series, true_mean, true_var)


def _result(model, dataset, momentum, batch_size, series, true_mean, true_var) -> dict:
    steps = len(series["running_mean"])
    shown = [t for t in CHECKPOINTS if t <= steps] + ([steps] if steps not in CHECKPOINTS else [])
    columns = ["batch", "channel", "batch mean", "running mean", "dataset mean", "|running - dataset|"]
    rows = []
    for t in shown:
        for c in range(min(SHOWN_CHANNELS, len(true_mean))):
            running = series["running_mean"][t - 1][c]
            rows.append([t, c, series["batch_mean"][t - 1][c], running, true_mean[c], abs(running - true_mean[c])])
    final_gap = (series["running_mean"][-1] - true_mean).abs().max()
    batch_spread = torch.stack(series["batch_mean"]).std(dim=0).max() if steps > 1 else torch.tensor(0.0)
    notes = [
        f"The running mean starts at 0 and moves a fraction {momentum} of the way to each batch's mean: its expected "
        f"gap to the dataset mean shrinks as (1 - {momentum})^t, to {(1 - momentum) ** steps:.3g} of the start after "
        f"{steps} batches.",
        f"After {steps} batches it is within {float(final_gap):.4f} of the dataset mean on every channel; the batch "
        f"means themselves scatter by up to {float(batch_spread):.4f} (std over the batches): the estimate is an "
        "average of noisy batch means, never exactly the dataset's.",
        "docs/errata.md S24: the tutorial's CIFAR-10 numbers need data we do not have; this is the same loop on "
        f"{dataset}.",
    ]
    data = {key: cell(torch.stack(values)) for key, values in series.items()}
    data.update(dataset_mean=cell(true_mean), dataset_var=cell(true_var), batch=list(range(1, steps + 1)))
    # one number per batch: the running estimate's worst channel against the dataset's statistic
    data["mean_gap"] = cell((torch.stack(series["running_mean"]) - true_mean).abs().amax(dim=1))
    data["var_gap"] = cell((torch.stack(series["running_var"]) - true_var).abs().amax(dim=1))
    title = f"BatchNorm running statistics after {model}'s first conv on {dataset} (batch {batch_size})"
    return result("running_stats", title, columns, [[cell(v) for v in row] for row in rows], notes, data)


def plot_running_stats(result: dict, path) -> None:
    """The trace's curves as a PNG: per shown channel the running mean and variance after each batch against the
    dataset's (dashed), and below, the worst channel's gap to the dataset statistic on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = result["data"]
    batches = data["batch"]
    fig, (mean_ax, var_ax, gap_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    for c, color in zip(range(min(SHOWN_CHANNELS, len(data["dataset_mean"]))), plt.cm.tab10.colors):
        for ax, key, true in ((mean_ax, "running_mean", "dataset_mean"), (var_ax, "running_var", "dataset_var")):
            ax.plot(batches, [row[c] for row in data[key]], color=color, label=f"channel {c}")
            ax.axhline(data[true][c], color=color, linestyle="--", linewidth=0.8)
    gap_ax.semilogy(batches, data["mean_gap"], label="mean")
    gap_ax.semilogy(batches, data["var_gap"], label="variance")
    mean_ax.set(title="running mean (dashed: dataset)", xlabel="batch")
    var_ax.set(title="running variance (dashed: dataset)", xlabel="batch")
    gap_ax.set(title="|running - dataset|, worst channel", xlabel="batch")
    for ax in (mean_ax, var_ax, gap_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(result["title"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
