"""What the engine calls at the seams of a run, and what it tells them.

The engine owns the loop, the state, the checkpoints and the files; the rest (the weight average, Lookahead, the
time budget, TensorBoard, the progress display and the lab's progress stream) are `Hook`s, called in order:

    before_step(StepEvent)   before each optimizer step
    after_step(StepEvent)    after it (the optimizer and scheduler stepped; a due checkpoint comes after the hooks)
    end_of_epoch(EpochEvent) once the epoch's metrics row is written, before its checkpoint
    end_of_run(RunEvent)     once the run's files are written

Events are frozen snapshots; `model` and `optimizer` in them are handles to read, not to change (a hook that keeps
weights of its own, the EMA or Lookahead, was given them when it was built). A hook that must change the plan asks
the engine through its typed methods (`Engine.replan`); one with state across a resume names its checkpoint entry
(`key`) and gives `state_dict`/`load_state_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class StepEvent:
    epoch: int  # the epoch in progress, 0-based
    step: int  # before_step: the step about to run in that epoch, 0-based; after_step: the steps done in it
    global_step: int  # optimizer steps done in the whole run (after_step: this one included)
    steps_per_epoch: int
    epochs: int  # the run's epochs as planned now (a time budget may change them)
    model: nn.Module  # read only
    optimizer: torch.optim.Optimizer  # read only
    loss: float | None = None  # after_step: this process's loss of the step
    lr: float = 0.0  # the first parameter group's lr of the step
    metrics: dict = field(default_factory=dict)  # after_step: the epoch's running loss, accuracy, images_per_second


@dataclass(frozen=True)
class EpochEvent:
    epoch: int  # the epoch that ended, 1-based (metrics.csv's `epoch`)
    global_step: int  # optimizer steps done in the whole run
    metrics: dict  # the epoch's metrics.csv row
    model: nn.Module  # read only
    optimizer: torch.optim.Optimizer  # read only


@dataclass(frozen=True)
class RunEvent:
    results: dict  # results.json as written
    metrics: list[dict]  # metrics.csv's rows
    model: nn.Module  # the evaluated weights (the average with --ema), read only
    test_predicted: torch.Tensor  # the final test pass's predicted labels
    global_step: int


class Hook:
    """A no-op base: override the calls a hook needs."""

    key: str | None = None  # its entry in a checkpoint, for a hook with state; None: nothing to save

    def before_step(self, event: StepEvent) -> None: ...

    def after_step(self, event: StepEvent) -> None: ...

    def end_of_epoch(self, event: EpochEvent) -> None: ...

    def end_of_run(self, event: RunEvent) -> None: ...

    def close(self) -> None:
        """The run stops early (a failure, an interruption): release what the hook holds."""

    def evaluated(self) -> nn.Module | None:
        """Weights to evaluate and save instead of the trained ones (the EMA's); None: the trained ones."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, saved: dict) -> None: ...
