"""The optimizer and learning-rate schedule factories, importable on their own (as timm's):

    from cnnlab.engine.optim import create_optimizer, create_scheduler
    optimizer = create_optimizer(model, "sgd", lr=0.1, weight_decay=5e-4, momentum=0.9)
    scheduler = create_scheduler(optimizer, "onecycle", total_steps=1000)  # step it after every optimizer step

They take plain values, not a TrainConfig, so a script can use them without the trainer. `ProgressSchedule` is the
schedule a --time-budget run uses: the same shapes written over progress, which `remap` can fit to fewer or more
steps mid-run (the engine's `replan`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from cnnlab.engine.config import OPTIMIZERS, SCHEDULES  # declared once, with the options (torch-free)
from cnnlab.engine.muon import MuonSGD
from cnnlab.errors import CnnlabError

ONECYCLE_FINAL = 1 / 25 / 1e4  # OneCycleLR's defaults: start at peak/25, end at that /1e4
ONECYCLE_WARMUP = 0.25  # the share of the steps spent warming up

ParamGroups = Callable[[nn.Module], list[dict]]  # model -> [{"params": [...], "lr": peak lr}, ...]


def create_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    param_groups: ParamGroups | None = None,
    muon_lr: float = 0.02,
) -> torch.optim.Optimizer:
    """Nesterov SGD ("sgd"), AdamW ("adamw", betas (momentum, 0.999)) or Muon for the conv filters with Nesterov
    SGD for the rest ("muon", `cnnlab.engine.muon`; the filters' peak lr is `muon_lr`, scaled as a group's lr is
    scaled against `lr`) over the model's trainable parameters.

    Weight decay applies to conv and linear weights only (parameters of 2 or more dimensions): decaying batch-norm
    scales and biases only fights the normalisation. `param_groups(model)` gives parameter sets with their own peak
    "lr" (a backbone at a tenth of the head's); by default one set, every parameter, at `lr`. Frozen parameters
    (requires_grad=False) are left out; CnnlabError when nothing is left to train."""
    if name not in OPTIMIZERS:
        raise CnnlabError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    groups = []
    for group in param_groups(model) if param_groups else [{"params": model.parameters()}]:
        params = [p for p in group["params"] if p.requires_grad]
        group_lr = group.get("lr", lr)
        groups += [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay, "lr": group_lr},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr": group_lr},
        ]
    if not any(group["params"] for group in groups):
        raise CnnlabError("nothing to train: every parameter of the model is frozen")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True, foreach=True)
    if name == "muon":
        return MuonSGD(muon_groups(groups, lr, muon_lr), lr=lr, momentum=momentum)
    return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999), foreach=True)


def muon_groups(groups: list[dict], lr: float, muon_lr: float) -> list[dict]:
    """Each group's conv filters (4-D) split off as a Muon group at muon_lr times the group's share of `lr`."""
    split = []
    for group in groups:
        filters = [p for p in group["params"] if p.ndim == 4]
        rest = [p for p in group["params"] if p.ndim != 4]
        split.append({**group, "params": rest, "muon": False})
        split.append({**group, "params": filters, "muon": True, "lr": muon_lr * group["lr"] / lr})
    return split


def create_scheduler(
    optimizer: torch.optim.Optimizer, name: str, total_steps: int, replannable: bool = False
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step schedule over `total_steps` from each group's lr now (its peak). onecycle: warm up for 25% of
    the steps, then cosine down to lr/1e4 (Smith 2018); cosine: down to 0; step: x0.1 at 50% and 75%; constant.

    OneCycleLR's warm-up ends at step pct_start * total_steps - 1, and it divides by that: a run of 4 steps or fewer
    warms up for 1.5 steps instead (a 1-step run keeps its lr constant). `replannable`: the same shapes as a
    `ProgressSchedule`, whose remaining steps can be re-mapped mid-run (--time-budget)."""
    if name not in SCHEDULES:
        raise CnnlabError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if replannable:
        return ProgressSchedule(optimizer, name, total_steps)
    if name == "onecycle" and total_steps > 1:
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],
            total_steps=total_steps,
            pct_start=max(ONECYCLE_WARMUP, 1.5 / total_steps),
            cycle_momentum=False,
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "step":
        milestones = [int(total_steps * 0.5), int(total_steps * 0.75)]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


# ------------------------------------------------------------------------------------- schedules over progress
def cosine_between(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


def lr_factor(kind: str, progress: float) -> float:
    """The schedule `kind` at `progress` in [0, 1], as a multiple of the peak lr: `create_scheduler`'s shapes,
    written over progress instead of step counts."""
    p = min(max(progress, 0.0), 1.0)
    if kind == "onecycle":
        if p < ONECYCLE_WARMUP:
            return cosine_between(1 / 25, 1.0, p / ONECYCLE_WARMUP)
        return cosine_between(1.0, ONECYCLE_FINAL, (p - ONECYCLE_WARMUP) / (1 - ONECYCLE_WARMUP))
    if kind == "cosine":
        return cosine_between(1.0, 0.0, p)
    if kind == "step":
        return 1.0 if p < 0.5 else 0.1 if p < 0.75 else 0.01
    return 1.0


class ProgressShape:
    """Step index -> lr factor. Progress runs linearly from (anchor_step, anchor_progress) to 1 at end_step. A
    plain object, so LambdaLR's state_dict saves its fields and a resumed run gets them back."""

    def __init__(self, kind: str, end_step: int) -> None:
        self.kind = kind
        self.anchor_step, self.anchor_progress, self.end_step = 0, 0.0, end_step

    def progress(self, step: int) -> float:
        if step >= self.end_step:
            return 1.0
        span = self.end_step - self.anchor_step
        return self.anchor_progress + (1 - self.anchor_progress) * (step - self.anchor_step) / span

    def __call__(self, step: int) -> float:
        return lr_factor(self.kind, self.progress(step))

    def remap(self, next_step: int, end_step: int) -> None:
        """Steps next_step..end_step carry the rest of the schedule, from where step next_step - 1 was to p = 1."""
        if next_step > 0:
            self.anchor_step, self.anchor_progress = next_step - 1, self.progress(next_step - 1)
        self.end_step = max(end_step, next_step)


class ProgressSchedule(torch.optim.lr_scheduler.LambdaLR):
    """A schedule of `kind` over `total_steps` (each group's peak is its lr now) that `remap` can fit to another
    number of steps mid-run. Its state_dict is LambdaLR's (the shape's fields included)."""

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, total_steps: int) -> None:
        super().__init__(optimizer, ProgressShape(kind, total_steps - 1))

    @property
    def shape(self) -> ProgressShape:
        return self.lr_lambdas[0]  # one shape, shared by every parameter group

    @property
    def end_step(self) -> int:
        """The schedule's last step (0-based): its lr is the schedule's final value."""
        return self.shape.end_step

    def lr_at(self, step: int) -> float:
        """The first group's lr at `step` under the current map."""
        return self.base_lrs[0] * self.shape(step)

    def remap(self, next_step: int, end_step: int) -> None:
        """Map the rest of the schedule onto steps next_step..end_step and set the lr of step `next_step` now
        (`step()` set it from the previous map)."""
        self.shape.remap(next_step, end_step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * self.shape(next_step)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
