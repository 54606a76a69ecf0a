"""Smith's learning-rate range test (Smith 2017, "Cyclical Learning Rates", section 3.3), as fastai's and
torch-lr-finder's `lr_find` run it: train for `steps` optimizer steps with the lr rising exponentially from
`start` to `end`, record each step's loss, smooth it, and stop once it diverges.

- schedule: lr_i = start * (end / start) ** (i / (steps - 1)), i = 0 .. steps-1 (`schedule`)
- smoothing: an exponential moving average of the loss with bias correction (beta 0.98), as fastai does:
  avg_i = beta * avg_{i-1} + (1 - beta) * loss_i,  smoothed_i = avg_i / (1 - beta ** (i + 1))
- divergence: the test stops when the smoothed loss exceeds DIVERGE x its minimum so far (4x), or is not finite
- the suggestion (`suggest`, rule "steepest"): the lr where the smoothed loss falls fastest per decade of lr,
  d(smoothed)/d(log10 lr) at its most negative, looked for after the first SKIP_START of the steps (the average
  is still settling there) and before the smoothed minimum (past it the loss is already blowing up). This is
  torch-lr-finder's suggestion and fastai's "steep"; it lands below the minimum's lr, where training is still
  stable.

The model's weights, the optimizer's state and torch's RNG are snapshotted before and restored after
(`range_test`), so a test leaves the model exactly as it found it. `find_lr` builds the model, the data splits,
the normalised batches and the optimizer the way `cnnlab train` does (the trainer's own functions), so the
suggestion is for the run that follows.

The model is a zoo name today (`config.model`); a network from a file or a layer spec plugs in through
`find_lr(model=...)`, which takes any module (the seam the trainer's `run(model=...)` also has).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from cnnlab.errors import CnnlabError

START_LR = 1e-7  # the schedule's first lr
END_LR = 10.0  # its last
STEPS = 100  # optimizer steps, if the loss does not diverge first
BETA = 0.98  # the loss EMA's decay per step
DIVERGE = 4.0  # stop when the smoothed loss exceeds this multiple of its minimum
SKIP_START = 0.1  # share of the steps the suggestion ignores at the start
RULE = "steepest"
RULE_TEXT = "steepest descent of the smoothed loss per decade of lr, before its minimum"


@dataclass(frozen=True)
class RangeTest:
    """One range test: the lr of each step taken, its raw loss and the smoothed loss; `diverged`: stopped early."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    diverged: bool


@dataclass(frozen=True)
class Suggestion:
    lr: float
    rule: str  # RULE
    index: int  # the step it came from


def schedule(start: float = START_LR, end: float = END_LR, steps: int = STEPS) -> list[float]:
    """The lrs of the steps: exponential from `start` to `end` inclusive."""
    if not (start > 0 and end > start):
        raise CnnlabError(f"the lr range must rise from a positive start: got --start-lr {start:g}, --end-lr {end:g}")
    if steps < 2:
        raise CnnlabError(f"--steps must be at least 2, got {steps}")
    return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]


def range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    lrs: list[float],
    beta: float = BETA,
    diverge: float = DIVERGE,
) -> RangeTest:
    """Train `model` one step per lr of `lrs` on `batches`; returns the losses. The model's and the optimizer's
    state_dicts and torch's RNG state are restored afterwards, whatever happens."""
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_rng = torch.get_rng_state()
    was_training = model.training
    try:
        return _steps(model, optimizer, batches, loss_fn, lrs, beta, diverge)
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        torch.set_rng_state(saved_rng)
        model.train(was_training)


def _steps(model, optimizer, batches, loss_fn, lrs, beta, diverge) -> RangeTest:
    model.train()
    taken, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    for i, lr in enumerate(lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, x, y)
        value = loss.item()
        average = beta * average + (1 - beta) * value
        smooth = average / (1 - beta ** (i + 1))  # bias correction: the average starts at 0
        taken.append(lr)
        losses.append(value)
        smoothed.append(smooth)
        if not math.isfinite(smooth) or (i > 0 and smooth > diverge * best):
            return RangeTest(taken, losses, smoothed, diverged=True)
        best = min(best, smooth)
        loss.backward()
        optimizer.step()
    return RangeTest(taken, losses, smoothed, diverged=False)


def suggest(test: RangeTest) -> Suggestion:
    """The module docstring's rule: the steepest fall of the smoothed loss per decade of lr before its minimum."""
    import numpy as np

    finite = [i for i, v in enumerate(test.smoothed) if math.isfinite(v)]
    if len(finite) < 3:
        raise CnnlabError(f"the loss diverged after {len(test.lrs)} steps: too few to suggest an lr; lower --start-lr")
    smoothed = np.array([test.smoothed[i] for i in finite])
    logs = np.log10(np.array([test.lrs[i] for i in finite]))
    slope = np.gradient(smoothed, logs)
    first = min(int(len(finite) * SKIP_START), len(finite) - 2)
    last = max(int(np.argmin(smoothed)), first + 1)
    index = first + int(np.argmin(slope[first : last + 1]))
    return Suggestion(float(test.lrs[finite[index]]), RULE, finite[index])


