"""Training phases: consecutive stretches of a run's epochs, each with its own optimizer, peak lr and parameter
groups, and a change to the model when it begins (fine-tuning's two phases: the head alone on a frozen backbone,
then everything unfrozen at a lower lr, as the transfer-learning tutorials do it in one script).

The trainer (`run(phases=...)`) builds phase 1's optimizer and schedule; at the first step of a later phase's
first epoch it calls the phase's `enter(model)`, then builds a fresh optimizer and a schedule over that phase's
steps. A checkpoint records the phase it was saved in, so a resumed run enters the same phases before it loads
the weights and the optimizer state: it continues bit for bit as the uninterrupted run does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from cnnlab.engine.optim import ParamGroups


@dataclass(frozen=True)
class Phase:
    name: str  # as metrics.csv's `phase` column is a number, this labels the curves' boundary ("head", "all")
    epochs: int
    optimizer: str  # an engine.optim.OPTIMIZERS name
    lr: float  # the peak lr of the groups that do not set their own
    param_groups: ParamGroups | None = None  # see optim.create_optimizer; None: every trainable parameter at `lr`
    enter: Callable[[nn.Module], None] | None = None  # what changes in the model as the phase begins (unfreezing)


def first_epochs(phases: Sequence[Phase]) -> list[int]:
    """Each phase's first epoch (0-based)."""
    starts, epoch = [], 0
    for phase in phases:
        starts.append(epoch)
        epoch += phase.epochs
    return starts


def phase_at(phases: Sequence[Phase], epoch: int) -> int:
    """The index of the phase that epoch `epoch` (0-based) belongs to; the last one past the end."""
    return max(i for i, start in enumerate(first_epochs(phases)) if start <= epoch)
