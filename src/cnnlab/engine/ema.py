"""--ema: an exponential moving average of the weights, as an engine hook.

Updated after every optimizer step; evaluation and model.safetensors use the average, and checkpoints hold both it
and the raw weights (which the optimizer continues from on resume).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from cnnlab.engine.hooks import Hook, StepEvent


class EmaHook(Hook):
    key = "ema"

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = model  # the trained weights, read after each step
        average = torch.optim.swa_utils.get_ema_multi_avg_fn(decay)
        self.average = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=average, use_buffers=True)

    def after_step(self, event: StepEvent) -> None:
        self.average.update_parameters(self.model)

    def evaluated(self) -> nn.Module:
        return self.average.module

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, saved: dict) -> None:
        self.average.load_state_dict(saved)


def warn_short_horizon(decay: float, total_steps: int) -> None:
    """The average weighs the initial weights by decay**steps: past its horizon it mostly holds the random init."""
    if total_steps >= 1 / (1 - decay):
        return
    shorter = 1 - 10 / max(total_steps, 1)  # a horizon of a tenth of the run
    advice = f"use a decay of at most {shorter:.3g}" if shorter > 0 else "drop --ema"
    warnings.warn(
        f"--ema {decay:g} averages over about {1 / (1 - decay):,.0f} steps, but this run has "
        f"{total_steps}: its average stays close to the initial weights; {advice}",
        stacklevel=4,
    )