# ------------------------------------------------------------------------------------------ with cnnlab's recipe
def find_lr(
    config,
    start: float = START_LR,
    end: float = END_LR,
    steps: int = STEPS,
    quiet: bool = True,
    model: nn.Module | None = None,
) -> dict:
    """The range test for `config` (a TrainConfig): the trainer's data splits, batches, model (or `model`) and
    optimizer. Returns the record lr-find.json holds (the suggestion, its rule, the curve)."""
    from cnnlab.batches import prepare_batch
    from cnnlab.engine.trainer import build_optimizer, classification_loss, init_model, setup
    from cnnlab.precision import autocast

    lrs = schedule(start, end, steps)
    began = time.perf_counter()
    job = setup(config, None, quiet)
    config = job.config
    net = init_model(job, model, fresh=True)
    optimizer = build_optimizer(net, config)
    aux_weight = getattr(net, "aux_loss_weight", 0.3)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = job.splits.train_images, job.splits.train_labels
        for epoch in range(steps):  # passes over the training split, each in a seeded order
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
            for step in range(len(images) // config.batch_size):
                index = order[step * config.batch_size : (step + 1) * config.batch_size]
                generator = torch.Generator().manual_seed(epoch * 1_000_003 + step)
                padding = config.crop_padding if config.augment else 0
                x = prepare_batch(
                    images[index], job.data, config.channels_last, padding, config.augment, generator, color=job.color
                )
                yield x, labels[index]

    def loss_fn(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(job.dtype, job.device.type):
            return classification_loss(module(x), y, config.label_smoothing, aux_weight)[0]

    test = range_test(net, optimizer, batches(), loss_fn, lrs)
    chosen = suggest(test)
    return record(config, test, chosen, start, end, steps, time.perf_counter() - began)


def record(config, test: RangeTest, chosen: Suggestion, start: float, end: float, steps: int, seconds: float) -> dict:
    """lr-find.json's contents; `summary` of it is what a run's config.json keeps (its `lr_find`)."""
    return {
        "model": config.model,
        "dataset": config.dataset,
        "suggestion": chosen.lr,
        "rule": chosen.rule,
        "rule_text": RULE_TEXT,
        "start_lr": start,
        "end_lr": end,
        "steps": steps,
        "steps_run": len(test.lrs),
        "beta": BETA,
        "diverge_factor": DIVERGE,
        "diverged": test.diverged,
        "batch_size": config.batch_size,
        "optimizer": config.optimizer,
        "weight_decay": config.weight_decay,
        "seed": config.seed,
        "seconds": round(seconds, 3),
        **asdict(test),
    }


def summary(found: dict) -> dict:
    """What a run trained with `--lr find` records in its config.json: the suggestion and how it was found."""
    keys = ("suggestion", "rule", "rule_text", "start_lr", "end_lr", "steps", "steps_run", "beta", "diverged")
    return {key: found[key] for key in keys}


def plot(found: dict, path: Path) -> Path:
    """lr-find.png: raw and smoothed loss against lr (log axis), the suggestion marked."""
    from cnnlab.notebook import use_file_backend

    use_file_backend()
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(found["lrs"], found["losses"], color="0.75", linewidth=1, label="loss")
    axes.plot(found["lrs"], found["smoothed"], color="C0", linewidth=2, label=f"smoothed (EMA, beta {found['beta']})")
    axes.axvline(found["suggestion"], color="C3", linestyle="--", label=f"{found['rule']}: {found['suggestion']:.2g}")
    axes.set_xscale("log")
    finite = [v for v in found["smoothed"] if math.isfinite(v)]
    if finite:  # the diverging tail would flatten the rest
        axes.set_ylim(min(finite) * 0.9, min(max(finite), DIVERGE * min(finite)) * 1.05)
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.set_title(f"LR range test: {found['model']} on {found['dataset']}, batch {found['batch_size']}")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# ---------------------------------------------------------------------------------------------- the commands
def lr_find(
    model: str,
    dataset: str | None = None,
    *,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    steps: int = STEPS,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    **options,
) -> dict:
    """`cnnlab lr-find`: the range test for `model` on `dataset` with the training options `options` (TrainConfig
    fields); writes OUT/lr-find.json and OUT/lr-find.png and returns the record, with `out`."""
    from cnnlab import reporting
    from cnnlab.engine.config import make_config
    from cnnlab.rundir import LrFindFolder

    config = make_config(model, dataset, **options)
    folder = LrFindFolder(Path(out) if out else reporting.timestamped_dir("lr-find", model, config.dataset))
    folder.prepare(overwrite)
    found = find_lr(config, start_lr, end_lr, steps, quiet=quiet)
    folder.write_record(found)
    plot(found, folder.plot)
    return {**found, "out": str(folder.path)}


def with_found_lr(model: str, dataset: str | None, options: dict, quiet: bool = True) -> dict:
    """`options` with `lr="find"` replaced by the range test's suggestion, and `lr_find` recording how it was
    found (config.json keeps it). The test runs with the run's own recipe, the default lr range and steps."""
    from cnnlab.engine.config import make_config

    found = find_lr(make_config(model, dataset, **{**options, "lr": None}), quiet=quiet)
    if not quiet:
        print(f"lr find: {found['suggestion']:.3g} ({RULE_TEXT}; {found['steps_run']} steps)")
    return {**options, "lr": found["suggestion"], "lr_find": summary(found)}
